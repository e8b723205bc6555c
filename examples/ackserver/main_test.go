package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"go.uber.org/goleak"
	"go.uber.org/zap"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// startServer serves on a loopback port until the test ends.
func startServer(t *testing.T) (*server, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(zap.NewNop(), nil)
	done := make(chan error, 1)
	go func() { done <- s.serve(ln) }()
	t.Cleanup(func() {
		_ = ln.Close()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
		s.shutdown()
	})
	return s, ln.Addr().String()
}

func TestServerAcksEveryLineAndCountsDuplicates(t *testing.T) {
	s, addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A duplicate is acknowledged again (only the ACK stops a resend);
	// malformed lines are skipped without an answer.
	if _, err := io.WriteString(c, "1 a\n2 b\n1 a again\nbad line\n007 x\n3\n"); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for _, want := range []string{"ACK 1\n", "ACK 2\n", "ACK 1\n", "ACK 3\n"} {
		got, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read ack: %v", err)
		}
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	unique, dups, bad := s.counts()
	if unique != 3 || dups != 1 || bad != 2 {
		t.Errorf("counts: unique %d, duplicates %d, malformed %d; want 3, 1, 2", unique, dups, bad)
	}
}

func TestServerDeduplicatesAcrossConnections(t *testing.T) {
	s, addr := startServer(t)
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for i := 1; i <= 10; i++ {
			if _, err := io.WriteString(c, strconv.Itoa(i)+" p\n"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
		}
		c.Close()
	}
	if unique, dups, _ := s.counts(); unique != 10 || dups != 10 {
		t.Errorf("unique %d, duplicates %d; want 10 and 10", unique, dups)
	}
}

func TestResetAllSendsRST(t *testing.T) {
	s, addr := startServer(t)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if _, err := io.WriteString(c, "1 x\n"); err != nil {
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
		{"unloadable cert", []string{"--tls-cert", "/nonexistent/c.pem", "--tls-key", "/nonexistent/k.pem"}, 1},
		{"bad address", []string{"--listen", "256.0.0.1:x"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr strings.Builder
			if got := run(tt.args, &stdout, &stderr); got != tt.want {
				t.Errorf("run(%q) = %d, want %d; stderr:\n%s", tt.args, got, tt.want, stderr.String())
			}
		})
	}
}
