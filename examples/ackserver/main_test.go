package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

// envChild makes the test binary run the program itself, with the
// arguments in envChildArgs (newline-separated): tests that need the real
// process (its own descriptor limit) start it that way.
const (
	envChild     = "ACKSERVER_TEST_RUN_MAIN"
	envChildArgs = "ACKSERVER_TEST_ARGS"
)

func TestMain(m *testing.M) {
	if os.Getenv(envChild) == "1" {
		os.Args = append([]string{"ackserver"}, strings.Split(os.Getenv(envChildArgs), "\n")...)
		main()
	}
	goleak.VerifyTestMain(m)
}

// testConfig is the default configuration with args applied.
func testConfig(t testing.TB, args ...string) config {
	t.Helper()
	cfg, err := parseFlags(args, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startServer serves on a loopback port until the test ends.
func startServer(t testing.TB, cfg config) (*server, string) {
	t.Helper()
	return startServerWith(t, cfg, zap.NewNop(), nil)
}

// startServerWith is startServer with a logger and TLS.
func startServerWith(t testing.TB, cfg config, log *zap.Logger, tlsConf *tls.Config) (*server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(log, tlsConf, cfg)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	t.Cleanup(func() {
		s.shutdown(ln)
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, ln.Addr().String()
}

// readLines reads n lines from r, failing the test on an error.
func readLines(t *testing.T, r *bufio.Reader, n int) []string {
	t.Helper()
	var out []string
	for range n {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read after %q: %v", out, err)
		}
		out = append(out, l)
	}
	return out
}

func TestServerAcksEveryMessageAndCountsDuplicates(t *testing.T) {
	s, addr := startServer(t, testConfig(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A duplicate is acknowledged again (only the ACK stops a resend); a
	// malformed line, a bare number included, gets ERR saying what is
	// valid, and the connection goes on.
	in := "r:5:1 a\nr:5:2 b\nr:5:1 a again\n17 bare\nbad line\nr:5:007 x\nr:5:3\nq:5:1 another sender\nr:6:1 another run\n"
	if _, err := io.WriteString(c, in); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, bufio.NewReader(c), 9)
	want := []string{"ACK r:5:1\n", "ACK r:5:2\n", "ACK r:5:1\n", "ERR", "ERR", "ERR", "ACK r:5:3\n", "ACK q:5:1\n", "ACK r:6:1\n"}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i])
		}
	}
	if !strings.Contains(got[3], "bare number") || !strings.Contains(got[3], "ID:EPOCH:N, e.g. robot-1:") {
		t.Errorf("the answer to a bare number does not say what is valid: %q", got[3])
	}
	st := s.stats()
	if st.unique != 5 || st.dups != 1 || st.bad != 3 {
		t.Errorf("unique %d, duplicates %d, malformed %d; want 5, 1, 3", st.unique, st.dups, st.bad)
	}
}

func TestServerDeduplicatesAcrossConnections(t *testing.T) {
	s, addr := startServer(t, testConfig(t))
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for i := 1; i <= 10; i++ {
			if _, err := io.WriteString(c, "r:9:"+strconv.Itoa(i)+" p\n"); err != nil {
				t.Fatal(err)
			}
			if l, err := r.ReadString('\n'); err != nil || l != "ACK r:9:"+strconv.Itoa(i)+"\n" {
				t.Fatalf("ack %d: %q, %v", i, l, err)
			}
		}
		c.Close()
	}
	if st := s.stats(); st.unique != 10 || st.dups != 10 {
		t.Errorf("unique %d, duplicates %d; want 10 and 10", st.unique, st.dups)
	}
}

// TestServerRefusesTooFarAhead: a message beyond what the window and the
// holes can remember is neither acknowledged nor counted; once the gap
// below it has filled, its resend is acknowledged.
func TestServerRefusesTooFarAhead(t *testing.T) {
	s, addr := startServer(t, testConfig(t, "--window", "64", "--max-holes", "8"))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	// 1 opens the epoch exactly (mark 0); 100 would leave 98 holes.
	if _, err := io.WriteString(c, "r:1:1\nr:1:100 ahead\nr:1:2\n"); err != nil {
		t.Fatal(err)
	}
	if got := readLines(t, r, 2); got[0] != "ACK r:1:1\n" || got[1] != "ACK r:1:2\n" {
		t.Fatalf("got %q, want ACKs of 1 and 2 only (100 refused)", got)
	}
	if st := s.stats(); st.unique != 2 || st.refused != 1 {
		t.Fatalf("unique %d, refused %d; want 2 and 1", st.unique, st.refused)
	}
	var b strings.Builder
	for i := 3; i <= 99; i++ {
		b.WriteString("r:1:" + strconv.Itoa(i) + "\n")
	}
	b.WriteString("r:1:100 resent\n")
	if _, err := io.WriteString(c, b.String()); err != nil {
		t.Fatal(err)
	}
	got := readLines(t, r, 98)
	if got[97] != "ACK r:1:100\n" {
		t.Fatalf("last answer %q, want ACK r:1:100", got[97])
	}
	if st := s.stats(); st.unique != 100 || st.dups != 0 || st.refused != 1 {
		t.Errorf("unique %d, duplicates %d, refused %d; want 100, 0, 1", st.unique, st.dups, st.refused)
	}
}

func TestResetAllSendsRST(t *testing.T) {
	s, addr := startServer(t, testConfig(t))
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "r:1:1 x\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadString('\n'); err != nil { // the handler is registered and running
		t.Fatal(err)
	}
	if n := s.resetAll(); n != 1 {
		t.Fatalf("resetAll reset %d connections, want 1", n)
	}
	_, err = r.ReadString('\n')
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("read after reset: %v, want ECONNRESET (a RST, not a FIN)", err)
	}
}

// TestRunSummary runs the program in-process: a message, SIGTERM (the
// context), the summary line.
func TestRunSummary(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	ready := make(chan net.Addr, 1)
	var stdout, stderr bytes.Buffer
	code := make(chan int, 1)
	go func() { code <- run(ctx, []string{"--listen", "127.0.0.1:0"}, &stdout, &stderr, ready) }()
	addr := <-ready
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, "r:1:1\nr:1:1\n"); err != nil {
		t.Fatal(err)
	}
	readLines(t, bufio.NewReader(c), 2)
	cancel()
	select {
	case got := <-code:
		if got != 0 {
			t.Fatalf("exit %d; stderr:\n%s", got, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return within 10s of the cancel")
	}
	if stdout.String() != "received 1 unique, 1 duplicates\n" {
		t.Errorf("stdout %q", stdout.String())
	}
}

func TestRunUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want int
	}{
		{"help", []string{"-h"}, 0},
		{"unknown flag", []string{"--nope"}, 2},
		{"argument", []string{"extra"}, 2},
		{"cert without key", []string{"--tls-cert", "c.pem"}, 2},
		{"zero window", []string{"--window", "0"}, 2},
		{"zero forget", []string{"--forget-after", "0s"}, 2},
		{"unloadable cert", []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, 1},
		{"bad address", []string{"--listen", "256.0.0.1:x"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if got := run(t.Context(), tt.args, &stdout, &stderr, nil); got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
		})
	}
}
