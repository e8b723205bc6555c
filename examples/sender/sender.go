package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/outbox"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// config is what the flags say.
type config struct {
	id          string // the sender's ID in every SEQ
	epoch       uint64 // this run's EPOCH, chosen at start
	addr        string
	count       int
	rate        float64
	window      int
	payload     int
	tls         bool
	caFile      string
	serverName  string
	tlsConf     *tls.Config
	dialTimeout time.Duration
	ackTimeout  time.Duration
	monitor     bool
	outbox      string // --outbox: the durable outbox's directory; "" for none
	ifaces      []string
	level       zapcore.Level
}

// Why a connection was given up without an error of its own. These end a
// connection at once and the sender redials without backing off: nothing
// failed, the network changed under it.
var (
	errGateClosed = errors.New("sender: the gate closed (the network went down)")
	errRebind     = errors.New("sender: rebind (the connection's path went away)")
	// errReturned ends a connection kept through an outage when the path
	// returns with messages still unacknowledged on it: TCP would resend
	// them only when its retransmission timer, backed off during the
	// outage, fires (seconds); a fresh connection costs one round trip.
	errReturned = errors.New("sender: the path returned with acknowledgements outstanding; resending on a fresh connection")
)

// errStall is a connection on which no acknowledgement arrived for
// --ack-timeout while messages were outstanding: a path that silently
// drops packets. It wraps os.ErrDeadlineExceeded, so classify sees a
// timeout, which is retryable.
var errStall = fmt.Errorf("sender: no acknowledgement within --ack-timeout: %w", os.ErrDeadlineExceeded)

// sendGate is what the sender uses of a Gate: a [gate.Sender], the view
// the Monitor's Gate() gives (or a bare gate's Sender()).
type sendGate interface {
	DoCall(ctx context.Context, c gate.Call, send func(context.Context) error) (gate.Result, error)
	State() gate.State
}

// sender holds every message until it is acknowledged. One goroutine, the
// one in deliver, writes; one per connection reads acknowledgements.
type sender struct {
	cfg        config
	log        *zap.Logger
	g          sendGate
	report     func(error)            // tells the Monitor that a send failed
	success    func(netip.Addr)       // tells the Monitor that a message to dst was acknowledged
	dst        netip.Addr             // the server's address, when --addr is a literal IP:PORT
	rebindC    func() <-chan struct{} // the Monitor's rebind signal
	lastRebind func() netmon.Rebind   // what the last rebind was, for the log
	payload    []byte
	box        *outbox.Outbox // --outbox; nil without

	held         time.Duration // total time held at the Gate; deliver's goroutine only
	dialFailures int           // deliver's goroutine only
	next         time.Time     // earliest time of the next write under --rate; deliver's goroutine only

	mu       sync.Mutex // guards the fields below
	acked    []bool     // acked[seq], seq from 1
	written  []bool     // written[seq]: written at least once, on any connection
	nAcked   int
	nWritten int
	resent   int // writes of a message that had been written before
	cursor   int // the next seq to consider writing on this connection
	inflight int // written on this connection and not yet acknowledged
}

func newSender(cfg config, log *zap.Logger) *sender {
	p := bytes.Repeat([]byte{'x'}, cfg.payload)
	never := make(chan struct{}) // never closed: no Monitor, no rebinds
	return &sender{
		cfg:        cfg,
		log:        log,
		report:     func(error) {},
		success:    func(netip.Addr) {},
		dst:        literalAddr(cfg.addr),
		rebindC:    func() <-chan struct{} { return never },
		lastRebind: func() netmon.Rebind { return netmon.Rebind{} },
		payload:    p,
		acked:      make([]bool, cfg.count+1),
		written:    make([]bool, cfg.count+1),
	}
}

// summary is the line the sender prints when it ends.
func (s *sender) summary() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return fmt.Sprintf("sent %d, acked %d, resent %d, held %v, dial-failures %d",
		s.nWritten, s.nAcked, s.resent, s.held.Round(time.Millisecond), s.dialFailures)
}

// done reports whether every message has been acknowledged.
func (s *sender) done() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nAcked == s.cfg.count
}

