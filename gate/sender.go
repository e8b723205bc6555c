package gate

import (
	"context"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// Sender is the view of a [Gate] that senders get, from [Gate.Sender] or
// the Monitor's Gate and GateFor: it waits and sends under a [Policy], and
// reads the gate's State and Stats, but cannot open, close or shut down
// the gate. A sender that could would hold every other sender with it, so
// those stay with the owner's *Gate.
//
// A *Sender is safe for concurrent use. [Sender.With] gives a Sender with
// another policy, per kind of sender or per call:
//
//	telemetry := m.Gate().With(gate.Policy{FailFast: true})
//	err := telemetry.Do(ctx, sendSample)
type Sender struct {
	g *Gate
	p Policy
}

// With returns a Sender that waits on the same gate under policy p
// instead of this one's. Negative MaxHold, MaxAttempts, MaxHeld and
// MaxHeldBytes count as zero (no limit); an Overflow out of range counts
// as [Reject].
func (s *Sender) With(p Policy) *Sender {
	p.MaxHold, p.MaxAttempts = max(p.MaxHold, 0), max(p.MaxAttempts, 0)
	p.MaxHeld, p.MaxHeldBytes = max(p.MaxHeld, 0), max(p.MaxHeldBytes, 0)
	if p.Overflow > DropOldest {
		p.Overflow = Reject
	}
	return &Sender{g: s.g, p: p}
}

// Policy returns the sender's policy.
func (s *Sender) Policy() Policy { return s.p }

// State returns the gate's current state.
func (s *Sender) State() State { return s.g.cur.Load().State }

// Stats returns the gate's counters (of all its senders).
func (s *Sender) Stats() Stats { return s.g.Stats() }

// Wait returns nil when the gate is open. While it is closed, Wait holds
// the caller until the gate opens, or returns a [*WaitError] (which says
// why the gate was closed and for how long the caller was held) when the
// caller's context ends, when the gate is shut down, or as the sender's
// [Policy] says (fail fast, maximum hold, MaxHeld).
//
// On an open gate Wait is one atomic load. Waiting says nothing about
// whether the send that follows will succeed; the link can drop between
// the two. [Sender.Do] owns the whole loop.
//
// Wait also returns nil, with the gate still closed, when the owner lets
// the caller through for a trial ([Gate.Trial]: the Monitor does, while a
// data-stall verdict holds and no Do call is held): the caller then sends,
// and reports the outcome to the owner (the Monitor's ReportSuccessTo or
// Report), since a success reported is what reopens the gate. Check
// [Sender.State] after Wait to tell a trial from an open gate.
func (s *Sender) Wait(ctx context.Context) error {
	if s.g.cur.Load().Open {
		return nil
	}
	return s.waitSlow(ctx)
}

// waitSlow is Wait on a gate that was closed a moment ago, kept out of
// Wait so that Wait stays small enough to be inlined into the sender.
//
//go:noinline
func (s *Sender) waitSlow(ctx context.Context) error {
	_, _, err := s.g.hold(ctx, holdReq{p: &s.p, limit: s.p.MaxHold})
	return err
}

// Call is what one [Sender.DoCall] says about itself.
type Call struct {
	// Size is the message's size in bytes, counted against
	// [Policy.MaxHeldBytes] while the call is held. Zero (or negative)
	// counts as nothing.
	Size int64

	// OnWaiting, if not nil, is called each time the call is about to be
	// held because the gate is closed, with the gate's state (its
	// Reason), in the caller's goroutine, before it parks: as URLSession's
	// taskIsWaitingForConnectivity, a place to tell the user "waiting for
	// the network". It must not block.
	OnWaiting func(State)

	// Dst is the address the call sends to, when the caller knows it
	// (the zero Addr when not): it is given to [Config.OnError] and
	// [Config.OnSuccess] in [Attempt].Dst, so that the owner can tell the
	// failures and successes of one peer from those of the path (the
	// Monitor counts successes per destination).
	Dst netip.Addr
}

// Result describes one [Sender.DoCall], whatever its outcome. It belongs
// to the call alone: nothing in it is shared with other calls.
type Result struct {
	// Attempts is how many times send was called.
	Attempts int
	// Held is how long the gate held the call, in all.
	Held time.Duration
}

// Attempt describes one call of send by [Sender.Do], for
// [Config.OnError] and [Config.OnSuccess].
type Attempt struct {
	// N is the attempt's number, 1 for the first.
	N int
	// Err is the error send returned; nil for a success.
	Err error
	// Class is Err's class: [classify.Canceled] when the Do call's
	// context had ended, [classify.Network] when the gate closed during
	// the attempt (the link's failure, not the caller's cancel), else
	// [classify.Classify] of Err.
	Class classify.Class
	// Decision is whether Do sends again, and why; the zero Decision for
	// a success.
	Decision Decision
	// Held is how long this Do call has been held by the gate so far.
	Held time.Duration
	// Dst is the call's [Call].Dst: the zero Addr for [Sender.Do] and for a
	// DoCall that gave none.
	Dst netip.Addr
}

// Do sends with send while the gate lets it, and keeps an important send
// from being lost to a dropped link. It owns the whole loop, because a
// check before sending is not enough (the link can drop between the check
// and the send):
//
//  1. wait while the gate is closed, as [Sender.Wait] does;
//  2. call send with a context that is the caller's, cancelled also (with
//     a cause wrapping [ErrInterrupted]) if the gate closes during the
//     attempt, so that a write on a link that just died returns at once;
//     on success return nil;
//  3. classify the error and decide (see [Decision]): a send's own
//     [Permanent] or [Retryable] mark first, then [Policy.Retry], then
//     the default, which retries [classify.Class.Retryable] classes and a
//     certificate rejected for its validity period while the clock is not
//     synchronised; report the attempt to [Config.OnError];
//  4. when the decision is not to retry, or ctx has ended, return;
//  5. otherwise sleep a backoff ([Config.Backoff], or longer as
//     Decision.After says) while the gate stays open, cut short if the
//     gate closes, and go to 1. After a hold the next attempt starts at
//     once (but not before Decision.After) and the backoff starts over:
//     the owner has confirmed that the path is back. An attempt that the
//     gate's closing interrupted is held and sent again, never counted as
//     the caller giving up.
//
// Retryable errors are retried until ctx ends: there is no attempt limit
// unless [Policy.MaxAttempts] sets one, and reaching it is a distinct
// error ([ErrAttemptsExhausted]). A wait that fails before the first
// attempt returns its [*WaitError]; any failure after an attempt returns a
// [*SendError] with the attempt count, the last send error and, if a wait
// ended the loop, the wait's error.
//
// # At least once, and only if send says so
//
// Do's promise is at-least-once delivery, and it holds only when send
// returns nil after the receiver acknowledged the message (an
// application-level ACK, an MQTT PUBACK, an HTTP 2xx response read in
// full). A send that returns once the bytes are written has handed them
// to the kernel's buffer, not to the receiver: when the link drops then,
// the message is lost and Do never knows. Conversely, when the connection
// breaks after the receiver got the message but before send saw the
// acknowledgement, Do sends it again: receivers must de-duplicate, by an
// ID carried in each message (a sender ID, an epoch and a sequence
// number; not by "sequence <= last seen", which drops real messages once
// a retry reorders them).
//
// On an open gate, with a send that succeeds, Do costs one atomic load,
// a look-up of the shared attempt context, and the call of send.
func (s *Sender) Do(ctx context.Context, send func(context.Context) error) error {
	g := s.g
	if st := g.cur.Load(); st.Open {
		// The fast path: an open gate and the attempt context this
		// caller context had last time. The loop in do takes over from
		// any failure.
		if a := st.attempts.slots[0].Load(); a != nil && a.parent == ctx {
			err := send(a.ctx)
			if err == nil {
				g.succeeded(1, 0, netip.Addr{})
				return nil
			}
			_, err = g.do(ctx, &s.p, nil, send, a, err)
			return err
		}
	}
	_, err := g.do(ctx, &s.p, nil, send, nil, nil)
	return err
}

// DoCall is [Sender.Do] for one call that says more about itself (its
// size, an OnWaiting callback) and wants to know how it went: the Result
// (attempts, time held) is returned with the error, whatever it is.
func (s *Sender) DoCall(ctx context.Context, c Call, send func(context.Context) error) (Result, error) {
	return s.g.do(ctx, &s.p, &c, send, nil, nil)
}
