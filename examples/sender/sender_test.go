package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/testcert"
	"go.uber.org/zap"
)

// testSender is a sender of count messages as robot-1:77, on the gate g.
func testSender(addr string, count int, g sendGate) *sender {
	s := newSender(config{id: "robot-1", epoch: 77, addr: addr, count: count, window: 16,
		dialTimeout: 5 * time.Second, ackTimeout: 5 * time.Second}, zap.NewNop())
	s.g = g
	return s
}

// TestReadErrorsKeepNetworkIdentity: a server that closes the connection
// before every acknowledgement came (a FIN, or a TLS close_notify, whose
// EOF tls returns bare). readAcks must return an error that classify calls
// a connection error, with the EOF inside a *net.OpError: an EOF wrapped
// by fmt.Errorf is class Other once classify judges EOF by where it came
// from, and would not be retried.
func TestReadErrorsKeepNetworkIdentity(t *testing.T) {
	cert := testcert.New(t, "server", "127.0.0.1")
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			if useTLS {
				ln = tls.NewListener(ln, cert.Server)
			}
			served := make(chan struct{})
			go func() {
				defer close(served)
				c, err := ln.Accept()
				if err != nil {
					return
				}
				// One acknowledgement, then a clean close.
				line, _ := bufio.NewReader(c).ReadString('\n')
				if strings.HasPrefix(line, "robot-1:77:1") {
					_, _ = io.WriteString(c, "ACK robot-1:77:1\n")
				}
				_ = c.Close()
			}()
			var conn net.Conn
			if useTLS {
				pool := x509.NewCertPool()
				pool.AppendCertsFromPEM(cert.PEM)
				conn, err = tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12})
			} else {
				conn, err = net.Dial("tcp", ln.Addr().String())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			s := testSender(ln.Addr().String(), 2, nil)
			if _, err := io.WriteString(conn, "robot-1:77:1 x\n"); err != nil {
				t.Fatal(err)
			}
			err = s.readAcks(conn, make(chan struct{}, 1))
			<-served
			var oe *net.OpError
			if !errors.As(err, &oe) || !errors.Is(err, io.EOF) {
				t.Fatalf("readAcks: %#v, want io.EOF inside a *net.OpError", err)
			}
			if c := classify.Classify(err); c != classify.Connection {
				t.Errorf("class %v, want Connection: %v", c, err)
			}
			if s.nAcked != 1 {
				t.Errorf("acked %d, want 1", s.nAcked)
			}
		})
	}
}

// TestServerRefusalEndsTheRun: a server that answers ERR (it cannot parse
// what the sender sends) ends the run with its text; resending cannot help.
func TestServerRefusalEndsTheRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	defer func() { _ = ln.Close(); <-done }()
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "ERR wire: SEQ \"1\": a bare number is not a SEQ any more\n")
		_, _ = io.Copy(io.Discard, c)
	}()
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--addr", ln.Addr().String(), "--count", "3", "--monitor=false"}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "the server refused a message: server: wire: SEQ") {
		t.Errorf("exit %d, want 1 with the server's text; stderr:\n%s", code, stderr.String())
	}
}

