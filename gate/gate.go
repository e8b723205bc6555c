package gate

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Reason says why a gate was closed. It is small and cheap to copy: the
// owner fills it from its own state, e.g. Reason{Code: "carrier-lost",
// Iface: "wlan0"}.
type Reason struct {
	// Code is a short machine-readable cause, e.g. "carrier-lost" or
	// "no-default-route".
	Code string
	// Iface is the interface the cause concerns, or "" when none does.
	Iface string
}

// String returns "carrier-lost on wlan0", "carrier-lost", "closed on wlan0",
// or "no reason given" for the zero Reason.
func (r Reason) String() string {
	switch {
	case r.Code == "" && r.Iface == "":
		return "no reason given"
	case r.Iface == "":
		return r.Code
	case r.Code == "":
		return "closed on " + r.Iface
	}
	return r.Code + " on " + r.Iface
}

// State is the gate's state at one moment. Its [State.Changed] channel
// closes when the gate leaves that state, so a caller can follow the gate
// without polling:
//
//	for s := g.State(); !s.Shutdown; s = g.State() {
//		use(s)
//		select {
//		case <-s.Changed():
//		case <-ctx.Done():
//			return
//		}
//	}
type State struct {
	// Open reports whether sends pass.
	Open bool
	// Shutdown reports whether the gate was shut down for good. A shut down
	// gate is not open, and its Changed channel never closes.
	Shutdown bool
	// Reason is why the gate is closed; the zero Reason while it is open.
	Reason Reason
	// Since is when the gate last opened, closed or was shut down. A new
	// reason for a gate that is already closed does not move it: the
	// outage began at the first close.
	Since time.Time
	// Seq counts the changes since the gate was made, starting at zero.
	// Every change, including a new reason, increments it.
	Seq uint64

	changed chan struct{}
}

// Changed returns a channel that is closed when the gate leaves this state,
// in the style of context.Done.
func (s State) Changed() <-chan struct{} { return s.changed }

// snapshot is one immutable state of the gate. The current one is read
// with one atomic load; transitions publish a new one under Gate.mu.
type snapshot struct {
	State
	// period is the current outage while the gate is closed; nil while it
	// is open or shut down.
	period *period
}

// period is one outage: from a close of an open gate to the next Open or
// Shutdown. Held senders park on done; a new reason does not wake them.
type period struct {
	done chan struct{}
}

// outcome is how a held sender's wait was settled by the gate.
type outcome uint8

const (
	held     outcome = iota // still held (or being paced)
	released                // Open let it go
	shut                    // Shutdown ended it
)

// waiter is one held sender. The gate keeps them in a list in order of
// arrival, so that the oldest gives the longest current hold and paced
// release goes first come, first served.
type waiter struct {
	start time.Time
	// reason is why the gate was closed when the waiter was last held, for
	// its error if it gives up while being paced on an open gate.
	reason Reason
	since  time.Time // when that close began
	// All fields below are guarded by Gate.mu.
	prev, next *waiter
	inList     bool
	outcome    outcome
	slot       time.Time // when a paced release lets it go
	// forDo marks a hold by Gate.Do, which may be the probe of
	// Release.Probe; awaiting marks one that waits for the probe's success.
	forDo, awaiting bool
	// probe is set when w was released as the probe.
	probe *probe
}

// probe is one round of Release.Probe: one held Do call went first, and
// the others wait for done, which closes when a send succeeded or the probe
// gave up (then a new round begins).
type probe struct {
	done chan struct{}
}

// Gate holds important sends while the network is down and releases them
// when it returns. It is driven by its owner through [Gate.Open],
// [Gate.Close] and [Gate.Shutdown]; senders call [Gate.Wait] or [Gate.Do].
// A Gate is safe for concurrent use and must be made with [New].
//
// Waiting on an open gate costs one atomic load: no lock, no allocation,
// no system call. A closed gate parks its waiters on a channel that Open
// closes, so nothing spins and a waiter can give up when its context ends.
type Gate struct {
	// cur is the current state. Written only with mu held.
	cur atomic.Pointer[snapshot]

	cfg     Config  // read-only after New
	backoff Backoff // cfg.Backoff with defaults

	mu sync.Mutex // guards head, tail, nheld, probe and every transition of cur
	// head and tail are the held senders, oldest first.
	head, tail *waiter
	nheld      int
	// probe is the current round of Release.Probe, nil when none.
	probe *probe
	// probing is probe != nil, readable without mu: Do checks it after
	// every success, which must stay cheap.
	probing atomic.Bool

	n counters
}

