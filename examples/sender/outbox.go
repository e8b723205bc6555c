package main

// This file holds the sender's --outbox mode: every message is appended
// to a durable outbox before it is sent, and outbox.Drain sends them.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/outbox"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// outboxCheck is how often the outbox mode checks whether every message
// has been acknowledged (messages 1..count appended, the outbox empty,
// its store the one the run began with).
const outboxCheck = 20 * time.Millisecond

// outboxRun is one run of the --outbox mode: a producer appends messages
// last+1..count (paced by --rate), Drain sends what the outbox holds
// through the Gate, and a reader per connection acknowledges what the
// server confirms.
type outboxRun struct {
	s     *sender
	box   *outbox.Outbox
	epoch uint64
	from  uint64          // the first N this run appends; count+1 when none
	ctx   context.Context // the run's: ends the connections' watchers
	wg    sync.WaitGroup  // the connections' watchers and readers

	mu       sync.Mutex // guards the fields below
	conn     net.Conn   // the current connection, nil when none
	dead     error      // why conn ended, set by its watcher; nil while it lives
	line     []byte     // send's buffer
	lastAck  time.Time  // last acknowledgement (or first write after one) on conn
	inflight int        // written on conn and not yet acknowledged (approximate: resends count again)
	written  map[uint64]bool
	acked    map[uint64]bool
}

// openOutbox opens the --outbox store and says what it holds.
func (s *sender) openOutbox() (*outbox.Outbox, error) {
	box, err := outbox.Open(s.cfg.outbox, outbox.Config{Window: s.cfg.window, Logger: s.log.Named("outbox")})
	if err != nil {
		return nil, fmt.Errorf("sender: --outbox: %w", err)
	}
	if mv := box.MovedAside(); mv != nil {
		s.log.Warn("the outbox was unreadable and was moved aside; starting a fresh one", zap.Error(mv))
	}
	return box, nil
}

// deliverOutbox is deliver for --outbox: it returns nil once every
// message 1..count of the outbox's epoch has been appended and
// acknowledged, and an error when the outbox's store is found unreadable
// and replaced meanwhile, or records of it are found corrupt and removed
// (those messages are not acknowledged, and an empty store must not pass
// for a delivered one).
func (s *sender) deliverOutbox(ctx context.Context, box *outbox.Outbox) error {
	dctx, stop := context.WithCancelCause(ctx)
	r := &outboxRun{s: s, box: box, epoch: box.Epoch(), from: box.Last() + 1, ctx: dctx,
		written: map[uint64]bool{}, acked: map[uint64]bool{}}
	defer func() {
		stop(nil) // ends the watchers, which close their connections
		r.wg.Wait()
	}()
	errDone := errors.New("every message acknowledged")
	st0 := box.Stats()
	corrupt, moved := st0.Corrupt, st0.MovedAside // before this run
	g, gctx := errgroup.WithContext(dctx)
	g.Go(func() error { return r.produce(gctx) })
	g.Go(func() error { return box.Drain(gctx, heldSender{s}, r.send) })
	g.Go(func() error {
		tick := time.NewTicker(outboxCheck)
		defer tick.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-tick.C:
			}
			// One Stats: its counts and MovedAside come from one moment,
			// so the emptied counts of a store being replaced (Drain found
			// it unreadable) are never taken for "every message
			// acknowledged"; the epoch changes only later, in the reload.
			last, st := box.Last(), box.Stats()
			if err := r.replaced(st, moved); err != nil {
				return err
			}
			if st.Corrupt > corrupt {
				// Records that Drain found corrupt were removed, not
				// acknowledged: an empty outbox is then no proof.
				return fmt.Errorf("sender: %d messages of the outbox were found corrupt and removed before they were acknowledged (the outbox's log names them)", st.Corrupt-corrupt)
			}
			if last >= uint64(s.cfg.count) && st.Records == 0 {
				stop(errDone)
				return nil
			}
		}
	})
	err := g.Wait()
	if errors.Is(context.Cause(dctx), errDone) {
		return nil
	}
	if err == nil || errors.Is(err, context.Canceled) {
		err = context.Cause(ctx)
	}
	return err
}

