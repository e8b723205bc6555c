package gate

import (
	"context"
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
	// While the gate is open: the contexts of the send attempts that began
	// in this state (attempt.go), cancelled when the state ends.
	attempts attempts
}

// Gate holds important sends while the network is down and releases them
// when it returns. A *Gate is the owner's handle: its owner (the Monitor,
// or a test) drives it with [Gate.Open], [Gate.Close] and [Gate.Shutdown],
// and hands senders [Gate.Sender], a view that can wait and send but not
// open, close or shut the gate down, as the context package keeps a
// context's CancelFunc apart from the Context. A Gate is safe for
// concurrent use and must be made with [New].
//
// Waiting on an open gate costs one atomic load: no lock, no allocation,
// no system call. A closed gate parks its waiters on a channel that Open
// closes, so nothing spins and a waiter can give up when its context ends.
type Gate struct {
	// cur is the current state. Written only with mu held.
	cur atomic.Pointer[snapshot]

	cfg     Config  // read-only after New
	backoff Backoff // cfg.Backoff with defaults
	// view is the Sender that [Gate.Sender] returns: the gate under
	// Config.Policy. Read-only after New.
	view Sender

	mu sync.Mutex // guards head, tail, nheld, heldBytes, probe, the snapshots' attempts and every transition of cur
	// head and tail are the held senders, oldest first.
	head, tail *waiter
	nheld      int
	// heldBytes is the sum of the held senders' Call.Size.
	heldBytes int64
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
	rejected, dropped                             atomic.Uint64
	opens, closes                                 atomic.Uint64
	sendErrors, retries, exhausted, interrupted   atomic.Uint64
	stopped, trials                               atomic.Uint64
}

// New returns a gate configured by cfg, which it checks first: the error
// names the first field out of range.
func New(cfg Config) (*Gate, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg, backoff: cfg.Backoff.withDefaults()}
	g.view = Sender{g: g, p: cfg.Policy}
	s := &snapshot{State: State{Open: true, Since: time.Now(), changed: make(chan struct{})}}
	if cfg.StartClosed != (Reason{}) {
		s.Open = false
		s.Reason = cfg.StartClosed
	}
	g.cur.Store(s)
	return g, nil
}

// State returns the gate's current state.
func (g *Gate) State() State { return g.cur.Load().State }

// Sender returns the view of g that senders get: it waits and sends under
// [Config.Policy] ([Sender.With] gives other policies), and has no method
// that opens, closes or shuts down the gate. It returns the same *Sender
// on every call.
func (g *Gate) Sender() *Sender { return &g.view }

// The owner can also wait and send: these are [Gate.Sender]'s methods,
// for an owner that is its own sender (a test, a program without a
// Monitor). Hand senders g.Sender(), never g.

// Wait is g.Sender().Wait: see [Sender.Wait].
func (g *Gate) Wait(ctx context.Context) error {
	if g.cur.Load().Open {
		return nil
	}
	return g.view.waitSlow(ctx)
}

// Do is g.Sender().Do: see [Sender.Do].
func (g *Gate) Do(ctx context.Context, send func(context.Context) error) error {
	return g.view.Do(ctx, send)
}

// With is g.Sender().With: see [Sender.With].
func (g *Gate) With(p Policy) *Sender { return g.view.With(p) }

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
		g.publishLocked(&snapshot{State: State{Reason: r, Since: time.Now(), Seq: s.Seq + 1}})
		// Sends under way on the link that just went away return at once
		// instead of waiting out their own deadlines. After the publish:
		// an interrupted Do must find the gate closed, and hold.
		s.attempts.interruptLocked(&interruptedError{reason: r})
	case s.Reason != r:
		// Same outage, better explanation: held senders stay parked.
		g.publishLocked(&snapshot{State: State{Reason: r, Since: s.Since, Seq: s.Seq + 1}})
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
	// Publish first: a waiter woken below must find the gate shut down.
	g.publishLocked(&snapshot{State: State{Shutdown: true, Reason: s.Reason, Since: time.Now(), Seq: s.Seq + 1}})
	for w := g.head; w != nil; {
		next := w.next
		w.outcome = shut
		w.prev, w.next, w.inList = nil, nil, false
		w.wakeLocked()
		w = next
	}
	g.head, g.tail, g.nheld, g.heldBytes = nil, nil, 0, 0
	g.endProbeLocked()
	s.attempts.interruptLocked(&interruptedError{reason: s.Reason, shutdown: true})
}

// publishLocked makes next the current state and tells watchers of the old
// one. g.mu must be held.
func (g *Gate) publishLocked(next *snapshot) {
	next.changed = make(chan struct{})
	old := g.cur.Swap(next)
	close(old.changed)
}

// waitError builds the error of a wait that ended while s was current.
func (g *Gate) waitError(s *snapshot, heldFor time.Duration, err error) error {
	return &WaitError{Reason: s.Reason, Since: s.Since, Held: heldFor, Err: err}
}
