package gate

import (
	"fmt"
	"math"
	"time"
)

// Config configures a [Gate]. The zero value is a gate that starts open,
// holds every sender until its context ends, releases all held senders at
// once when it opens, retries retryable errors in [Gate.Do] with
// full-jitter backoff from 1 s to 60 s and no attempt limit, and reports
// nothing.
//
// Config is a plain struct so that a program can fill it from flags and
// print it; the two hooks are the only fields that are code.
type Config struct {
	// StartClosed, when it is not the zero Reason, makes the gate start
	// closed for that reason, e.g. Reason{Code: "unknown"} until the owner
	// has read the network's state once. The zero value starts the gate
	// open, so that a gate nobody drives never blocks a send.
	StartClosed Reason

	// Policy is what [Gate.Wait] and [Gate.Do] do while the gate is closed.
	// The zero value holds until the caller's context ends, with no attempt
	// limit. [Gate.With] overrides it for one sender or one call.
	Policy Policy

	// Release paces the release of held senders when the gate opens. The
	// zero value releases them all at once.
	Release Release

	// Backoff is the delay between attempts in [Gate.Do] while the gate
	// stays open. The zero value means 1 s doubling up to 60 s, with full
	// jitter.
	Backoff Backoff

	// OnError, if not nil, is called by [Gate.Do] after every failed send
	// attempt, in the sender's goroutine, before Do decides whether to
	// retry. The owner of the gate correlates these with link state (the
	// Monitor wires it to Monitor.Report). It runs without the gate's lock,
	// so it may call [Gate.Close]; if it does, Do holds instead of backing
	// off. It must not block: the sender waits for it.
	OnError func(Attempt)

	// OnSuccess, if not nil, is called by [Gate.Do] after a send succeeded,
	// in the sender's goroutine, without the gate's lock. It must not
	// block. The owner can use it to see that sends go through again.
	OnSuccess func(Attempt)
}

// Policy is what a sender does while the gate is closed. The zero value
// holds until the caller's context ends and retries connection errors
// without an attempt limit, which is what important messages need.
type Policy struct {
	// FailFast makes a wait on a closed gate return at once with an error
	// that wraps [ErrDown], instead of holding: for best-effort telemetry
	// that must not pile up while the link is down. It overrides MaxHold.
	FailFast bool

	// MaxHold bounds how long one call is held, separately from the
	// caller's deadline: a call held longer fails with an error wrapping
	// [ErrHoldExpired]. In [Gate.Do] it bounds the sum of all holds of that
	// call. Zero means no bound beyond the context.
	MaxHold time.Duration

	// MaxAttempts bounds how many times [Gate.Do] calls send. When the bound
	// is reached on a retryable error, Do fails with an error wrapping
	// [ErrAttemptsExhausted]. Zero means no bound: an important send is
	// retried until its context ends, because a hidden attempt limit is a
	// silent way to lose messages.
	MaxAttempts int
}

// Release paces the release of held senders when the gate opens, so that
// hundreds of senders do not reconnect to a weak access point in the same
// millisecond. Held senders are released in the order they arrived. Senders
// that arrive while the gate is open pass at once, even while earlier ones
// are still being paced: the open fast path must stay a single atomic load.
//
// With both fields set, the i-th held sender is released at
// i/Rate + U(0, Spread) after [Gate.Open].
type Release struct {
	// Rate is the most held senders released per second. Zero means no
	// limit.
	Rate float64

	// Spread releases each held sender at a uniformly random moment within
	// this duration after the gate opens (jitter). Zero means none.
	Spread time.Duration

	// Probe, as in a circuit breaker's half-open state, lets one held
	// [Gate.Do] call go first when the gate opens: the oldest. The other
	// held Do calls stay held until a send through Do succeeds (the
	// probe's, or that of any Do call that arrived after the gate opened),
	// and are then released as Rate and Spread say. While the probe fails
	// with retryable errors it backs off and retries, and the others wait;
	// if it gives up (its context ends, a non-retryable error), the next
	// oldest becomes the probe. Held [Gate.Wait] callers take no part:
	// Wait learns nothing of the send that follows, so they are released
	// as without Probe.
	Probe bool
}

// immediate reports whether r releases everyone at once.
func (r Release) immediate() bool { return r.Rate == 0 && r.Spread == 0 && !r.Probe }

// Backoff is the capped exponential backoff with full jitter that
// [Gate.Do] sleeps between attempts while the gate stays open: before the
// n-th retry it sleeps a uniformly random duration in [0, min(Max,
// Initial*2^n)). Full jitter keeps a fleet of senders from retrying in step.
// After the gate has held a sender and reopened, the next attempt starts
// at once (subject to [Release]) and the backoff starts over.
type Backoff struct {
	// Initial is the ceiling of the first delay. Zero means 1 s.
	Initial time.Duration
	// Max caps the ceiling. Zero means 60 s.
	Max time.Duration
}

// The defaults of [Backoff]. gRPC uses 1 s growing to 120 s with ±20%
// jitter; AWS's full jitter with a 60 s cap did as well in the research
// simulation and spreads a fleet better right after an outage.
const (
	defaultInitial = time.Second
	defaultMax     = 60 * time.Second
)

// withDefaults returns b with its zero fields set to the defaults.
func (b Backoff) withDefaults() Backoff {
	if b.Initial == 0 {
		b.Initial = defaultInitial
	}
	if b.Max == 0 {
		b.Max = defaultMax
	}
	return b
}

// validate names the first field of c that is out of range.
func (c Config) validate() error {
	switch {
	case c.Policy.MaxHold < 0:
		return fmt.Errorf("gate: Config.Policy.MaxHold: %v, want >= 0", c.Policy.MaxHold)
	case c.Policy.MaxAttempts < 0:
		return fmt.Errorf("gate: Config.Policy.MaxAttempts: %d, want >= 0", c.Policy.MaxAttempts)
	case math.IsNaN(c.Release.Rate) || math.IsInf(c.Release.Rate, 0) || c.Release.Rate < 0:
		return fmt.Errorf("gate: Config.Release.Rate: %v, want a finite number >= 0", c.Release.Rate)
	case c.Release.Spread < 0:
		return fmt.Errorf("gate: Config.Release.Spread: %v, want >= 0", c.Release.Spread)
	case c.Backoff.Initial < 0:
		return fmt.Errorf("gate: Config.Backoff.Initial: %v, want >= 0", c.Backoff.Initial)
	case c.Backoff.Max < 0:
		return fmt.Errorf("gate: Config.Backoff.Max: %v, want >= 0", c.Backoff.Max)
	}
	b := c.Backoff.withDefaults()
	if b.Max < b.Initial {
		return fmt.Errorf("gate: Config.Backoff.Max: %v, want >= Initial (%v)", b.Max, b.Initial)
	}
	return nil
}
