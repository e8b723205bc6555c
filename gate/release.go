package gate

// This file holds the release: what Open does with the held waiters (all
// at once, paced by Rate and Spread, or behind a probe) and the probe
// rounds of Release.Probe. The waiter list itself is in waiters.go.

import (
	"math/rand/v2"
	"time"
)

// probe is one round of Release.Probe: one held Do call went first, and
// the others wait for done, which closes when a send succeeded or the
// probe role passed on (its attempt failed, it gave up, or ProbeTimeout
// passed: then a new round begins with the next oldest).
type probe struct {
	done chan struct{}
	// timer passes the role on after Release.ProbeTimeout; nil without.
	timer *time.Timer
	// trial marks no round but a call let through by Gate.Trial: it
	// makes one attempt while the gate stays closed.
	trial bool
}

// Trial lets the oldest held [Sender.Do] call make one attempt while the
// gate stays closed, as a circuit breaker in its half-open state lets one
// request through: the owner's way to test a path it closed on a guess
// (the Monitor's data-stall verdict). The attempt goes to
// [Config.OnSuccess] or [Config.OnError] as any other; an owner that opens
// the gate on the success releases the rest. A failed attempt is held
// again (behind the others) unless its decision ends the call, so that the
// next trial tries another call.
//
// When no Do call is held, Trial lets the oldest held [Sender.Wait] caller
// through instead: its Wait returns nil while the gate stays closed. The
// gate learns nothing of the send that follows, so that caller's outcome
// must reach the owner some other way: with the Monitor, a success
// reported (Monitor.ReportSuccess or ReportSuccessTo, the local API's
// POST /v1/success) opens the gate, a failure reported keeps it closed,
// and an outcome never reported leaves it to the next trial or to the
// verdict's end. Do calls go first: their outcome reaches the owner by
// itself. A waiter whose context has ended is passed over, so that no
// trial goes to a caller that will not send.
//
// Trial reports whether a caller was let through: false on an open or
// shut down gate, or when nobody is held.
func (g *Gate) Trial() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if s := g.cur.Load(); s.Open || s.Shutdown {
		return false
	}
	var wait *waiter // the oldest held Wait caller, in case no Do call is held
	for w := g.head; w != nil; w = w.next {
		if w.outcome != held || w.ctx.Err() != nil {
			continue // its caller gave up (and leaves): the trial would be lost
		}
		if w.forDo {
			g.trialLocked(w, &probe{trial: true})
			return true
		}
		if wait == nil {
			wait = w
		}
	}
	if wait == nil {
		return false
	}
	g.trialLocked(wait, nil)
	return true
}

// trialLocked releases the held waiter w for a trial while the gate stays
// closed; p marks a Do call's one attempt (nil for a Wait). g.mu must be
// held.
func (g *Gate) trialLocked(w *waiter, p *probe) {
	g.removeLocked(w)
	w.outcome, w.probe = released, p
	w.wakeLocked()
	g.n.releases.Add(1)
	g.n.trials.Add(1)
}

// startProbeLocked makes w the probe of a new round. g.mu must be held.
func (g *Gate) startProbeLocked(w *waiter, now time.Time) {
	p := &probe{done: make(chan struct{})}
	if d := g.cfg.Release.ProbeTimeout; d > 0 {
		// The timer's goroutine only passes the role on; it is the one
		// goroutine the package ever causes, and only with ProbeTimeout.
		p.timer = time.AfterFunc(d, func() { g.abandon(p) })
	}
	w.slot, w.awaiting, w.probe = now, false, p
	g.probe = p
	g.probing.Store(true)
}

