package wire

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		line string
		seq  uint64
		ok   bool
	}{
		{"1 hello\n", 1, true},
		{"42\n", 42, true},
		{"42 \r\n", 42, true},
		{"18446744073709551615 max\n", 18446744073709551615, true},
		{"18446744073709551616 overflow\n", 0, false},
		{"0 zero\n", 0, false},
		{"01 leading zero\n", 0, false},
		{"-1 negative\n", 0, false},
		{"+1 sign\n", 0, false},
		{" 1 leading space\n", 0, false},
		{"\n", 0, false},
		{"ACK 1\n", 0, false},
	}
	for _, tt := range tests {
		seq, ok := ParseMessage([]byte(tt.line))
		if seq != tt.seq || ok != tt.ok {
			t.Errorf("ParseMessage(%q) = %d, %v; want %d, %v", tt.line, seq, ok, tt.seq, tt.ok)
		}
	}
}

// FuzzParseMessage checks that any input parses without panicking, and
// that an accepted line begins with the one spelling of its number.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"1 hello\n", "20000 xxxxxxxx\n", "0\n", "007 x\n", "ACK 3\n", "1\r\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		seq, ok := ParseMessage(line)
		if !ok {
			if seq != 0 {
				t.Fatalf("rejected %q but returned %d", line, seq)
			}
			return
		}
		num := strconv.FormatUint(seq, 10)
		rest, found := strings.CutPrefix(string(line), num)
		if seq == 0 || !found {
			t.Fatalf("accepted %q as %d", line, seq)
		}
		if rest != "" && rest[0] != ' ' && rest[0] != '\n' && rest[0] != '\r' {
			t.Fatalf("accepted %q as %d, but the number continues with %q", line, seq, rest[0])
		}
	})
}

func TestParseAck(t *testing.T) {
	tests := []struct {
		line string
		seq  uint64
		ok   bool
	}{
		{"ACK 1\n", 1, true},
		{"ACK 20000\r\n", 20000, true},
		{"ACK 18446744073709551615\n", 18446744073709551615, true},
		{"ACK 18446744073709551616\n", 0, false},
		{"ACK 0\n", 0, false},
		{"ACK 01\n", 0, false},
		{"ACK -1\n", 0, false},
		{"ACK 1 extra\n", 0, false},
		{"ACK \n", 0, false},
		{"ack 1\n", 0, false},
		{"1 payload\n", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		seq, ok := ParseAck([]byte(tt.line))
		if seq != tt.seq || ok != tt.ok {
			t.Errorf("ParseAck(%q) = %d, %v; want %d, %v", tt.line, seq, ok, tt.seq, tt.ok)
		}
	}
}

// FuzzParseAck checks that any input parses without panicking and that an
// accepted line is exactly "ACK " and the number's one spelling.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{"ACK 1\n", "ACK 20000\r\n", "ACK 0\n", "ACK\n", "ACK 1 2\n", ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		seq, ok := ParseAck(line)
		if !ok {
			if seq != 0 {
				t.Fatalf("rejected %q but returned %d", line, seq)
			}
			return
		}
		want := "ACK " + strconv.FormatUint(seq, 10)
		got := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if seq == 0 || got != want {
			t.Fatalf("accepted %q as %d", line, seq)
		}
	})
}

func BenchmarkParseMessage(b *testing.B) {
	line := []byte("123456 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseMessage(line); !ok {
			b.Fatal("rejected")
		}
	}
}

func BenchmarkParseAck(b *testing.B) {
	line := []byte("ACK 123456\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseAck(line); !ok {
			b.Fatal("rejected")
		}
	}
}
