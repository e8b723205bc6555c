package gate

import (
	"fmt"
	"math"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// Config configures a [Gate]. The zero value is a gate that starts open,
// holds every sender until its context ends, releases all held senders at
// once when it opens, retries retryable errors in [Sender.Do] with
// full-jitter backoff from 1 s to 60 s and no attempt limit, and reports
// nothing.
//
// Config is a plain struct so that a program can fill it from flags and
// print it; the hooks are the only fields that are code.
type Config struct {
	// StartClosed, when it is not the zero Reason, makes the gate start
	// closed for that reason, e.g. Reason{Code: "unknown"} until the owner
	// has read the network's state once. The zero value starts the gate
	// open, so that a gate nobody drives never blocks a send.
	StartClosed Reason

	// Policy is what [Sender.Wait] and [Sender.Do] do while the gate is closed.
	// The zero value holds until the caller's context ends, with no attempt
	// limit. [Sender.With] overrides it for one sender or one call.
	Policy Policy

	// Release paces the release of held senders when the gate opens. The
	// zero value releases them all at once.
	Release Release

	// Backoff is the delay between attempts in [Sender.Do] while the gate
	// stays open. The zero value means 1 s doubling up to 60 s, with full
	// jitter.
	Backoff Backoff

	// OnError, if not nil, is called by [Sender.Do] after every failed send
	// attempt, in the sender's goroutine, before Do decides whether to
	// retry. The owner of the gate correlates these with link state (the
	// Monitor wires it to Monitor.Report). It runs without the gate's lock,
	// so it may call [Gate.Close]; if it does, Do holds instead of backing
	// off. It must not block: the sender waits for it.
	OnError func(Attempt)

	// OnSuccess, if not nil, is called by [Sender.Do] after a send succeeded,
	// in the sender's goroutine, without the gate's lock. It must not
	// block. The owner can use it to see that sends go through again.
	OnSuccess func(Attempt)

	// ClockSynced, if not nil, reports whether the system clock is
	// synchronised (NTP, PTP, an RTC). [Sender.Do] asks it only after a
	// certificate was rejected for its validity period: while the clock
	// is not set, such a certificate will be accepted once it is, so the
	// send is retried (Decision.Reason "clock-unsynchronized") instead of
	// failing. Nil means the clock is assumed to be synchronised. The
	// Monitor sets it to an adjtimex(2) check; the package itself makes
	// no system calls.
	ClockSynced func() bool
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
	// [ErrHoldExpired]. In [Sender.Do] it bounds the sum of all holds of that
	// call. Zero means no bound beyond the context.
	MaxHold time.Duration

	// MaxAttempts bounds how many times [Sender.Do] calls send. When the bound
	// is reached on a retryable error, Do fails with an error wrapping
	// [ErrAttemptsExhausted]. Zero means no bound: an important send is
	// retried until its context ends, because a hidden attempt limit is a
	// silent way to lose messages.
	MaxAttempts int

	// MaxHeld bounds how many calls the gate holds, of every policy
	// together, when a call under this policy is about to be held: at the
	// bound, Overflow says what happens. Zero means no bound. Each held
	// call is a parked goroutine and its payload; at 100 Hz a ten-minute
	// outage holds 60,000 of them.
	MaxHeld int
	// MaxHeldBytes bounds the sum of the held calls' sizes ([Call.Size]),
	// as MaxHeld bounds their number. Zero means no bound. Calls that
	// give no size count as zero bytes.
	MaxHeldBytes int64
	// Overflow is what a call does when holding it would pass MaxHeld or
	// MaxHeldBytes. The zero value, [Reject], fails it with an error
	// wrapping [ErrFull].
	Overflow Overflow
	// Priority ranks this policy's calls against other policies' for
	// Overflow: higher is more important. The zero value is the lowest
	// priority that Overflow cares about (negative ones are lower still).
	Priority int

	// Retry, if not nil, decides whether [Sender.Do] sends again after a
	// failed attempt, given the error and its class. It is not asked when
	// the caller's context has ended, when the gate closed during the
	// attempt (Do holds and sends again), or when the send marked its
	// error with [Permanent] or [Retryable]: those marks win. Nil means
	// the default: retry the classes [classify.Class.Retryable] names,
	// and a certificate rejected for its validity period while the clock
	// is not synchronised ([Config.ClockSynced]). It runs in the sender's
	// goroutine and must not block.
	Retry func(err error, class classify.Class) Decision
}

// Overflow is what a call does when holding it would pass its policy's
// MaxHeld or MaxHeldBytes.
type Overflow uint8

const (
	// Reject fails the call at once with an error wrapping [ErrFull]: the
	// caller learns that the message was not taken, as NATS's
	// ErrReconnectBufExceeded says.
	Reject Overflow = iota
	// DropLower makes room by dropping the oldest held calls of a lower
	// [Policy.Priority], which fail with an error wrapping [ErrDropped]
	// (and so [ErrFull]); without enough of them, it rejects. For
	// important messages beside telemetry.
	DropLower
	// DropOldest makes room by dropping the oldest held calls of the same
	// or a lower priority; without enough of them, it rejects. For
	// telemetry, where the newest sample matters most.
	DropOldest
)

// String returns "reject", "drop-lower" or "drop-oldest".
func (o Overflow) String() string {
	switch o {
	case Reject:
		return "reject"
	case DropLower:
		return "drop-lower"
	case DropOldest:
		return "drop-oldest"
	}
	return fmt.Sprintf("Overflow(%d)", uint8(o))
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
	// [Sender.Do] call go first when the gate opens: the oldest. The other
	// held Do calls stay held until a send through Do succeeds (the
	// probe's, or that of any Do call that arrived after the gate opened),
	// and are then released as Rate and Spread say. The probe role passes
	// to the next oldest held Do call as soon as the probe's attempt
	// fails (the failed call backs off and retries on its own), when the
	// probe gives up, or after ProbeTimeout: a probe to a dead
	// destination does not hold the calls to healthy ones. Held
	// [Sender.Wait] callers take no part: Wait learns nothing of the send
	// that follows, so they are released as without Probe.
	Probe bool

	// ProbeTimeout passes the probe role to the next oldest held Do call
	// when the probe's send has not ended this long after it was
	// released, as a send with no deadline to a destination that
	// swallows packets would hold the others for minutes. Zero means no
	// limit: only the probe's failure or success passes the role.
	ProbeTimeout time.Duration
}

// immediate reports whether r releases everyone at once.
func (r Release) immediate() bool { return r.Rate == 0 && r.Spread == 0 && !r.Probe }

// Backoff is the capped exponential backoff with full jitter that
// [Sender.Do] sleeps between attempts while the gate stays open: before the
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
	case c.Policy.MaxHeld < 0:
		return fmt.Errorf("gate: Config.Policy.MaxHeld: %d, want >= 0", c.Policy.MaxHeld)
	case c.Policy.MaxHeldBytes < 0:
		return fmt.Errorf("gate: Config.Policy.MaxHeldBytes: %d, want >= 0", c.Policy.MaxHeldBytes)
	case c.Policy.Overflow > DropOldest:
		return fmt.Errorf("gate: Config.Policy.Overflow: %v, want Reject, DropLower or DropOldest", c.Policy.Overflow)
	case c.Release.ProbeTimeout < 0:
		return fmt.Errorf("gate: Config.Release.ProbeTimeout: %v, want >= 0", c.Release.ProbeTimeout)
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
