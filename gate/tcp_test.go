package gate

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// flakyServer is a real TCP server on loopback that acknowledges each
// message ("N\n" -> "ack N\n") and, on command, resets every connection
// with an RST and resets every new one until it is told to come back.
type flakyServer struct {
	ln net.Listener
	wg sync.WaitGroup

	mu    sync.Mutex // guards the fields below
	down  bool
	conns map[net.Conn]struct{}
	got   map[uint64]int // message -> times received
	wantN int            // when len(got) reaches it, close reached
	reach chan struct{}
	// paused, if not nil, holds back every acknowledgement after reach
	// until it is closed: the senders stay busy while a test breaks
	// their link.
	paused chan struct{}
}

// startFlakyServer serves on ln, which it closes at the end of the test,
// and closes reach when reachAt distinct messages have arrived.
func startFlakyServer(t *testing.T, ln net.Listener, reachAt int) *flakyServer {
	t.Helper()
	s := &flakyServer{ln: ln, conns: map[net.Conn]struct{}{}, got: map[uint64]int{}, wantN: reachAt, reach: make(chan struct{})}
	s.wg.Go(s.serve)
	t.Cleanup(func() {
		ln.Close()
		s.setDown(true) // resets every connection, which ends the handlers
		s.wg.Wait()
	})
	return s
}

func (s *flakyServer) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return // listener closed
		}
		s.mu.Lock()
		if s.down {
			reset(c)
			s.mu.Unlock()
			continue
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.handle(c) })
	}
}

func (s *flakyServer) handle(c net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
	}()
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		n, err := strconv.ParseUint(strings.TrimSpace(line), 10, 64)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.got[n]++
		if s.got[n] == 1 && len(s.got) == s.wantN {
			// A new message made it wantN; a message sent again
			// (retried after a reset) leaves the count where it is.
			close(s.reach)
		}
		reached, paused := len(s.got) >= s.wantN, s.paused
		s.mu.Unlock()
		if reached && paused != nil {
			<-paused
		}
		if _, err := fmt.Fprintf(c, "ack %d\n", n); err != nil {
			return
		}
	}
}

// setDown starts (true) or ends (false) an outage. Starting one resets
// every open connection.
func (s *flakyServer) setDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if down {
		for c := range s.conns {
			reset(c)
		}
	}
}

// reset closes c with an RST instead of a FIN, as a peer that lost its
// state does: the sender sees ECONNRESET.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

// ackClient sends one message per call over a kept-alive connection and
// waits for its acknowledgement, redialling after any error.
type ackClient struct {
	dial    func(context.Context) (net.Conn, error)
	timeout time.Duration // per attempt; 0 means the context's deadline
	conn    net.Conn
	r       *bufio.Reader
}

// dialTCP returns a dial function for addr in the caller's namespace.
func dialTCP(addr string) func(context.Context) (net.Conn, error) {
	return func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
}

func (c *ackClient) send(ctx context.Context, n uint64) (err error) {
	if c.conn == nil {
		conn, err := c.dial(ctx)
		if err != nil {
			return err
		}
		c.conn, c.r = conn, bufio.NewReader(conn)
	}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if c.timeout > 0 {
		// A link that went away silently never answers: the attempt
		// times out (a retryable error) and the next one redials.
		c.conn.SetDeadline(time.Now().Add(c.timeout))
	} else if dl, ok := ctx.Deadline(); ok {
		c.conn.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c.conn, "%d\n", n); err != nil {
		return err
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		return err
	}
	if want := fmt.Sprintf("ack %d\n", n); line != want {
		return fmt.Errorf("ack: got %q, want %q", line, want)
	}
	return nil
}

func (c *ackClient) close() {
	if c.conn != nil {
		c.conn.Close()
		c.conn, c.r = nil, nil
	}
}

// TestDoHoldsMessagesAcrossAForcedOutage sends messages from several
// senders through Do to a real TCP server on loopback. Midway the server
// resets every connection and refuses service (the sends fail with real
// connection errors), then the gate is closed as a Monitor would; the
// senders are held; then the server and the gate come back. Every message
// must arrive at least once.
func TestDoHoldsMessagesAcrossAForcedOutage(t *testing.T) {
	const (
		senders   = 4
		perSender = 50
		total     = senders * perSender
	)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen on loopback: %v", err)
	}
	srv := startFlakyServer(t, ln, total/5)
	// Hold back acknowledgements from the first fifth on until the link
	// is down: without it a sender scheduled far ahead of the others can
	// send all its messages before the outage, and is then never held.
	resume := make(chan struct{})
	resumeOnce := sync.OnceFunc(func() { close(resume) })
	srv.mu.Lock()
	srv.paused = resume
	srv.mu.Unlock()
	t.Cleanup(resumeOnce) // registered after the server's cleanup, so it runs first

	var (
		failures atomic.Int64
		firstErr = make(chan struct{})
		once     sync.Once
		classes  sync.Map // classify.Class -> true
	)
	g := mustNew(t, Config{
		Backoff: Backoff{Initial: time.Millisecond, Max: 20 * time.Millisecond},
		OnError: func(a Attempt) {
			classes.Store(a.Class, true)
			failures.Add(1)
			once.Do(func() { close(firstErr) })
		},
	})

	// One deadline for the whole exchange; Do holds within it.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for id := range senders {
		wg.Go(func() {
			c := &ackClient{dial: dialTCP(srv.ln.Addr().String())}
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
	waitFor("the first fifth of the messages", srv.reach)
	srv.setDown(true) // the link drops under the senders
	resumeOnce()      // the held handlers find their connections reset
	waitFor("a send to fail", firstErr)
	g.Close(Reason{Code: "carrier-lost", Iface: "lo"}) // the owner notices

	// Every sender ends up held: those between sends at once, those that
	// were sending after their attempt failed.
	heldAll := make(chan struct{})
	go func() {
		defer close(heldAll)
		for g.Stats().HeldNow < senders && ctx.Err() == nil {
			time.Sleep(time.Millisecond)
		}
	}()
	waitFor("all senders to be held", heldAll)
	srv.mu.Lock()
	gotWhileDown := len(srv.got)
	srv.mu.Unlock()

	srv.setDown(false)
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
	dups := 0
	for n := range uint64(total) {
		switch k := srv.got[n]; {
		case k == 0:
			t.Errorf("message %d never arrived", n)
		case k > 1:
			dups += k - 1
		}
	}
	s := g.Stats()
	t.Logf("%d messages, %d received before the gate reopened, %d duplicates (at least once), %d failed attempts; stats %+v",
		total, gotWhileDown, dups, failures.Load(), s)
	if gotWhileDown >= total {
		t.Error("every message arrived before the outage ended: the outage held nothing")
	}
	if s.Holds < senders || s.Releases < senders {
		t.Errorf("Holds %d, Releases %d; want at least %d each", s.Holds, s.Releases, senders)
	}
	classes.Range(func(k, _ any) bool {
		if c := k.(classify.Class); !c.Retryable() {
			t.Errorf("a send failed with class %v, want only retryable classes", c)
		}
		return true
	})
}