// heldSender is the Gate as Drain sees it, adding each call's held time
// to the sender's.
type heldSender struct{ s *sender }

// Do sends through the Gate's DoCall and counts the time it held.
func (h heldSender) Do(ctx context.Context, send func(context.Context) error) error {
	res, err := h.s.g.DoCall(ctx, gate.Call{Dst: h.s.dst}, send)
	h.s.mu.Lock()
	h.s.held += res.Held
	h.s.mu.Unlock()
	return err
}

// replaced returns an error when the outbox's store, as st shows it, is
// no longer the one the run began with: it was found unreadable and moved
// aside (more than the moved stores before the run), or its epoch changed.
func (r *outboxRun) replaced(st outbox.Stats, moved uint64) error {
	if st.MovedAside == moved && st.Epoch == r.epoch {
		return nil
	}
	err := errors.New("sender: the outbox's store was replaced")
	if mv := r.box.MovedAside(); mv != nil {
		err = fmt.Errorf("sender: the outbox's messages of epoch %d were not all acknowledged when their store was found unreadable; it is at %s (outbox.Salvage reads it): %w", r.epoch, mv.MovedTo, mv)
	}
	return err
}

// produce appends the messages from r.from to count, at most --rate a
// second: the robot making its data, whether or not the network is up.
func (r *outboxRun) produce(ctx context.Context) error {
	var interval time.Duration
	if r.s.cfg.rate > 0 {
		interval = time.Duration(float64(time.Second) / r.s.cfg.rate)
	}
	var t *time.Timer
	next := time.Now()
	for n := r.from; n <= uint64(r.s.cfg.count); n++ {
		if interval > 0 {
			if d := time.Until(next); d > 0 {
				if t == nil {
					t = time.NewTimer(d)
					defer t.Stop()
				} else {
					t.Reset(d)
				}
				select {
				case <-ctx.Done():
					return nil
				case <-t.C:
				}
			}
			next = later(next, time.Now().Add(-paceBurst)).Add(interval)
		}
		got, err := r.box.Append(ctx, outbox.Message{Class: outbox.Important, Payload: r.s.payload})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("sender: outbox append: %w", err)
		}
		if got != n {
			// Only a store replaced under us (corrupt) renumbers.
			return fmt.Errorf("sender: the outbox numbered message %d as %d: its store was replaced", n, got)
		}
	}
	return nil
}