// waitHeld waits, with a deadline, until n calls are held at g.
func waitHeld(t *testing.T, g *gate.Gate, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for g.Stats().HeldNow != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls held, want %d", g.Stats().HeldNow, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRebindDuringHoldSparesTheNextConnection: connect is held at a closed
// gate; a rebind comes (the address changed while the link was down); the
// gate opens. The connection made after the rebind must not be ended by
// it: connect takes the rebind channel right before dialling. A rebind
// after the dial ends the connection, as it must. The time held is
// measured per call.
func TestRebindDuringHoldSparesTheNextConnection(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	g, err := gate.New(gate.Config{StartClosed: gate.Reason{Code: "carrier-lost", Iface: "wlan0"}})
	if err != nil {
		t.Fatal(err)
	}
	s := testSender(ln.Addr().String(), 1, g.Sender())
	rebinds := []chan struct{}{make(chan struct{})}
	current := make(chan chan struct{}, 1)
	current <- rebinds[0]
	s.rebindC = func() <-chan struct{} { c := <-current; current <- c; return c }
	rebind := func() {
		c := <-current
		close(c)
		current <- make(chan struct{})
	}

	type result struct {
		conn   net.Conn
		rebind <-chan struct{}
		err    error
	}
	res := make(chan result, 1)
	go func() {
		c, rb, err := s.connect(context.Background())
		res <- result{c, rb, err}
	}()
	waitHeld(t, g, 1)
	heldFrom := time.Now()
	rebind() // during the hold
	time.Sleep(50 * time.Millisecond)
	heldFor := time.Since(heldFrom)
	g.Open()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer r.conn.Close()
	select {
	case <-r.rebind:
		t.Fatal("the connection made after the rebind would be ended by it")
	default:
	}
	rebind() // after the dial
	select {
	case <-r.rebind:
	default:
		t.Fatal("a rebind after the dial does not reach the connection")
	}
	if s.held < heldFor {
		t.Errorf("held %v, but the call was held at least %v", s.held, heldFor)
	}
	t.Logf("held %v (at least %v)", s.held, heldFor)
}

// waitUntil waits, with a deadline, until cond holds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 20 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestOutageKeepsTheConnection: the gate closes (carrier lost) and opens
// again (it returned) with the local address and route unchanged. A
// connection with nothing outstanding is kept through the outage, nothing
// is written on it while the gate is closed, and it carries the next
// message after the return: no reconnection, no second handshake. One with
// a message outstanding is kept too, and at the return the message is
// written again at once on a fresh connection, not after the ack timeout
// (30 s here) or TCP's backed-off retransmission.
func TestOutageKeepsTheConnection(t *testing.T) {
	t.Run("nothing outstanding", func(t *testing.T) {
		srv := newFakeServer(t, nil, func(int) (int, bool) { return 0, false })
		g, err := gate.New(gate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s := testSender(srv.addr(), 2, g.Sender())
		s.cfg.rate = 5 // one message each 200 ms: the second comes due while the gate is closed
		s.cfg.ackTimeout = 30 * time.Second
		done := make(chan error, 1)
		go func() { done <- s.deliver(t.Context()) }()
		waitUntil(t, "acknowledgement of message 1", func() bool {
			s.mu.Lock()
			defer s.mu.Unlock()
			return s.nAcked == 1
		})
		g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
		time.Sleep(500 * time.Millisecond) // message 2 comes due at 200 ms: it must not be written
		if unique, _, conns := srv.counts(); unique != 1 || conns != 1 || srv.endedConns() != 0 {
			t.Fatalf("while the gate was closed: %d messages received, %d connections, %d ended; want 1, 1, 0",
				unique, conns, srv.endedConns())
		}
		g.Open()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if unique, dups, conns := srv.counts(); unique != 2 || dups != 0 || conns != 1 {
			t.Errorf("%d messages, %d copies, %d connections; want 2, 0, 1 (the connection kept)", unique, dups, conns)
		}
	})
	t.Run("outstanding", func(t *testing.T) {
		// The first connection never acknowledges: its message is in flight
		// when the gate closes, as one whose ACK the outage swallowed.
		srv := newFakeServer(t, nil, func(i int) (int, bool) { return 0, i == 0 })
		g, err := gate.New(gate.Config{})
		if err != nil {
			t.Fatal(err)
		}
		s := testSender(srv.addr(), 1, g.Sender())
		s.cfg.ackTimeout = 30 * time.Second
		done := make(chan error, 1)
		go func() { done <- s.deliver(t.Context()) }()
		keptThenResent(t, srv, g, done)
	})
}

// keptThenResent closes g once srv has message 1 (unacknowledged on the
// first connection), checks that the connection is kept while g is
// closed, opens g, and checks that message 1 is written again at once on a
// fresh connection: done, the delivery's result, within 20 s (the ack
// timeout is 30 s).
func keptThenResent(t *testing.T, srv *fakeServer, g *gate.Gate, done <-chan error) {
	t.Helper()
	waitUntil(t, "message 1 at the server", func() bool { u, _, _ := srv.counts(); return u == 1 })
	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	time.Sleep(300 * time.Millisecond)
	if _, _, conns := srv.counts(); conns != 1 || srv.endedConns() != 0 {
		t.Fatalf("while the gate was closed: %d connections, %d ended; want 1, 0 (kept)", conns, srv.endedConns())
	}
	g.Open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("message 1 not resent within 20 s of the return (the ack timeout is 30 s)")
	}
	if unique, dups, conns := srv.counts(); unique != 1 || dups != 1 || conns != 2 {
		t.Errorf("%d messages, %d copies, %d connections; want 1, 1, 2 (resent on a fresh one)", unique, dups, conns)
	}
}
