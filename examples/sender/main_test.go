package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"flag"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"github.com/seed-a56be422/netmon/internal/testcert"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeServer is an in-process ackserver whose connections misbehave as a
// test says: behave(i) gives, for the i-th connection (from 0), after how
// many messages to reset it without acknowledging the last one (0: never),
// and whether to acknowledge nothing at all (a stalled path).
type fakeServer struct {
	ln     net.Listener
	behave func(i int) (resetAfter int, silent bool)
	wg     sync.WaitGroup

	mu    sync.Mutex // guards the fields below
	n     int        // connections accepted
	ended int        // connections that ended (the sender closed them, or serve did)
	seen  map[wire.Seq]bool
	dups  int
	conns []net.Conn
}

func newFakeServer(t testing.TB, tlsConf *tls.Config, behave func(int) (int, bool)) *fakeServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	s := &fakeServer{ln: ln, behave: behave, seen: map[wire.Seq]bool{}}
	s.wg.Go(s.accept)
	t.Cleanup(func() {
		_ = ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) addr() string { return s.ln.Addr().String() }

func (s *fakeServer) accept() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		i := s.n
		s.n++
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		resetAfter, silent := s.behave(i)
		s.wg.Go(func() { s.serve(c, resetAfter, silent) })
	}
}

func (s *fakeServer) serve(c net.Conn, resetAfter int, silent bool) {
	defer func() {
		_ = c.Close()
		s.mu.Lock()
		s.ended++
		s.mu.Unlock()
	}()
	r := bufio.NewReader(c)
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		seq, _, err := wire.ParseMessage(line)
		if err != nil {
			_, _ = c.Write(wire.AppendErr(nil, err.Error()))
			continue
		}
		s.mu.Lock()
		if s.seen[seq] {
			s.dups++
		}
		s.seen[seq] = true
		s.mu.Unlock()
		if resetAfter > 0 && n >= resetAfter {
			if tc, ok := c.(*net.TCPConn); ok {
				_ = tc.SetLinger(0)
			}
			return // received, never acknowledged: the sender must resend it
		}
		if silent {
			continue
		}
		if _, err := c.Write(wire.AppendAck(nil, seq)); err != nil {
			return
		}
	}
}

func (s *fakeServer) counts() (unique, dups, conns int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen), s.dups, s.n
}

var summaryRE = regexp.MustCompile(`^sending ([A-Za-z0-9._-]+):(\d+):1 to ([A-Za-z0-9._-]+):(\d+):(\d+)\n` +
	`sent (\d+), acked (\d+), resent (\d+), held (\S+), dial-failures (\d+)\n$`)

// summaryOf parses the output, the first and the summary line, into sent,
// acked, resent and dial-failures.
func summaryOf(t *testing.T, out string) (sent, acked, resent, dialFailures int) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(out)
	if m == nil || m[1] != m[3] || m[2] != m[4] {
		t.Fatalf("output %q is not the first line and the summary", out)
	}
	m = m[5:]
	n := func(s string) int { v, _ := strconv.Atoi(s); return v }
	return n(m[1]), n(m[2]), n(m[3]), n(m[5])
}

func TestRunResendsAfterServerResets(t *testing.T) {
	// Every connection but the fifth is reset after 300 messages, with the
	// 300th received but never acknowledged.
	srv := newFakeServer(t, nil, func(i int) (int, bool) {
		if i == 4 {
			return 0, false
		}
		return 300, false
	})
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "2000", "--window", "64", "--monitor=false", "--log-level", "warn"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	sent, acked, resent, _ := summaryOf(t, stdout.String())
	unique, dups, conns := srv.counts()
	if sent != 2000 || acked != 2000 || unique != 2000 {
		t.Errorf("sent %d, acked %d, server has %d unique; want 2000 each", sent, acked, unique)
	}
	if conns < 5 {
		t.Errorf("%d connections, want at least 5 (one per reset, and one that lasts)", conns)
	}
	// Each reset leaves at least the message the server swallowed to be
	// resent; the server can only have seen copies that were resent.
	if resent < conns-1 || dups > resent {
		t.Errorf("resent %d, server duplicates %d, connections %d: want resent >= connections-1 >= 4 and duplicates <= resent", resent, dups, conns)
	}
}

func TestRunRedialsWhenAcknowledgementsStall(t *testing.T) {
	// The first connection swallows everything: without the ack timeout
	// the sender would wait on it forever.
	srv := newFakeServer(t, nil, func(i int) (int, bool) { return 0, i == 0 })
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "100", "--monitor=false", "--ack-timeout", "100ms", "--log-level", "warn"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	_, acked, resent, _ := summaryOf(t, stdout.String())
	if unique, _, conns := srv.counts(); acked != 100 || unique != 100 || conns < 2 {
		t.Errorf("acked %d, server unique %d, connections %d; want 100, 100, >= 2", acked, unique, conns)
	}
	if resent == 0 {
		t.Error("resent 0: the stalled connection's messages were not written again")
	}
}