// Open opens the gate and releases every held sender, at once or paced as
// [Config.Release] says. Opening an open or shut down gate does nothing.
func (g *Gate) Open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.cur.Load()
	if s.Open || s.Shutdown {
		return
	}
	now := time.Now()
	// Publish first: a waiter woken below must find the gate open, as
	// its Wait's nil says it is.
	g.n.opens.Add(1)
	g.publishLocked(&snapshot{State: State{Open: true, Since: now, Seq: s.Seq + 1}})
	if r := g.cfg.Release; r.immediate() {
		// Settle every waiter here, so that a released waiter returns
		// without taking the lock again: 10,000 of them waking at once
		// would otherwise queue on mu.
		//
		// Each waiter parks on its own channel: closing them one by one
		// costs what closing one shared channel does (the runtime wakes
		// each parked goroutine either way), and a waiter's wake-up then
		// touches no lock that 10,000 others contend for.
		for w := g.head; w != nil; {
			next := w.next
			w.outcome = released
			w.prev, w.next, w.inList = nil, nil, false
			w.wakeLocked()
			w = next
		}
		g.n.releases.Add(uint64(g.nheld))
		g.head, g.tail, g.nheld, g.heldBytes = nil, nil, 0, 0
	} else {
		// Paced: give each waiter, oldest first, the moment it may go. The
		// waiters stay in the list until they leave; if the gate closes
		// before their moment, they are held again and the next Open
		// gives them a new one.
		var first *waiter // the probe, if Release.Probe is set
		if r.Probe {
			for w := g.head; w != nil; w = w.next {
				if w.forDo {
					first = w
					break
				}
			}
		}
		i := 0
		for w := g.head; w != nil; w = w.next {
			w.probe = nil // from a round that ended with the last Close
			switch {
			case w == first:
				w.slot, w.awaiting = now, false
			case first != nil && w.forDo:
				w.awaiting = true
			default:
				w.slot, w.awaiting = g.slot(now, i), false
				i++
			}
		}
		if first != nil {
			g.startProbeLocked(first, now)
		}
		for w := g.head; w != nil; w = w.next {
			w.wakeLocked() // to look at its slot
		}
	}
}

// slot returns when the i-th paced sender may go, for a release that
// began at start.
func (g *Gate) slot(start time.Time, i int) time.Time {
	r := g.cfg.Release
	var d time.Duration
	if r.Rate > 0 {
		d = time.Duration(float64(i) / r.Rate * float64(time.Second))
	}
	if r.Spread > 0 {
		d += rand.N(r.Spread)
	}
	return start.Add(d)
}

// confirm ends the current probe round because a send succeeded: the Do
// calls that waited for it are released, paced.
func (g *Gate) confirm() {
	g.mu.Lock()
	defer g.mu.Unlock()
	p := g.probe
	if p == nil {
		return
	}
	now := time.Now()
	i := 0
	for w := g.head; w != nil; w = w.next {
		if w.awaiting {
			w.slot, w.awaiting = g.slot(now, i), false
			i++
		}
	}
	g.endProbeLocked()
	close(p.done)
}

// abandonLocked passes the probe role of round p, whose Do call failed an
// attempt, gave up, or ran past ProbeTimeout, to the oldest Do call still
// waiting. g.mu must be held.
func (g *Gate) abandonLocked(p *probe) {
	if p == nil || g.probe != p {
		return // the round already ended
	}
	var next *waiter
	for w := g.head; w != nil; w = w.next {
		if w.awaiting {
			next = w
			break
		}
	}
	g.endProbeLocked()
	if next != nil {
		g.startProbeLocked(next, time.Now())
	}
	close(p.done) // wakes the waiters: the new probe goes, the rest wait on
}

// abandon is abandonLocked for a Do call that does not hold g.mu.
func (g *Gate) abandon(p *probe) {
	if p == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	g.abandonLocked(p)
}

// endProbeLocked forgets the current probe round. g.mu must be held.
func (g *Gate) endProbeLocked() {
	if g.probe != nil && g.probe.timer != nil {
		g.probe.timer.Stop()
	}
	g.probe = nil
	g.probing.Store(false)
}

// Close closes the gate for reason r: from now on, senders are held (or
