package gate

// This file holds the waiter list: how a sender is held while the gate is
// closed, woken, and taken off the list. Release pacing and the probe
// (release.go) decide only when a held waiter may go.

import (
	"context"
	"sync/atomic"
	"time"
)

// outcome is how a held sender's wait was settled by the gate.
type outcome uint8

const (
	held     outcome = iota // still held (or being paced)
	released                // Open let it go
	shut                    // Shutdown ended it
	dropped                 // a call of a higher priority took its place
)

// waiter is one held sender. The gate keeps them in a list in order of
// arrival, so that the oldest gives the longest current hold and paced
// release goes first come, first served.
type waiter struct {
	start time.Time
	// ctx is the caller's context, which Gate.Trial looks at so as not to
	// choose a caller that gave up.
	ctx context.Context
	// reason is why the gate was closed when the waiter was last held, for
	// its error if it gives up while being paced on an open gate.
	reason Reason
	since  time.Time // when that close began
	// All fields below are guarded by Gate.mu.
	prev, next *waiter
	inList     bool
	outcome    outcome
	slot       time.Time // when a paced release lets it go
	// forDo marks a hold by Sender.Do, which may be the probe of
	// Release.Probe; awaiting marks one that waits for the probe's success.
	forDo, awaiting bool
	// probe is set when w was released as the probe.
	probe *probe
	// priority and size are the call's Policy.Priority and Call.Size,
	// for MaxHeld; read-only after the waiter is made.
	priority int
	size     int64
	// wake is the channel the waiter parks on while the gate is closed.
	// The gate closes it (once: woken) when it settles the waiter
	// (released, shut, dropped) or when a paced release gives it a slot;
	// step gives a waiter that is held again a new one.
	wake  chan struct{}
	woken bool
}

// wakeLocked closes w's wake channel unless it is closed already. Gate.mu
// must be held.
func (w *waiter) wakeLocked() {
	if !w.woken {
		w.woken = true
		close(w.wake)
	}
}

// holdReq is what one hold needs to know about its call.
type holdReq struct {
	p *Policy
	// limit bounds the hold (zero: no bound beyond the context).
	limit time.Duration
	// forDo marks a hold by Do, which may become the probe of
	// Release.Probe.
	forDo bool
	// c is the call's options, nil for none.
	c *Call
}

// full reports whether holding one more call of size bytes would pass
// p's bounds. g.mu must be held.
func (g *Gate) fullLocked(p *Policy, size int64) bool {
	return p.MaxHeld > 0 && g.nheld >= p.MaxHeld ||
		p.MaxHeldBytes > 0 && g.heldBytes+size > p.MaxHeldBytes
}

// makeRoomLocked drops the oldest held calls that p's Overflow lets a call
// of size bytes displace, until it fits, and reports whether it fits.
// Nothing is dropped unless enough can be to make it fit. g.mu must be
// held.
func (g *Gate) makeRoomLocked(p *Policy, size int64) bool {
	if p.Overflow == Reject {
		return false
	}
	droppable := func(w *waiter) bool {
		return w.outcome == held && (w.priority < p.Priority || p.Overflow == DropOldest && w.priority == p.Priority)
	}
	// Count first: dropping calls and then rejecting anyway would lose
	// messages for nothing.
	n, bytes := g.nheld, g.heldBytes
	var last *waiter
	for w := g.head; w != nil && (p.MaxHeld > 0 && n >= p.MaxHeld || p.MaxHeldBytes > 0 && bytes+size > p.MaxHeldBytes); w = w.next {
		if droppable(w) {
			n--
			bytes -= w.size
			last = w
		}
	}
	if p.MaxHeld > 0 && n >= p.MaxHeld || p.MaxHeldBytes > 0 && bytes+size > p.MaxHeldBytes {
		return false
	}
	for w := g.head; w != nil; {
		next := w.next
		if droppable(w) {
			g.abandonLocked(w.probe)
			g.removeLocked(w)
			w.outcome = dropped
			w.wakeLocked()
			g.n.dropped.Add(1)
		}
		if w == last {
			break
		}
		w = next
	}
	return true
}

