//go:build linux

package delivery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// The sender's constants, the same for every pattern so that only the
// pattern differs: the seed's plain loop reconnects on an error or when no
// acknowledgement comes within AckTimeout.
const (
	// Every is how often the producer makes a message.
	Every = 50 * time.Millisecond
	// AckTimeout is how long a connection may go without an
	// acknowledgement while messages are outstanding before the sender
	// reconnects and resends them.
	AckTimeout = 2 * time.Second
	// DialTimeout bounds one connection attempt.
	DialTimeout = 2 * time.Second
	// RetryDelay is the plain loop's pause after a failed attempt or a
	// connection that failed without delivering anything.
	RetryDelay = 200 * time.Millisecond
	// payload is what every message carries after its token.
	payload = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
)

// pattern is how a sender connects and when it gives a connection up: the
// only thing that differs between the senders compared.
type pattern interface {
	// connect returns a connection made with dial (one attempt per call),
	// retrying as the pattern does, or an error when ctx ends or the
	// pattern gives up.
	connect(ctx context.Context, dial func(context.Context) (net.Conn, error)) (net.Conn, error)
	// ends returns a channel closed when the pattern wants the connection
	// made by the last connect given up (nil: never), watched until done
	// is closed; outstanding says whether messages written on it wait for
	// their acknowledgement.
	ends(done <-chan struct{}, outstanding func() bool) <-chan struct{}
	// report tells the pattern that the connection failed with err.
	report(err error)
}

// plainLoop is the seed's sender: dial until it works, no netmon.
type plainLoop struct{}

func (plainLoop) connect(ctx context.Context, dial func(context.Context) (net.Conn, error)) (net.Conn, error) {
	for {
		c, err := dial(ctx)
		if err == nil {
			return c, nil
		}
		if err := sleepUntil(ctx, time.Now().Add(RetryDelay)); err != nil {
			return nil, err
		}
	}
}

func (plainLoop) ends(<-chan struct{}, func() bool) <-chan struct{} { return nil }
func (plainLoop) report(error)                                      {}

// gated is netmon's pattern as examples/sender teaches it: every dial goes
// through the Monitor's Gate (held while the state is down, retried by the
// Gate's policy), and a connection is dropped when the Gate closes or the
// Monitor signals a rebind; failures are reported to the Monitor.
type gated struct {
	m      *netmon.Monitor
	g      *gate.Sender
	rebind <-chan struct{} // taken right before the last dial
	// keep keeps a connection through an outage (the Gate closed, no
	// rebind) and ends it when the Gate reopens with acknowledgements
	// outstanding, as issue 26 asks netmon to teach, instead of dropping
	// it when the Gate closes.
	keep bool

	mu    sync.Mutex // guards gates
	gates []GateChange
}

// follow records the Gate's changes until ctx ends.
func (p *gated) follow(ctx context.Context) {
	for gs := p.g.State(); ; gs = p.g.State() {
		p.mu.Lock()
		p.gates = append(p.gates, GateChange{At: time.Now(), Open: gs.Open})
		p.mu.Unlock()
		select {
		case <-gs.Changed():
		case <-ctx.Done():
			return
		}
	}
}

func (p *gated) connect(ctx context.Context, dial func(context.Context) (net.Conn, error)) (net.Conn, error) {
	var c net.Conn
	_, err := p.g.DoCall(ctx, gate.Call{}, func(ctx context.Context) error {
		p.rebind = p.m.RebindC()
		var err error
		c, err = dial(ctx)
		return err
	})
	return c, err
}

func (p *gated) ends(done <-chan struct{}, outstanding func() bool) <-chan struct{} {
	out := make(chan struct{})
	gs, rebind := p.g.State(), p.rebind
	go func() {
		defer close(out)
		closed := false // the Gate closed during this connection
		for {
			if !gs.Open && !p.keep {
				return
			}
			if gs.Open && closed && outstanding() {
				return // a return with acknowledgements outstanding: resend on a fresh connection
			}
			closed = closed || !gs.Open
			select {
			case <-gs.Changed():
				gs = p.g.State()
			case <-rebind:
				return
			case <-done:
				return
			}
		}
	}()
	return out
}

func (p *gated) report(err error) { p.m.Report(err) }

// errDropped ends a connection the pattern gave up (the Gate closed, a
// rebind); errStall one on which no acknowledgement came in time.
var (
	errDropped = errors.New("delivery: the pattern dropped the connection")
	errStall   = fmt.Errorf("delivery: no acknowledgement within %v: %w", AckTimeout, os.ErrDeadlineExceeded)
)

// sender keeps every message until the server acknowledges it, resending
// the unacknowledged ones oldest first on each new connection.
type sender struct {
	robot *netnstest.NS
	p     pattern
	id    string

	more chan struct{} // a message was made (or production ended)
	acks chan struct{} // a message was acknowledged

	mu       sync.Mutex  // guards the fields below
	created  []time.Time // message n made at created[n-1]
	acked    []bool      // acked[n-1]
	low      int         // every message below low (1-based) is acknowledged
	produced bool        // production has ended
	dials    []time.Time // start of each connection attempt
}