// writeCert writes a self-signed certificate for 127.0.0.1 to dir and
// returns the server's TLS configuration and the certificate's PEM file.
func writeCert(t *testing.T, dir, name string) (*tls.Config, string) {
	c := testcert.New(t, name, "127.0.0.1")
	file := filepath.Join(dir, name+".pem")
	if err := os.WriteFile(file, c.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return c.Server, file
}

func TestRunTLS(t *testing.T) {
	dir := t.TempDir()
	serverConf, ca := writeCert(t, dir, "server")
	_, otherCA := writeCert(t, dir, "other")

	t.Run("trusted", func(t *testing.T) {
		srv := newFakeServer(t, serverConf, func(int) (int, bool) { return 0, false })
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "500", "--tls", "--ca", ca, "--monitor=false"}, &stdout, &stderr)
		if code != 0 {
			t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
		}
		if _, acked, _, _ := summaryOf(t, stdout.String()); acked != 500 {
			t.Errorf("acked %d, want 500", acked)
		}
	})
	t.Run("untrusted certificate is not retried", func(t *testing.T) {
		// classify puts an unknown authority in the certificate class,
		// which no resend can fix: one attempt, then exit 1.
		srv := newFakeServer(t, serverConf, func(int) (int, bool) { return 0, false })
		var stdout, stderr bytes.Buffer
		code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "5", "--tls", "--ca", otherCA, "--monitor=false"}, &stdout, &stderr)
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr.String())
		}
		sent, _, _, failures := summaryOf(t, stdout.String())
		if sent != 0 || failures != 1 {
			t.Errorf("sent %d, dial-failures %d; want 0 and 1", sent, failures)
		}
		if !strings.Contains(stderr.String(), "certificate") {
			t.Errorf("stderr does not name the certificate problem:\n%s", stderr.String())
		}
	})
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr string // "" for success
	}{
		{"minimal", []string{"--addr", "h:1", "--count", "1"}, ""},
		{"everything", []string{"--addr", "h:1", "--count", "9", "--rate", "10", "--tls", "--ca", "ca.pem", "--server-name", "h", "--iface", "e*", "--iface", "w*"}, ""},
		{"no addr", []string{"--count", "1"}, "--addr is required"},
		{"no count", []string{"--addr", "h:1"}, "--count is 0"},
		{"negative rate", []string{"--addr", "h:1", "--count", "1", "--rate", "-1"}, "--rate is -1"},
		{"zero window", []string{"--addr", "h:1", "--count", "1", "--window", "0"}, "--window is 0"},
		{"huge payload", []string{"--addr", "h:1", "--count", "1", "--payload", "5000"}, "--payload is 5000"},
		{"ca without tls", []string{"--addr", "h:1", "--count", "1", "--ca", "x"}, "need --tls"},
		{"bad level", []string{"--addr", "h:1", "--count", "1", "--log-level", "loud"}, "--log-level"},
		{"bad duration", []string{"--addr", "h:1", "--count", "1", "--ack-timeout", "soon"}, "invalid value"},
		{"argument", []string{"--addr", "h:1", "--count", "1", "extra"}, "unexpected argument"},
		{"id", []string{"--addr", "h:1", "--count", "1", "--id", "robot-7.lab_A"}, ""},
		{"bad id", []string{"--addr", "h:1", "--count", "1", "--id", "robot:7"}, "--id"},
		{"long id", []string{"--addr", "h:1", "--count", "1", "--id", strings.Repeat("r", 65)}, "--id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stderr bytes.Buffer
			_, err := parseFlags(tt.args, &stderr)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("parseFlags(%q): %v", tt.args, err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error()+stderr.String(), tt.wantErr)):
				t.Fatalf("parseFlags(%q) = %v, want an error containing %q", tt.args, err, tt.wantErr)
			}
		})
	}
	c, _ := parseFlags([]string{"--addr", "h:1", "--count", "1", "--iface", "e*", "--iface", "w*"}, &bytes.Buffer{})
	if strings.Join(c.ifaces, ",") != "e*,w*" {
		t.Errorf("--iface twice gave %q, want both", c.ifaces)
	}
	if _, err := parseFlags([]string{"-h"}, &bytes.Buffer{}); err != flag.ErrHelp {
		t.Errorf("-h: %v, want flag.ErrHelp", err)
	}
}

func TestRunUsageExitsTwo(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(t.Context(), []string{"--count", "1"}, &stdout, &stderr); code != 2 {
		t.Errorf("exit %d, want 2", code)
	}
	if stdout.Len() != 0 {
		t.Errorf("a usage error printed %q on stdout", stdout.String())
	}
}

// endedConns returns how many connections have ended.
func (s *fakeServer) endedConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ended
}