// counters are the monotonic counts behind [Stats]. They are touched only
// on slow paths, never by a wait on an open gate.
type counters struct {
	holds, releases, failFasts, expired, canceled atomic.Uint64
	opens, closes                                 atomic.Uint64
	sendErrors, retries, exhausted                atomic.Uint64
}

// New returns a gate configured by cfg, which it checks first: the error
// names the first field out of range.
func New(cfg Config) (*Gate, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg, backoff: cfg.Backoff.withDefaults()}
	s := &snapshot{State: State{Open: true, Since: time.Now(), changed: make(chan struct{})}}
	if cfg.StartClosed != (Reason{}) {
		s.Open = false
		s.Reason = cfg.StartClosed
		s.period = &period{done: make(chan struct{})}
	}
	g.cur.Store(s)
	return g, nil
}

// State returns the gate's current state.
func (g *Gate) State() State { return g.cur.Load().State }

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
	if r := g.cfg.Release; r.immediate() {
		// Settle every waiter here, so that a released waiter returns
		// without taking the lock again: 10,000 of them waking at once
		// would otherwise queue on mu.
		for w := g.head; w != nil; {
			next := w.next
			w.outcome = released
			w.prev, w.next, w.inList = nil, nil, false
			w = next
		}
		g.n.releases.Add(uint64(g.nheld))
		g.head, g.tail, g.nheld = nil, nil, 0
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
			g.probe = &probe{done: make(chan struct{})}
			first.probe = g.probe
			g.probing.Store(true)
		}
	}
	g.n.opens.Add(1)
	g.publishLocked(&snapshot{State: State{Open: true, Since: now, Seq: s.Seq + 1}})
	close(s.period.done)
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

// abandonLocked hands the probe of round p, whose Do call gave up without
// a success, to the oldest Do call still waiting. g.mu must be held.
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
		next.slot, next.awaiting = time.Now(), false
		g.probe = &probe{done: make(chan struct{})}
		next.probe = g.probe
		g.probing.Store(true)
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
	g.probe = nil
	g.probing.Store(false)
}

// Close closes the gate for reason r: from now on, senders are held (or
// fail fast). Closing a closed gate with a different reason records the new
// reason and keeps the time the outage began. Closing a shut down gate does
// nothing.
func (g *Gate) Close(r Reason) {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.cur.Load()
	switch {
	case s.Shutdown:
		return
	case s.Open:
		// A probe round ends with the open period; the next Open starts
		// a new one. Waiters of this one wake on the state change.
		g.endProbeLocked()
		g.n.closes.Add(1)
		g.publishLocked(&snapshot{
			State:  State{Reason: r, Since: time.Now(), Seq: s.Seq + 1},
			period: &period{done: make(chan struct{})},
		})
	case s.Reason != r:
		// Same outage, better explanation: held senders stay parked on
		// the same period.
		g.publishLocked(&snapshot{
			State:  State{Reason: r, Since: s.Since, Seq: s.Seq + 1},
			period: s.period,
		})
	}
}

// Shutdown closes the gate for good: every held sender and every later
// wait fails with an error wrapping [ErrShutdown]. Open and Close do
// nothing afterwards. Shutdown is idempotent.
func (g *Gate) Shutdown() {
	g.mu.Lock()
	defer g.mu.Unlock()
	s := g.cur.Load()
	if s.Shutdown {
		return
	}
	for w := g.head; w != nil; {
		next := w.next
		w.outcome = shut
		w.prev, w.next, w.inList = nil, nil, false
		w = next
	}
	g.head, g.tail, g.nheld = nil, nil, 0
	g.endProbeLocked()
	g.publishLocked(&snapshot{State: State{Shutdown: true, Reason: s.Reason, Since: time.Now(), Seq: s.Seq + 1}})
	if s.period != nil {
		close(s.period.done)
	}
}

// publishLocked makes next the current state and tells watchers of the old
// one. g.mu must be held.
func (g *Gate) publishLocked(next *snapshot) {
	next.changed = make(chan struct{})
	old := g.cur.Swap(next)
	close(old.changed)
}

