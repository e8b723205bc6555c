package gate

// This file holds the retry decision of Do: what the send says about its
// own error (Permanent, Retryable), what the policy says (Policy.Retry),
// and the default by class.

import (
	"errors"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// Decision is whether [Sender.Do] sends again after a failed attempt.
type Decision struct {
	// Retry is true to send again: after a backoff while the gate stays
	// open, at once after the gate held the call.
	Retry bool
	// After, when positive, is the least time before the next attempt, as
	// the peer asked (an HTTP Retry-After): the next attempt starts no
	// sooner, even when the gate holds the call and reopens meanwhile.
	// The backoff still applies when it is longer.
	After time.Duration
	// Reason says why, for logs and [Attempt]: the class's name
	// ("connection"), "permanent" or "retry-after" (the send's own
	// wrappers), "interrupted" (the gate closed during the attempt),
	// "clock-unsynchronized", or what a [Policy.Retry] function says.
	Reason string
}

// The reasons of the decisions this package makes, besides class names.
const (
	// ReasonPermanent: the send marked its error with [Permanent].
	ReasonPermanent = "permanent"
	// ReasonRetryAfter: the send marked its error with [Retryable].
	ReasonRetryAfter = "retry-after"
	// ReasonInterrupted: the gate closed during the attempt; Do holds.
	ReasonInterrupted = "interrupted"
	// ReasonClockUnsynchronized: a certificate was rejected for its
	// validity period while the system clock is not synchronised.
	ReasonClockUnsynchronized = "clock-unsynchronized"
)

var (
	_ interface{ Unwrap() error } = (*PermanentError)(nil)
	_ interface{ Unwrap() error } = (*RetryableError)(nil)
)

// PermanentError marks an error that no retry can mend: [Sender.Do]
// returns at once whatever its class. Make one with [Permanent].
type PermanentError struct {
	// Err is the error that no retry can mend.
	Err error
}

// Permanent returns err marked as permanent, for a send that knows better
// than the error's class, e.g. an MQTT CONNACK "not authorized" or an HTTP
// 400. It returns nil for a nil err.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// Error returns Err's text: the mark changes what Do does, not the message.
func (e *PermanentError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *PermanentError) Unwrap() error { return e.Err }

// RetryableError marks an error that a later attempt may mend, whatever
// its class, and when to try again. Make one with [Retryable].
type RetryableError struct {
	// Err is the error a later attempt may mend.
	Err error
	// After is the least time before the next attempt; zero means the
	// usual backoff.
	After time.Duration
}

// Retryable returns err marked as retryable no sooner than after, for a
// send that knows better than the error's class: an HTTP 503 or 429 with
// Retry-After, a gRPC Unavailable, an MQTT CONNACK "server unavailable",
// an HTTP/2 GOAWAY. It returns nil for a nil err. A negative after counts
// as zero.
func Retryable(err error, after time.Duration) error {
	if err == nil {
		return nil
	}
	return &RetryableError{Err: err, After: max(after, 0)}
}

// Error returns Err's text.
func (e *RetryableError) Error() string { return e.Err.Error() }

// Unwrap returns Err.
func (e *RetryableError) Unwrap() error { return e.Err }

// decide returns whether Do retries after send failed with err of class
// c, under policy p. The send's own marks come first, then p.Retry, then
// the default: retry the classes that [classify.Class.Retryable] names,
// and a certificate rejected for its validity period while the system
// clock is not synchronised (a robot without RTC before NTP: it will be
// accepted once the clock is set). A caller that gave up is never retried.
func (g *Gate) decide(p *Policy, err error, c classify.Class) Decision {
	if c == classify.Canceled {
		return Decision{Reason: c.String()}
	}
	var pe *PermanentError
	if errors.As(err, &pe) {
		return Decision{Reason: ReasonPermanent}
	}
	var re *RetryableError
	if errors.As(err, &re) {
		return Decision{Retry: true, After: re.After, Reason: ReasonRetryAfter}
	}
	if p.Retry != nil {
		d := p.Retry(err, c)
		d.After = max(d.After, 0)
		return d
	}
	if c.Retryable() {
		return Decision{Retry: true, Reason: c.String()}
	}
	if c == classify.Certificate && classify.CertificateTime(err) && !g.clockSynced() {
		return Decision{Retry: true, Reason: ReasonClockUnsynchronized}
	}
	return Decision{Reason: c.String()}
}

// clockSynced reports what Config.ClockSynced says; without it, the clock
// is assumed to be synchronised.
func (g *Gate) clockSynced() bool {
	return g.cfg.ClockSynced == nil || g.cfg.ClockSynced()
}
