package gate

import (
	"errors"
	"fmt"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// Sentinel errors. Errors returned by this package wrap them; test with
// errors.Is.
var (
	// ErrShutdown means the gate was shut down for good with
	// [Gate.Shutdown]: no send will ever be released by it again.
	ErrShutdown = errors.New("gate: shut down")

	// ErrDown means the gate was closed and the [Policy] was FailFast, so
	// the call was not held.
	ErrDown = errors.New("gate: closed, and the policy is fail-fast")

	// ErrHoldExpired means a call was held for [Policy.MaxHold] and the
	// gate did not open in that time.
	ErrHoldExpired = errors.New("gate: held for the policy's MaxHold")

	// ErrAttemptsExhausted means [Sender.Do] stopped retrying a retryable
	// error because [Policy.MaxAttempts] was reached. It is returned only
	// when a limit was set: by default important sends never give up.
	ErrAttemptsExhausted = errors.New("gate: attempt limit reached")

	// ErrFull means the gate held as many calls (or bytes) as the
	// policy's [Policy.MaxHeld] (or MaxHeldBytes) allows, so the call was
	// not held: the message was not taken. Calls dropped to make room
	// fail with [ErrDropped], which wraps ErrFull.
	ErrFull = errors.New("gate: full: the policy's MaxHeld is reached")

	// ErrDropped means a held call was dropped to make room for a call of
	// a higher (or, with [DropOldest], the same) [Policy.Priority]. It
	// wraps [ErrFull].
	ErrDropped = fmt.Errorf("%w: dropped for a newer call", ErrFull)
)

// WaitError is the error of a wait that did not end with the gate open. It
// says why the gate was closed and how long the caller was held, so that a
// deadline reads "held 12.4s: carrier-lost on wlan0: context deadline
// exceeded" rather than a bare context.DeadlineExceeded.
//
// Err is [ErrDown], [ErrHoldExpired], [ErrShutdown], [ErrFull],
// [ErrDropped], or the cause of the caller's context (context.Cause);
// errors.Is sees through to it.
type WaitError struct {
	// Reason is why the gate was closed when the wait ended.
	Reason Reason
	// Since is when the gate closed.
	Since time.Time
	// Held is how long this call was held; zero when it was not held.
	Held time.Duration
	// Err is what ended the wait.
	Err error
}

// Error reports how long the call was held, why the gate was closed, and
// what ended the wait.
func (e *WaitError) Error() string {
	if e.Held == 0 {
		return fmt.Sprintf("gate: not held: %v: %v", e.Reason, e.Err)
	}
	return fmt.Sprintf("gate: held %v: %v: %v", roundHeld(e.Held), e.Reason, e.Err)
}

// Unwrap returns Err.
func (e *WaitError) Unwrap() error { return e.Err }

// roundHeld rounds a hold time for people: 12.4s, 830ms, 15µs.
func roundHeld(d time.Duration) time.Duration {
	switch {
	case d >= time.Second:
		return d.Round(100 * time.Millisecond)
	case d >= time.Millisecond:
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Microsecond)
}

// SendError is the error of a [Sender.Do] call that failed after sending at
// least once. It carries the number of attempts, the last send error and
// its class, and, when the call ended while held for a retry, the
// [*WaitError] that ended it. errors.Is and errors.As see both.
type SendError struct {
	// Attempts is how many times send was called.
	Attempts int
	// Class is the class of Err (or [classify.Network] when the gate
	// closed during the attempt).
	Class classify.Class
	// Decision is why Do did not send again after Err, when it decided
	// so; the zero Decision when a wait (Wait) ended the call.
	Decision Decision
	// Err is the error of the last send.
	Err error
	// Wait, if not nil, is why Do stopped waiting to retry (the context
	// ended, MaxHold, shutdown); it wraps [ErrAttemptsExhausted] when the
	// attempt limit stopped Do.
	Wait error
}

// Error reports the attempts, the last send error and, if any, why Do
// stopped retrying.
func (e *SendError) Error() string {
	if e.Wait == nil {
		if r := e.Decision.Reason; r != "" && r != e.Class.String() {
			return fmt.Sprintf("gate: send failed after %d attempt(s) (%v, %s): %v", e.Attempts, e.Class, r, e.Err)
		}
		return fmt.Sprintf("gate: send failed after %d attempt(s) (%v): %v", e.Attempts, e.Class, e.Err)
	}
	return fmt.Sprintf("gate: gave up after %d attempt(s): %v; last send error (%v): %v", e.Attempts, e.Wait, e.Class, e.Err)
}

// Unwrap returns the last send error and, if set, the wait error.
func (e *SendError) Unwrap() []error {
	if e.Wait == nil {
		return []error{e.Err}
	}
	return []error{e.Wait, e.Err}
}