// hold is the slow path of a wait: it holds the caller while the gate is
// closed, as r says. It returns how long the caller was held and, if the
// caller was released as the probe, the probe round, which Do must end
// with confirm or abandon.
func (g *Gate) hold(ctx context.Context, r holdReq) (time.Duration, *probe, error) {
	s := g.cur.Load()
	switch {
	case s.Open:
		return 0, nil, nil
	case s.Shutdown:
		return 0, nil, g.waitError(s, 0, ErrShutdown)
	case r.p.FailFast:
		g.n.failFasts.Add(1)
		return 0, nil, g.waitError(s, 0, ErrDown)
	case ctx.Err() != nil:
		// Not held, so not counted: Canceled counts holds.
		return 0, nil, g.waitError(s, 0, context.Cause(ctx))
	}

	var size int64
	var onWaiting func(State)
	if r.c != nil {
		size, onWaiting = max(r.c.Size, 0), r.c.OnWaiting
	}
	g.mu.Lock()
	s = g.cur.Load()
	if s.Open || s.Shutdown {
		g.mu.Unlock()
		return g.hold(ctx, r)
	}
	if g.fullLocked(r.p, size) && !g.makeRoomLocked(r.p, size) {
		g.mu.Unlock()
		g.n.rejected.Add(1)
		return 0, nil, g.waitError(s, 0, ErrFull)
	}
	w := &waiter{start: time.Now(), ctx: ctx, reason: s.Reason, since: s.Since, forDo: r.forDo,
		priority: r.p.Priority, size: size, wake: make(chan struct{})}
	g.pushLocked(w)
	g.n.holds.Add(1)
	g.mu.Unlock()
	if onWaiting != nil {
		// As URLSession's taskIsWaitingForConnectivity: the caller
		// learns that it is held, and why, before it parks.
		onWaiting(s.State)
	}

	if g.cfg.Release.immediate() && r.limit == 0 {
		// The common case, kept free of timers and defers: 10,000
		// waiters released at once each pay only this.
		if done := ctx.Done(); done == nil {
			<-w.wake
		} else {
			select {
			case <-w.wake:
			case <-done:
				h, err := g.leave(w, context.Cause(ctx), &g.n.canceled)
				return h, nil, err
			}
		}
		// Only Open, Shutdown, Trial or a drop close w.wake here, and
		// each settled w before, under g.mu: w.outcome can be read without
		// the lock, so that the released waiters do not queue on g.mu.
		if w.outcome == released && !r.forDo {
			return 0, nil, nil // Wait does not report how long it held
		}
		h := time.Since(w.start)
		switch w.outcome {
		case released:
			return h, w.probe, nil // a trial's (Gate.Trial), or nil
		case shut:
			return h, nil, g.waitError(g.cur.Load(), h, ErrShutdown)
		}
		return h, nil, &WaitError{Reason: w.reason, Since: w.since, Held: h, Err: ErrDropped}
	}
	return g.park(ctx, w, r.limit)
}

// park is the rest of hold for a held waiter w whose wait is paced, probed
// or bounded by limit (when > 0).
func (g *Gate) park(ctx context.Context, w *waiter, limit time.Duration) (time.Duration, *probe, error) {
	var expire <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		expire = t.C
	}
	var pace *time.Timer // armed while a paced release makes w wait its turn
	defer func() {
		if pace != nil {
			pace.Stop()
		}
	}()
	var paceC <-chan time.Time
	var wake <-chan struct{} = w.wake // fires when the gate settles w or may have
	var probeDone <-chan struct{}     // fires when a probe round ends
	immediate := g.cfg.Release.immediate()
	for {
		done := ctx.Done()
		if done == nil && expire == nil && paceC == nil && probeDone == nil {
			// Nothing but the gate can end this wait: a plain receive
			// is cheaper to wake than a select.
			<-wake
		} else {
			select {
			case <-wake:
			case <-paceC:
			case <-probeDone:
			case <-done:
				h, err := g.leave(w, context.Cause(ctx), &g.n.canceled)
				return h, nil, err
			case <-expire:
				h, err := g.leave(w, ErrHoldExpired, &g.n.expired)
				return h, nil, err
			}
		}
		if immediate {
			// Without pacing only Open, Shutdown, Trial or a drop close
			// w.wake (a timer or the context returned above), and each
			// settled w before, under g.mu: w.outcome can be read without the
			// lock, so that thousands of released waiters do not queue
			// on g.mu.
			switch w.outcome {
			case released:
				return time.Since(w.start), w.probe, nil // a trial's, or nil
			case shut:
				h := time.Since(w.start)
				return h, nil, g.waitError(g.cur.Load(), h, ErrShutdown)
			}
		}
		st := g.step(w)
		if st.next == nil {
			return st.held, st.probe, st.err
		}
		wake, probeDone, paceC = st.next, st.probeDone, nil
		if st.delay > 0 {
			if pace == nil {
				pace = time.NewTimer(st.delay)
			} else {
				pace.Reset(st.delay)
			}
			paceC = pace.C
		}
	}
}