// deliver connects and sends until every message is acknowledged, ctx
// ends, or an error that no retry can fix.
func (s *sender) deliver(ctx context.Context) error {
	var failures int // connections in a row that failed without progress
	for !s.done() {
		conn, rebind, err := s.connect(ctx)
		if err != nil {
			return err
		}
		progress, err := s.session(ctx, conn, rebind)
		switch {
		case err == nil:
			continue
		case ctx.Err() != nil:
			return context.Cause(ctx)
		case errors.Is(err, errGateClosed):
			s.log.Info("connection dropped: the gate closed; holding", zap.Stringer("gate", s.g.State().Reason))
			continue
		case errors.Is(err, errReturned):
			s.log.Info("the path returned with messages unacknowledged; resending them on a fresh connection")
			continue
		case errors.Is(err, errRebind):
			rb := s.lastRebind()
			s.log.Info("connection dropped: rebind; redialling at once",
				zap.String("reason", rb.Reason), zap.String("iface", rb.Iface), zap.Stringer("addr", rb.Addr))
			continue
		}
		// A real failure of the connection: the Monitor correlates it with
		// the link's state, and classify decides whether resending can help.
		s.report(err)
		c := classify.Classify(err)
		if !c.Retryable() {
			return fmt.Errorf("sender: %w (class %v: not retryable)", err, c)
		}
		s.log.Info("connection failed; resending unacknowledged messages on a new one",
			zap.Error(err), zap.Stringer("class", c), zap.Bool("progress", progress))
		if progress {
			failures = 0
			continue
		}
		// A server that accepts and fails at once must not turn the sender
		// into a busy loop: back off, but never while the Gate holds.
		failures++
		if err := s.pause(ctx, failures); err != nil {
			return err
		}
	}
	return nil
}