// Wait returns nil when the gate is open. While it is closed, Wait holds
// the caller until the gate opens, or returns a [*WaitError] (which says
// why the gate was closed and for how long the caller was held) when the
// caller's context ends, when the gate is shut down, or as the gate's
// [Config.Policy] says (fail fast, maximum hold). Use [Gate.With] to wait
// under another policy.
//
// On an open gate Wait is one atomic load. Waiting says nothing about
// whether the send that follows will succeed; the link can drop between
// the two. [Gate.Do] owns the whole loop.
func (g *Gate) Wait(ctx context.Context) error {
	if g.cur.Load().Open {
		return nil
	}
	return g.waitSlow(ctx)
}

// waitSlow is Wait on a gate that was closed a moment ago, kept out of
// Wait so that Wait stays small enough to be inlined into the sender.
//
//go:noinline
func (g *Gate) waitSlow(ctx context.Context) error {
	_, _, err := g.hold(ctx, g.cfg.Policy.FailFast, g.cfg.Policy.MaxHold, false)
	return err
}

// hold is the slow path of a wait: it holds the caller while the gate is
// closed. limit bounds the hold (zero: no bound); forDo marks a hold by
// Gate.Do, which may become the probe of Release.Probe. It returns how long
// the caller was held and, if the caller was released as the probe, the
// probe round, which Do must end with confirm or abandon.
func (g *Gate) hold(ctx context.Context, failFast bool, limit time.Duration, forDo bool) (time.Duration, *probe, error) {
	s := g.cur.Load()
	switch {
	case s.Open:
		return 0, nil, nil
	case s.Shutdown:
		return 0, nil, g.waitError(s, 0, ErrShutdown)
	case failFast:
		g.n.failFasts.Add(1)
		return 0, nil, g.waitError(s, 0, ErrDown)
	case ctx.Err() != nil:
		// Not held, so not counted: Canceled counts holds.
		return 0, nil, g.waitError(s, 0, context.Cause(ctx))
	}

	g.mu.Lock()
	s = g.cur.Load()
	if s.Open || s.Shutdown {
		g.mu.Unlock()
		return g.hold(ctx, false, limit, forDo)
	}
	w := &waiter{start: time.Now(), reason: s.Reason, since: s.Since, forDo: forDo}
	g.pushLocked(w)
	g.n.holds.Add(1)
	g.mu.Unlock()

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
	var wake <-chan struct{} = s.period.done // fires when the gate settles or may have
	var probeDone <-chan struct{}            // fires when a probe round ends
	immediate := g.cfg.Release.immediate()
	for {
		select {
		case <-wake:
			if immediate {
				// Open or Shutdown settled w before closing wake, and
				// nothing writes w.outcome after that: it can be read
				// without the lock, so that thousands of released
				// waiters do not queue on g.mu.
				switch w.outcome {
				case released:
					return time.Since(w.start), nil, nil
				case shut:
					h := time.Since(w.start)
					return h, nil, g.waitError(g.cur.Load(), h, ErrShutdown)
				}
			}
		case <-paceC:
		case <-probeDone:
		case <-ctx.Done():
			h, err := g.leave(w, context.Cause(ctx), &g.n.canceled)
			return h, nil, err
		case <-expire:
			h, err := g.leave(w, ErrHoldExpired, &g.n.expired)
			return h, nil, err
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
		return stepResult{held: now.Sub(w.start)}
	case shut:
		h := now.Sub(w.start)
		return stepResult{held: h, err: g.waitError(g.cur.Load(), h, ErrShutdown)}
	}
	s := g.cur.Load()
	if !s.Open {
		// Closed again before this waiter's paced turn: hold it again.
		w.reason, w.since = s.Reason, s.Since
		return stepResult{next: s.period.done}
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
	}
	// A probe that gives up before it was told it is one hands over.
	g.abandonLocked(w.probe)
	g.removeLocked(w)
	c.Add(1)
	return heldFor, &WaitError{Reason: w.reason, Since: w.since, Held: heldFor, Err: cause}
}

// waitError builds the error of a wait that ended while s was current.
func (g *Gate) waitError(s *snapshot, heldFor time.Duration, err error) error {
	return &WaitError{Reason: s.Reason, Since: s.Since, Held: heldFor, Err: err}
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
}