// stepResult is what step found: either the wait is over (next is nil;
// held and err are its result), or the waiter must wait for next to close
// and, if delay > 0, for its paced turn, or, if probeDone is not nil, for
// the probe round to end.
type stepResult struct {
	held      time.Duration
	err       error
	probe     *probe
	next      <-chan struct{}
	probeDone <-chan struct{}
	delay     time.Duration
}

// step looks at the gate for a held waiter that was woken.
func (g *Gate) step(w *waiter) stepResult {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := time.Now()
	switch w.outcome {
	case released:
		return stepResult{held: now.Sub(w.start), probe: w.probe} // a trial's, or nil
	case shut:
		h := now.Sub(w.start)
		return stepResult{held: h, err: g.waitError(g.cur.Load(), h, ErrShutdown)}
	case dropped:
		h := now.Sub(w.start)
		return stepResult{held: h, err: &WaitError{Reason: w.reason, Since: w.since, Held: h, Err: ErrDropped}}
	}
	s := g.cur.Load()
	if !s.Open {
		// Closed again before this waiter's paced turn: hold it again,
		// on a new channel if its old one was closed.
		w.reason, w.since = s.Reason, s.Since
		if w.woken {
			w.wake, w.woken = make(chan struct{}), false
		}
		return stepResult{next: w.wake}
	}
	if w.awaiting {
		if g.probe != nil {
			// Wait for the probe's verdict, or for the gate to close.
			return stepResult{next: s.changed, probeDone: g.probe.done}
		}
		w.slot, w.awaiting = now, false // defensive: no round to wait for
	}
	if d := w.slot.Sub(now); d > 0 {
		// Wait for the turn, but wake at once if the gate closes.
		return stepResult{next: s.changed, delay: d}
	}
	g.removeLocked(w)
	g.n.releases.Add(1)
	p := w.probe
	w.probe = nil
	return stepResult{held: now.Sub(w.start), probe: p}
}

// leave ends a hold that the caller gave up (cause), counting it in c,
// unless the gate settled the wait first: then that result stands.
func (g *Gate) leave(w *waiter, cause error, c *atomic.Uint64) (time.Duration, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.cur.Load()
	heldFor := time.Since(w.start)
	switch w.outcome {
	case released:
		// Open released it in the same instant; the gate was open, so
		// the wait succeeded.
		return heldFor, nil
	case shut:
		return heldFor, g.waitError(s, heldFor, ErrShutdown)
	case dropped:
		return heldFor, &WaitError{Reason: w.reason, Since: w.since, Held: heldFor, Err: ErrDropped}
	}
	// A probe that gives up before it was told it is one hands over.
	g.abandonLocked(w.probe)
	g.removeLocked(w)
	c.Add(1)
	return heldFor, &WaitError{Reason: w.reason, Since: w.since, Held: heldFor, Err: cause}
}

// pushLocked appends w to the held list. g.mu must be held.
func (g *Gate) pushLocked(w *waiter) {
	w.inList = true
	w.prev = g.tail
	if g.tail == nil {
		g.head = w
	} else {
		g.tail.next = w
	}
	g.tail = w
	g.nheld++
	g.heldBytes += w.size
}

// removeLocked takes w out of the held list. g.mu must be held.
func (g *Gate) removeLocked(w *waiter) {
	if !w.inList {
		return
	}
	if w.prev == nil {
		g.head = w.next
	} else {
		w.prev.next = w.next
	}
	if w.next == nil {
		g.tail = w.prev
	} else {
		w.next.prev = w.prev
	}
	w.prev, w.next, w.inList = nil, nil, false
	g.nheld--
	g.heldBytes -= w.size
}