// pause sleeps a full-jitter backoff before the n-th reconnection in a
// row without progress (100 ms doubling to 5 s), cut short when the Gate
// changes: a closed gate holds in connect instead, and a reopened one
// means the path changed.
func (s *sender) pause(ctx context.Context, n int) error {
	ceiling := 100 * time.Millisecond << min(n-1, 6)
	ceiling = min(ceiling, 5*time.Second)
	t := time.NewTimer(rand.N(ceiling))
	defer t.Stop()
	select {
	case <-t.C:
	case <-s.g.State().Changed():
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	return nil
}

// connect dials through the Gate: held while the network is down, retried
// with backoff on retryable errors, given up on others (a certificate the
// CA does not sign will not sign itself on the next attempt). It returns
// the connection and the rebind channel taken right before its dial: a
// rebind during that dial still ends the connection, and one during a hold
// before it (an address that came and went while the gate was closed) does
// not end the connection made after it.
//
// The time held is this call's own: DoCall's Result says how long the
// gate held it, with nothing shared between calls.
func (s *sender) connect(ctx context.Context) (net.Conn, <-chan struct{}, error) {
	var (
		conn   net.Conn
		rebind <-chan struct{}
	)
	res, err := s.g.DoCall(ctx, gate.Call{Dst: s.dst}, func(ctx context.Context) error {
		rebind = s.rebindC()
		c, err := s.dial(ctx)
		if err != nil {
			s.dialFailures++
			s.log.Info("dial failed", zap.Error(err))
			return err
		}
		conn = c
		return nil
	})
	s.held += res.Held
	if err != nil {
		return nil, nil, fmt.Errorf("sender: connect to %s: %w", s.cfg.addr, err)
	}
	return conn, rebind, nil
}

// literalAddr returns the IP of addr when it is a literal IP:PORT, and the
// zero Addr for a host name: successes are then reported without a
// destination.
func literalAddr(addr string) netip.Addr {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// dial makes one connection attempt, with TLS if asked.
func (s *sender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: s.cfg.dialTimeout}
	if s.cfg.tlsConf == nil {
		return d.DialContext(ctx, "tcp", s.cfg.addr)
	}
	td := &tls.Dialer{NetDialer: d, Config: s.cfg.tlsConf}
	return td.DialContext(ctx, "tcp", s.cfg.addr)
}

// session writes unacknowledged messages on conn, oldest first, until
// every message is acknowledged (nil) or the connection ends: it fails, a
// rebind is signalled, acknowledgements stall, or the path returns from an
// outage with messages outstanding (errReturned). While the Gate is closed
// the connection is kept but nothing more is written on it and the stall
// clock stops: a short carrier loss that leaves the local address and the
// route in place does not cost a reconnection (a TLS handshake) when
// nothing was in flight. It closes conn and returns only after its reader
// has ended. progress reports whether any message was acknowledged on
// this connection.
func (s *sender) session(ctx context.Context, conn net.Conn, rebind <-chan struct{}) (progress bool, err error) {
	gs := s.g.State()
	if !gs.Open {
		_ = conn.Close()
		return false, errGateClosed
	}
	s.mu.Lock()
	s.cursor, s.inflight = 1, 0
	s.mu.Unlock()

	acks := make(chan struct{}, 1)
	readErr := make(chan error, 1)
	go func() { readErr <- s.readAcks(conn, acks) }()
	readerDone := false
	defer func() {
		_ = conn.Close() // unblocks the reader
		if !readerDone {
			<-readErr
		}
	}()

	w := bufio.NewWriterSize(conn, 32<<10)
	flush := func() error {
		if w.Buffered() == 0 {
			return nil
		}
		// A write blocks only when the socket buffer is full, i.e. the
		// path has stalled; the ack timeout bounds that too.
		_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.ackTimeout))
		if err := w.Flush(); err != nil {
			return fmt.Errorf("sender: write: %w", err)
		}
		return nil
	}
	stall := time.NewTimer(s.cfg.ackTimeout)
	defer stall.Stop()
	lastAck := time.Now() // last acknowledgement, or when inflight became non-zero
	var pace *time.Timer
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	interval := time.Duration(0)
	if s.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / s.cfg.rate)
	}
	line := make([]byte, 0, 128+len(s.payload))

	for {
		now := time.Now()
		seq, all := s.nextToWrite()
		if all {
			return progress, nil
		}
		if seq > 0 && gs.Open && (interval == 0 || !now.Before(s.next)) {
			line = wire.AppendMessage(line[:0], s.seq(seq), s.payload)
			if w.Available() < len(line) {
				// This write flushes: give it a fresh deadline too.
				_ = conn.SetWriteDeadline(time.Now().Add(s.cfg.ackTimeout))
			}
			if _, err := w.Write(line); err != nil {
				return progress, fmt.Errorf("sender: write: %w", err)
			}
			if s.markWritten(seq) {
				lastAck = now // the stall clock starts with the first outstanding message
			}
			if interval > 0 {
				// A token bucket with a small burst: timer overshoot is
				// made up (else the rate would drift low by the timer's
				// latency), but time held at the Gate is not, so a long
				// outage is not followed by a flood.
				s.next = later(s.next, now.Add(-paceBurst)).Add(interval)
				if err := flush(); err != nil {
					return progress, err
				}
			}
			continue
		}
		if err := flush(); err != nil {
			return progress, err
		}
		var paceC <-chan time.Time
		if seq > 0 && gs.Open {
			if pace == nil {
				pace = time.NewTimer(s.next.Sub(now))
			} else {
				pace.Reset(s.next.Sub(now))
			}
			paceC = pace.C
		}
		select {
		case <-ctx.Done():
			return progress, context.Cause(ctx)
		case <-rebind:
			return progress, errRebind
		case <-gs.Changed():
			was := gs.Open
			gs = s.g.State()
			if returned(was, gs.Open, s.outstanding()) {
				return progress, errReturned
			}
			lastAck = time.Now() // a closed gate stops the stall clock; it starts again at the return
		case err := <-readErr:
			readerDone = true
			return progress, err
		case <-acks:
			progress = true
			lastAck = time.Now()
		case <-paceC:
		case <-stall.C:
			if !gs.Open || s.outstanding() == 0 {
				stall.Reset(s.cfg.ackTimeout) // idle, not stalled
				break
			}
			if left := s.cfg.ackTimeout - time.Since(lastAck); left > 0 {
				stall.Reset(left) // an ack came since the timer was set
				break
			}
			return progress, errStall
		}
		if pace != nil && paceC != nil {
			pace.Stop()
		}
	}
}

// returned reports whether a connection kept through an outage must give
// way to a fresh one: the gate went from closed to open (the path
// returned) while outstanding messages wait for acknowledgements that the
// old connection would bring only after TCP's backed-off retransmission.
func returned(wasOpen, open bool, outstanding int) bool {
	return !wasOpen && open && outstanding > 0
}

