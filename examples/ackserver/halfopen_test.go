package main

import (
	"bufio"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"github.com/seed-a56be422/netmon/internal/testcert"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// waitFor polls cond until it holds or d has passed, and reports whether
// it held.
func waitFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(5 * time.Millisecond)
	}
	return true
}

// heapInUse returns the bytes of live heap objects after a collection.
func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// TestHalfOpenPeersAreLetGo: 1,000 peers that connect and then vanish
// (they never send another byte and never close: what the server sees of a
// robot that lost its link mid-connection). 400 stop before sending
// anything, 400 in the middle of a line, 200 before finishing the TLS
// handshake. The read and handshake deadlines end every handler: the
// goroutine count returns to its baseline (waited for with a deadline)
// while the peers' sockets are still open, and the live heap returns to
// its baseline. The runtime keeps the descriptors of ended goroutines for
// reuse (a few hundred bytes each), so the heap is compared over two
// rounds: the second must not add to the first.
func TestHalfOpenPeersAreLetGo(t *testing.T) {
	cfg := testConfig(t, "--read-timeout", "500ms", "--handshake-timeout", "500ms")
	s, addr := startServer(t, cfg)
	cert := testcert.New(t, "ackserver", "127.0.0.1")
	ts, taddr := startServerWith(t, cfg, zap.NewNop(), cert.Server)

	g0, h0 := runtime.NumGoroutine(), heapInUse()
	t.Logf("baseline: %d goroutines, %.2f MiB live heap", g0, mib(h0))
	var after []uint64
	for round := 1; round <= 2; round++ {
		after = append(after, halfOpenRound(t, s, addr, ts, taddr, g0))
		t.Logf("round %d: %.2f MiB live heap once the peers' sockets are closed too (baseline %.2f MiB)", round, mib(after[round-1]), mib(h0))
	}
	if after[0] > h0+1<<20 {
		t.Errorf("live heap %.2f MiB after the first round, baseline %.2f MiB", mib(after[0]), mib(h0))
	}
	if after[1] > after[0]+256<<10 {
		t.Errorf("live heap grew from %.2f MiB to %.2f MiB over a second round: memory of gone peers is kept", mib(after[0]), mib(after[1]))
	}
}

// halfOpenRound connects the 1,000 peers, waits for the deadlines to end
// every handler and returns the live heap once the peers are closed.
func halfOpenRound(t *testing.T, s *server, addr string, ts *server, taddr string, g0 int) uint64 {
	const plain, tlsPeers = 800, 200
	var peers []net.Conn
	closePeers := func() {
		for _, c := range peers {
			_ = c.Close()
		}
		peers = nil
	}
	defer closePeers()
	for i := range plain + tlsPeers {
		a := addr
		if i >= plain {
			a = taddr
		}
		c, err := net.Dial("tcp", a)
		if err != nil {
			t.Fatalf("peer %d: %v", i, err)
		}
		peers = append(peers, c)
		if i%2 == 1 && i < plain {
			if _, err := io.WriteString(c, "robot-1:1:1 half a li"); err != nil {
				t.Fatal(err)
			}
		}
	}
	if !waitFor(10*time.Second, func() bool { return s.stats().handlers == plain && ts.stats().handlers == tlsPeers }) {
		t.Fatalf("handlers %d and %d, want %d and %d", s.stats().handlers, ts.stats().handlers, plain, tlsPeers)
	}
	g1, h1 := runtime.NumGoroutine(), heapInUse()
	start := time.Now()
	if !waitFor(30*time.Second, func() bool { return runtime.NumGoroutine() <= g0 }) {
		t.Fatalf("goroutines %d, baseline %d: half-open peers still hold handlers (%d, %d)", runtime.NumGoroutine(), g0, s.stats().handlers, ts.stats().handlers)
	}
	released := time.Since(start)
	h2 := heapInUse()
	t.Logf("goroutines: with %d half-open peers %d, after the deadlines %d (%v after all were connected); live heap %.2f MiB, after %.2f MiB (the peers' sockets still open)",
		plain+tlsPeers, g1, runtime.NumGoroutine(), released.Round(time.Millisecond), mib(h1), mib(h2))
	if st, tst := s.stats(), ts.stats(); st.handlers != 0 || tst.handlers != 0 {
		t.Errorf("handlers left: %d, %d", st.handlers, tst.handlers)
	}
	closePeers()
	return heapInUse()
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// TestWriteDeadline: a peer that sends messages and never reads the
// acknowledgements (its receive buffer is full, as when it vanished after
// a burst) is let go at --write-timeout, with a write timeout.
func TestWriteDeadline(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	s, addr := startServerWith(t, testConfig(t, "--write-timeout", "300ms", "--read-timeout", "1h"), zap.New(core), nil)
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer c.Close()
	wg.Go(func() {
		// Write until the server gives up on us; never read.
		line := make([]byte, 0, 64)
		w := bufio.NewWriterSize(c, 64<<10)
		_ = c.SetWriteDeadline(time.Now().Add(60 * time.Second))
		for n := uint64(1); ; n++ {
			line = wire.AppendMessage(line[:0], wire.Seq{ID: "flood", Epoch: 1, N: n}, nil)
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	})
	if !waitFor(30*time.Second, func() bool { return s.stats().accepts == 1 && s.stats().handlers == 0 }) {
		t.Fatalf("the handler of a peer that reads nothing is still there: %+v", s.stats())
	}
	var ended error
	for _, e := range logs.FilterMessage("connection ended").All() {
		for _, f := range e.Context {
			if f.Key == "error" {
				ended, _ = f.Interface.(error)
			}
		}
	}
	var ne net.Error
	if !errors.As(ended, &ne) || !ne.Timeout() || !strings.Contains(ended.Error(), "write") {
		t.Errorf("connection ended with %v, want a write timeout", ended)
	}
	t.Logf("ended after %d messages: %v", s.stats().unique, ended)
}