func newSender(robot *netnstest.NS, p pattern) *sender {
	return &sender{robot: robot, p: p, id: "robot:1", low: 1,
		more: make(chan struct{}, 1), acks: make(chan struct{}, 1)}
}

// poke wakes the writer without blocking.
func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// produce makes a message each Every (50 ms) until length has passed since
// start or ctx ends.
func (s *sender) produce(ctx context.Context, start time.Time, length time.Duration) {
	defer func() {
		s.mu.Lock()
		s.produced = true
		s.mu.Unlock()
		poke(s.more)
	}()
	for next := start; next.Before(start.Add(length)); next = next.Add(Every) {
		if sleepUntil(ctx, next) != nil {
			return
		}
		s.mu.Lock()
		s.created = append(s.created, time.Now())
		s.acked = append(s.acked, false)
		s.mu.Unlock()
		poke(s.more)
	}
}

// finished reports whether production has ended and every message is
// acknowledged.
func (s *sender) finished() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.produced && s.low > len(s.created)
}

// ack marks message n acknowledged.
func (s *sender) ack(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n < 1 || n > len(s.acked) || s.acked[n-1] {
		return
	}
	s.acked[n-1] = true
	for s.low <= len(s.acked) && s.acked[s.low-1] {
		s.low++
	}
	poke(s.acks)
}

// next returns the first unacknowledged message from n on (0: none made
// yet) and whether any message below n is unacknowledged.
func (s *sender) next(n int) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	outstanding := s.low < n
	for n = max(n, s.low); n <= len(s.acked); n++ {
		if !s.acked[n-1] {
			return n, outstanding
		}
	}
	return 0, outstanding
}

// dial makes one connection attempt from the robot's namespace, noting
// when it began.
func (s *sender) dial(ctx context.Context) (net.Conn, error) {
	s.mu.Lock()
	s.dials = append(s.dials, time.Now())
	s.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, DialTimeout)
	defer cancel()
	var c net.Conn
	err := s.robot.Do(func() (err error) {
		var d net.Dialer
		c, err = d.DialContext(ctx, "tcp", net.JoinHostPort(serverIP, strconv.Itoa(serverPort)))
		return err
	})
	return c, err
}

// deliver connects and sends until every message made is acknowledged or
// ctx ends.
func (s *sender) deliver(ctx context.Context) error {
	for !s.finished() {
		conn, err := s.p.connect(ctx, s.dial)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The pattern gave up (a Gate's policy ran out): try again.
			if err := sleepUntil(ctx, time.Now().Add(RetryDelay)); err != nil {
				return err
			}
			continue
		}
		progress, err := s.session(ctx, conn)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, errDropped):
		default:
			s.p.report(err)
			if !progress {
				if err := sleepUntil(ctx, time.Now().Add(RetryDelay)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// session writes the unacknowledged messages on conn, oldest first, then
// each new one as it is made, until every message is acknowledged (nil)
// or the connection ends. progress reports whether an acknowledgement
// came on it.
func (s *sender) session(ctx context.Context, conn net.Conn) (progress bool, err error) {
	done := make(chan struct{})
	cursor := 1
	var cursorMu sync.Mutex // cursor is read by the pattern's watcher
	ends := s.p.ends(done, func() bool {
		cursorMu.Lock()
		defer cursorMu.Unlock()
		_, outstanding := s.next(cursor)
		return outstanding
	})
	readErr := make(chan error, 1)
	go func() { readErr <- s.readAcks(conn) }()
	defer func() {
		close(done)
		_ = conn.Close()
		<-readErr
	}()
	w := bufio.NewWriter(conn)
	stall := time.NewTimer(AckTimeout)
	defer stall.Stop()
	last := time.Now() // the last acknowledgement, or when messages became outstanding
	var line []byte
	for {
		n, outstanding := s.next(cursor)
		if !outstanding {
			last = time.Now()
		}
		for ; n > 0; n, _ = s.next(cursor) {
			line = fmt.Appendf(line[:0], "%s:%d %s\n", s.id, n, payload)
			if _, err := w.Write(line); err != nil {
				return progress, err
			}
			cursorMu.Lock()
			cursor = n + 1
			cursorMu.Unlock()
		}
		if w.Buffered() > 0 {
			_ = conn.SetWriteDeadline(time.Now().Add(AckTimeout))
			if err := w.Flush(); err != nil {
				return progress, err
			}
		}
		if s.finished() {
			return progress, nil
		}
		stall.Reset(time.Until(last.Add(AckTimeout)))
		select {
		case <-ctx.Done():
			return progress, ctx.Err()
		case <-ends:
			return progress, errDropped
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return progress, err
		case <-s.more:
		case <-s.acks:
			progress, last = true, time.Now()
		case <-stall.C:
			if _, outstanding := s.next(cursor); outstanding {
				return progress, errStall
			}
		}
	}
}

// readAcks reads "ACK ID:N" lines from conn until it fails.
func (s *sender) readAcks(conn net.Conn) error {
	r := bufio.NewReader(conn)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		var n int
		if _, err := fmt.Sscanf(line, "ACK "+s.id+":%d\n", &n); err != nil {
			return fmt.Errorf("delivery: %q is not an acknowledgement: %w", line, err)
		}
		s.ack(n)
	}
}