// paceBurst is how far behind its schedule --rate may catch up.
const paceBurst = 100 * time.Millisecond

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// nextToWrite returns the next message to write on this connection (0 if
// the window is full or every message is written) and whether every
// message is acknowledged.
func (s *sender) nextToWrite() (seq int, all bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nAcked == s.cfg.count {
		return 0, true
	}
	for s.cursor <= s.cfg.count && s.acked[s.cursor] {
		s.cursor++
	}
	if s.cursor > s.cfg.count || s.inflight >= s.cfg.window {
		return 0, false
	}
	return s.cursor, false
}

// markWritten records that seq (the cursor) was written on this
// connection. It reports whether it was the only outstanding message.
func (s *sender) markWritten(seq int) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.written[seq] {
		s.resent++
	} else {
		s.written[seq] = true
		s.nWritten++
	}
	s.cursor = seq + 1
	s.inflight++
	return s.inflight == 1
}

// outstanding returns how many messages written on this connection wait
// for their acknowledgement.
func (s *sender) outstanding() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.inflight
}

// seq is message n's SEQ.
func (s *sender) seq(n int) wire.Seq {
	return wire.Seq{ID: s.cfg.id, Epoch: s.cfg.epoch, N: uint64(n)}
}

// readAcks reads "ACK SEQ" lines from conn and marks the messages
// acknowledged, signalling acks (without blocking) after each new one. It
// returns the error that ended the connection; a clean EOF is an error
// too, since the server closed a connection that still had a purpose.
//
// A read error keeps its network identity, so that classify sees a
// connection error and the messages are resent: it is returned as is, and
// an EOF (which a TLS connection returns bare) inside a *net.OpError. An
// EOF wrapped by fmt.Errorf would be an error of class Other, as from a
// file, and not be retried.
func (s *sender) readAcks(conn net.Conn, acks chan<- struct{}) error {
	last := func() uint64 { return uint64(s.cfg.count) }
	return readAckLines(conn, s.cfg.id, s.cfg.epoch, last, func(n uint64) error {
		if s.ack(int(n)) {
			s.success(s.dst)
			select {
			case acks <- struct{}{}:
			default:
			}
		}
		return nil
	})
}

// readAckLines reads "ACK ID:EPOCH:N" lines from conn and hands each N to
// ack, until the connection ends (its read error, see readError), a line
// is not an acknowledgement of id:epoch:1..last(), or ack fails. The
// errors for lines are not retryable: no retry fixes a server that cannot
// parse what we send, or one that is not ours.
func readAckLines(conn net.Conn, id string, epoch uint64, last func() uint64, ack func(n uint64) error) error {
	r := bufio.NewReaderSize(conn, 16<<10)
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				return fmt.Errorf("sender: an acknowledgement longer than %d bytes: not our server", r.Size())
			}
			return readError(conn, err)
		}
		seq, err := wire.ParseAck(line)
		var refused *wire.ErrLine
		switch {
		case errors.As(err, &refused):
			return fmt.Errorf("sender: the server refused a message: %w", err)
		case err != nil || seq.ID != id || seq.Epoch != epoch || seq.N > last():
			return fmt.Errorf("sender: acknowledgement %.60q is not for %s:%d:1..%d", line, id, epoch, last())
		}
		if err := ack(seq.N); err != nil {
			return err
		}
	}
}

// readError gives a failed read of conn its network identity: a
// *net.OpError is returned as is, an EOF is put inside one.
func readError(conn net.Conn, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) || !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
		return err
	}
	return &net.OpError{Op: "read", Net: "tcp", Source: conn.LocalAddr(), Addr: conn.RemoteAddr(), Err: err}
}

// ack marks seq acknowledged and reports whether that is news.
func (s *sender) ack(seq int) bool {
	s.mu.Lock()
	if s.acked[seq] {
		s.mu.Unlock()
		return false
	}
	s.acked[seq] = true
	s.nAcked++
	if seq < s.cursor {
		s.inflight--
	}
	n := s.nAcked
	s.mu.Unlock()
	s.progress(n)
	return true
}

// progressEvery is how many acknowledgements apart the sender logs its
// progress.
const progressEvery = 50

// progress logs, at debug level, every progressEvery-th acknowledged
// message and the last, so that a run's log shows (with the time) how far
// delivery had come when the network changed; the Wi-Fi lab waits on these
// lines.
func (s *sender) progress(acked int) {
	if acked%progressEvery == 0 || acked == s.cfg.count {
		s.log.Debug("acknowledged", zap.Int("acked", acked), zap.Int("of", s.cfg.count))
	}
}
