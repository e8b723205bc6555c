package wire

import (
	"errors"
	"strings"
	"testing"
)

func TestParseMessage(t *testing.T) {
	tests := []struct {
		line    string
		seq     Seq
		payload string
		errSub  string // "" for success
	}{
		{"r1:7:1 hello\n", Seq{"r1", 7, 1}, "hello", ""},
		{"r1:7:42\n", Seq{"r1", 7, 42}, "", ""},
		{"r1:7:42 \r\n", Seq{"r1", 7, 42}, "", ""},
		{"a.B_c-9:18446744073709551615:18446744073709551615 max\n", Seq{"a.B_c-9", 18446744073709551615, 18446744073709551615}, "max", ""},
		{"r:1:18446744073709551616 overflow\n", Seq{}, "", "bad N"},
		{"r:18446744073709551616:1 overflow\n", Seq{}, "", "bad EPOCH"},
		{"r:1:0 zero\n", Seq{}, "", "bad N"},
		{"r:0:1 zero epoch\n", Seq{}, "", "bad EPOCH"},
		{"r:1:01 leading zero\n", Seq{}, "", "bad N"},
		{"r:1:+1 sign\n", Seq{}, "", "bad N"},
		{"r:1:-1 sign\n", Seq{}, "", "bad N"},
		{"r:1:1:1 four parts\n", Seq{}, "", "bad N"},
		{":1:1 empty id\n", Seq{}, "", "bad ID"},
		{"r b:1:1 space in id\n", Seq{}, "", "no ':'"},
		{"r/1:1:1 slash\n", Seq{}, "", "bad ID"},
		{strings.Repeat("x", 65) + ":1:1\n", Seq{}, "", "bad ID"},
		{"r:1 two parts\n", Seq{}, "", "one ':'"},
		{"17 hello\n", Seq{}, "", "bare number"},
		{"1\n", Seq{}, "", "bare number"},
		{" r:1:1 leading space\n", Seq{}, "", "no ':'"},
		{"\n", Seq{}, "", "no ':'"},
		{"ACK r:1:1\n", Seq{}, "", "no ':'"},
	}
	for _, tt := range tests {
		seq, payload, err := ParseMessage([]byte(tt.line))
		if tt.errSub == "" {
			if err != nil || seq != tt.seq || string(payload) != tt.payload {
				t.Errorf("ParseMessage(%q) = %+v, %q, %v; want %+v, %q", tt.line, seq, payload, err, tt.seq, tt.payload)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errSub) || !strings.Contains(err.Error(), "ID:EPOCH:N") {
			t.Errorf("ParseMessage(%q) = %+v, %v; want an error with %q that says what is valid", tt.line, seq, err, tt.errSub)
		}
		if seq != (Seq{}) {
			t.Errorf("ParseMessage(%q) rejected but returned %+v", tt.line, seq)
		}
	}
	if _, _, err := ParseMessage([]byte("17 x\n")); !errors.Is(err, ErrBareNumber) {
		t.Errorf("bare number: %v, want ErrBareNumber", err)
	}
}

func TestParseAck(t *testing.T) {
	tests := []struct {
		line   string
		seq    Seq
		errSub string
	}{
		{"ACK r:1:1\n", Seq{"r", 1, 1}, ""},
		{"ACK r:1:20000\r\n", Seq{"r", 1, 20000}, ""},
		{"ACK r:1:0\n", Seq{}, "bad N"},
		{"ACK r:1:1 extra\n", Seq{}, "bad N"},
		{"ACK 1\n", Seq{}, "bare number"},
		{"ACK \n", Seq{}, "no ':'"},
		{"ack r:1:1\n", Seq{}, "neither"},
		{"r:1:1 payload\n", Seq{}, "neither"},
		{"", Seq{}, "neither"},
		{"ERR bad sequence\n", Seq{}, "server: bad sequence"},
	}
	for _, tt := range tests {
		seq, err := ParseAck([]byte(tt.line))
		if tt.errSub == "" {
			if err != nil || seq != tt.seq {
				t.Errorf("ParseAck(%q) = %+v, %v; want %+v", tt.line, seq, err, tt.seq)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tt.errSub) || seq != (Seq{}) {
			t.Errorf("ParseAck(%q) = %+v, %v; want an error with %q", tt.line, seq, err, tt.errSub)
		}
	}
	var el *ErrLine
	if _, err := ParseAck([]byte("ERR no\n")); !errors.As(err, &el) || el.Text != "no" {
		t.Errorf("ERR line: %v, want *ErrLine with text \"no\"", err)
	}
}

func TestFormat(t *testing.T) {
	s := Seq{"robot-1", 99, 7}
	if got := string(AppendMessage(nil, s, []byte("hi"))); got != "robot-1:99:7 hi\n" {
		t.Errorf("AppendMessage = %q", got)
	}
	if got := string(AppendAck(nil, s)); got != "ACK robot-1:99:7\n" {
		t.Errorf("AppendAck = %q", got)
	}
	if got := string(AppendErr(nil, "a\nb")); got != "ERR a b\n" {
		t.Errorf("AppendErr = %q", got)
	}
	if err := s.Valid(); err != nil {
		t.Error(err)
	}
	if (Seq{"r", 0, 1}).Valid() == nil || (Seq{"r:x", 1, 1}).Valid() == nil {
		t.Error("Valid accepted a zero epoch or a ':' in the ID")
	}
	for in, want := range map[string]string{"": "sender", "robot-1.lan": "robot-1.lan", "ro bot:ü": "ro-bot---", strings.Repeat("a", 70): strings.Repeat("a", 64)} {
		if got := SafeID(in); got != want || ValidID(got) != nil {
			t.Errorf("SafeID(%q) = %q, want %q (valid)", in, got, want)
		}
	}
}

// FuzzParseMessage checks that any input parses without panicking, and
// that an accepted line begins with the one spelling of its SEQ followed
// by a space or the end of the line: one message, one spelling.
func FuzzParseMessage(f *testing.F) {
	for _, s := range []string{"r:1:1 hello\n", "robot-1:1732990000123456789:20000 xxxxxxxx\n", "r:0:1\n",
		"r:1:007 x\n", "ACK r:1:3\n", "r:1:1\r\n", "17 x\n", "", "a:b:c", "::", "r:18446744073709551615:1\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		seq, payload, err := ParseMessage(line)
		if err != nil {
			if seq != (Seq{}) || payload != nil {
				t.Fatalf("rejected %q but returned %+v, %q", line, seq, payload)
			}
			return
		}
		if seq.Valid() != nil {
			t.Fatalf("accepted %q as invalid %+v", line, seq)
		}
		tok := seq.String()
		rest, found := strings.CutPrefix(string(line), tok)
		if !found {
			t.Fatalf("accepted %q as %s, which is not its prefix", line, tok)
		}
		if rest != "" && rest[0] != ' ' && rest[0] != '\n' && rest[0] != '\r' {
			t.Fatalf("accepted %q as %s, but the token continues with %q", line, tok, rest[0])
		}
		// What the sender formats parses back to the same message.
		again, _, err := ParseMessage(AppendMessage(nil, seq, []byte("p")))
		if err != nil || again != seq {
			t.Fatalf("round trip of %+v: %+v, %v", seq, again, err)
		}
	})
}

// FuzzParseAck checks that any input parses without panicking and that an
// accepted line is exactly "ACK " and the SEQ's one spelling.
func FuzzParseAck(f *testing.F) {
	for _, s := range []string{"ACK r:1:1\n", "ACK r:2:20000\r\n", "ACK r:1:0\n", "ACK\n", "ACK r:1:1 2\n", "", "ERR x\n", "ACK 5\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		seq, err := ParseAck(line)
		if err != nil {
			if seq != (Seq{}) {
				t.Fatalf("rejected %q but returned %+v", line, seq)
			}
			return
		}
		got := strings.TrimSuffix(strings.TrimSuffix(string(line), "\n"), "\r")
		if seq.Valid() != nil || got+"\n" != string(AppendAck(nil, seq)) {
			t.Fatalf("accepted %q as %+v", line, seq)
		}
	})
}

func BenchmarkParseMessage(b *testing.B) {
	line := []byte("robot-1:1732990000123456789:123456 xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, _, err := ParseMessage(line); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseAck(b *testing.B) {
	line := []byte("ACK robot-1:1732990000123456789:123456\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseAck(line); err != nil {
			b.Fatal(err)
		}
	}
}
