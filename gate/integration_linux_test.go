package gate

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestIntegrationDoAcrossRealLinkDown sends messages through Do from one
// network namespace to a server in another, over a veth pair. Midway the
// sender's link is set down with ip(8): the connection stops answering,
// attempts time out, and redials fail with the kernel's own ENETUNREACH.
// The test plays the Monitor: it closes the gate on the first
// link-related error (as Monitor.Report would) and opens it after setting
// the link up again. Every message must arrive.
func TestIntegrationDoAcrossRealLinkDown(t *testing.T) {
	netnstest.RequirePrivileged(t)
	t.Parallel()

	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.77.0.1/24", "dev", "va")
	b.IP("addr", "add", "10.77.0.2/24", "dev", "vb")

	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.77.0.2:0")
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", b.Name, err)
	}
	const (
		senders   = 2
		perSender = 40
		total     = senders * perSender
	)
	srv := startFlakyServer(t, ln, total/4)
	resume := make(chan struct{})
	resumeOnce := sync.OnceFunc(func() { close(resume) })
	srv.mu.Lock()
	srv.paused = resume
	srv.mu.Unlock()
	// Registered after the server's cleanup, so it runs before it.
	t.Cleanup(resumeOnce)
	addr := ln.Addr().String()

	var (
		linkErrs   atomic.Int64
		closeOnce  sync.Once
		gateClosed = make(chan struct{})
		g          *Gate
	)
	g = mustNew(t, Config{
		Backoff: Backoff{Initial: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		OnError: func(at Attempt) {
			t.Logf("attempt %d failed (%v): %v", at.N, at.Class, at.Err)
			if at.Class.LinkRelated() {
				linkErrs.Add(1)
				closeOnce.Do(func() {
					g.Close(Reason{Code: "carrier-lost", Iface: "va"})
					close(gateClosed)
				})
			}
		},
	})

	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	// Dial inside a's namespace; the socket stays there.
	dial := func(ctx context.Context) (conn net.Conn, err error) {
		err = a.Do(func() error {
			conn, err = dialTCP(addr)(ctx)
			return err
		})
		return conn, err
	}

	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for id := range senders {
		wg.Go(func() {
			c := &ackClient{dial: dial, timeout: 300 * time.Millisecond}
			defer c.close()
			for i := range perSender {
				n := uint64(id*perSender + i)
				if err := g.Sender().Do(ctx, func(ctx context.Context) error { return c.send(ctx, n) }); err != nil {
					errs <- fmt.Errorf("sender %d, message %d: %w", id, n, err)
					return
				}
			}
		})
	}
	waitFor := func(what string, ch <-chan struct{}) {
		t.Helper()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v; stats %+v", what, ctx.Err(), g.Stats())
		}
	}

	waitFor("a quarter of the messages", srv.reach)
	// The server now holds its acknowledgements, so the senders are in
	// the middle of sends when their link goes down.
	a.IP("link", "set", "va", "down")
	waitFor("a link-related send error to close the gate", gateClosed)
	resumeOnce()
	srv.mu.Lock()
	gotWhileDown := len(srv.got)
	srv.mu.Unlock()
	a.IP("link", "set", "va", "up")
	g.Open()

	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	waitFor("all senders to finish", done)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	for n := range uint64(total) {
		if srv.got[n] == 0 {
			t.Errorf("message %d never arrived", n)
		}
	}
	t.Logf("%d messages, %d before the link came back, %d link-related errors; stats %+v",
		total, gotWhileDown, linkErrs.Load(), g.Stats())
	if gotWhileDown >= total {
		t.Error("every message arrived before the link came back: the outage held nothing")
	}
}