// send writes message m on the current connection, dialling one first
// when there is none. It runs inside the Gate's Do, so a dial is held
// while the network is down and a failure is retried as classify says.
func (r *outboxRun) send(ctx context.Context, m outbox.Message) error {
	r.mu.Lock()
	conn, dead := r.conn, r.dead
	r.mu.Unlock()
	if conn != nil && dead != nil {
		r.closeConn(nil)
		if errors.Is(dead, errReturned) || errors.Is(dead, errRebind) {
			// Nothing failed; the network changed. Mark it retryable so
			// that Do redials at once (held if the gate closed again).
			return gate.Retryable(dead, 0)
		}
		return dead
	}
	if conn == nil {
		var err error
		if conn, err = r.connect(ctx); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.line = wire.AppendMessage(r.line[:0], wire.Seq{ID: r.s.cfg.id, Epoch: m.Epoch, N: m.N}, m.Payload)
	line := r.line
	if r.inflight == 0 {
		r.lastAck = time.Now() // the stall clock starts with the first outstanding message
	}
	r.inflight++
	again := r.written[m.N]
	r.written[m.N] = true
	r.mu.Unlock()
	r.s.mu.Lock()
	if again {
		r.s.resent++
	} else {
		r.s.nWritten++
	}
	r.s.mu.Unlock()
	_ = conn.SetWriteDeadline(time.Now().Add(r.s.cfg.ackTimeout))
	if _, err := conn.Write(line); err != nil {
		err = fmt.Errorf("sender: write: %w", err)
		r.s.report(err)
		r.closeConn(err)
		return err
	}
	return nil
}

// connect dials a connection and starts its reader and watcher. The
// rebind channel is taken right before the dial, as in connect.
func (r *outboxRun) connect(ctx context.Context) (net.Conn, error) {
	rebind := r.s.rebindC()
	conn, err := r.s.dial(ctx)
	if err != nil {
		r.s.mu.Lock()
		r.s.dialFailures++
		r.s.mu.Unlock()
		r.s.log.Info("dial failed", zap.Error(err))
		return nil, err
	}
	r.mu.Lock()
	r.conn, r.dead, r.inflight, r.lastAck = conn, nil, 0, time.Now()
	r.mu.Unlock()
	readErr := make(chan error, 1)
	r.wg.Go(func() { readErr <- r.readAcks(conn) })
	r.wg.Go(func() { r.watch(r.ctx, conn, rebind, readErr) })
	return conn, nil
}

// watch ends conn when it fails, a rebind comes, acknowledgements stall
// (never while the Gate is closed), or the path returns from an outage
// with acknowledgements outstanding, and makes Drain start again from the
// oldest unacknowledged message. It returns once conn's reader has ended.
func (r *outboxRun) watch(ctx context.Context, conn net.Conn, rebind <-chan struct{}, readErr <-chan error) {
	gs := r.s.g.State()
	stall := time.NewTicker(r.s.cfg.ackTimeout / 4)
	defer stall.Stop()
	var why error
	for why == nil {
		select {
		case <-ctx.Done():
			why = context.Cause(ctx)
		case <-rebind:
			why = errRebind
		case <-gs.Changed():
			// Kept through an outage (Drain's Do holds the writes while
			// the gate is closed); given up at the return only if
			// acknowledgements are outstanding on it, as in session.
			was := gs.Open
			gs = r.s.g.State()
			r.mu.Lock()
			if returned(was, gs.Open, r.inflight) {
				why = errReturned
			}
			r.lastAck = time.Now() // no stall while closed: the clock starts again at the return
			r.mu.Unlock()
		case err := <-readErr:
			r.s.report(err)
			r.kill(conn, err)
			return
		case <-stall.C:
			r.mu.Lock()
			stalled := gs.Open && r.inflight > 0 && time.Since(r.lastAck) > r.s.cfg.ackTimeout
			r.mu.Unlock()
			if stalled {
				why = errStall
			}
		}
	}
	if errors.Is(why, errReturned) || errors.Is(why, errRebind) {
		r.s.log.Info("connection dropped", zap.Error(why))
	}
	r.kill(conn, why)
	<-readErr
}

// kill ends conn for why, if it is still the current connection, and
// wakes Drain to resend what conn did not get acknowledged.
func (r *outboxRun) kill(conn net.Conn, why error) {
	_ = conn.Close()
	r.mu.Lock()
	if r.conn == conn && r.dead == nil {
		r.dead = why
	}
	r.mu.Unlock()
	r.box.Rewind()
}

// closeConn closes the current connection, if any, and forgets it.
func (r *outboxRun) closeConn(why error) {
	r.mu.Lock()
	conn := r.conn
	r.conn, r.dead = nil, nil
	r.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
		if why != nil {
			r.box.Rewind()
		}
	}
}

// readAcks reads "ACK SEQ" lines from conn and acknowledges the messages
// in the outbox, until the connection ends; see sender.readAcks.
func (r *outboxRun) readAcks(conn net.Conn) error {
	return readAckLines(conn, r.s.cfg.id, r.epoch, r.box.Last, func(n uint64) error {
		if err := r.box.Ack(n); err != nil {
			// The outbox closed, or its disk failed: the message stays
			// pending and is sent again after a restart.
			return gate.Permanent(fmt.Errorf("sender: outbox ack: %w", err))
		}
		r.mu.Lock()
		news := !r.acked[n]
		r.acked[n] = true
		r.inflight = max(r.inflight-1, 0)
		r.lastAck = time.Now()
		r.mu.Unlock()
		if news {
			r.s.success(r.s.dst)
			r.s.mu.Lock()
			r.s.nAcked++
			n := r.s.nAcked
			r.s.mu.Unlock()
			r.s.progress(n)
		}
		return nil
	})
}
