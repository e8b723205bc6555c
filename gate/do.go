package gate

import (
	"context"
	"math/rand/v2"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// Attempt describes one call of send by [Gate.Do], for [Config.OnError]
// and [Config.OnSuccess].
type Attempt struct {
	// N is the attempt's number, 1 for the first.
	N int
	// Err is the error send returned; nil for a success.
	Err error
	// Class is Err's class, by [classify.ClassifyContext] with the Do
	// call's context: [classify.Canceled] when that context had ended.
	Class classify.Class
	// Held is how long this Do call has been held by the gate so far.
	Held time.Duration
}

// Sender is a view of a [Gate] with its own [Policy]: what one kind of
// sender does while the gate is closed. It is a small value; making one
// per call costs nothing, so a policy can be chosen per gate (Config.Policy),
// per sender or per call:
//
//	telemetry := g.With(gate.Policy{FailFast: true})
//	err := telemetry.Do(ctx, sendSample)
type Sender struct {
	g *Gate
	p Policy
}

// With returns a [Sender] that waits on g under policy p instead of
// [Config.Policy]. Negative MaxHold and MaxAttempts count as zero (no
// limit).
func (g *Gate) With(p Policy) Sender { return Sender{g: g, p: p} }

// Wait is [Gate.Wait] under the sender's policy.
func (s Sender) Wait(ctx context.Context) error {
	if s.g.cur.Load().Open {
		return nil
	}
	return s.waitSlow(ctx)
}

// waitSlow is the part of Wait that holds, out of line like Gate.waitSlow.
//
//go:noinline
func (s Sender) waitSlow(ctx context.Context) error {
	_, _, err := s.g.hold(ctx, s.p.FailFast, max(s.p.MaxHold, 0), false)
	return err
}

// Do is [Gate.Do] under the sender's policy.
func (s Sender) Do(ctx context.Context, send func(context.Context) error) error {
	return s.g.do(ctx, s.p, send)
}

// Do sends with send while the gate lets it, and keeps an important send
// from being lost to a dropped link. It owns the whole loop, because a
// check before sending is not enough (the link can drop between the check
// and the send):
//
//  1. wait while the gate is closed, as [Gate.Wait] does;
//  2. call send(ctx); on success return nil;
//  3. classify the error ([classify.ClassifyContext]) and report it to
//     [Config.OnError];
//  4. on an error that is not [classify.Class.Retryable] (or when ctx has
//     ended), return at once;
//  5. otherwise sleep a backoff ([Config.Backoff]) while the gate stays
//     open, cut short if the gate closes, and go to 1. After a hold the
//     next attempt starts at once and the backoff starts over: the owner
//     has confirmed that the path is back.
//
// Connection errors are retried until ctx ends: there is no attempt limit
// unless [Policy.MaxAttempts] sets one, and reaching it is a distinct error
// ([ErrAttemptsExhausted]). A wait that fails before the first attempt
// returns its [*WaitError]; any failure after an attempt returns a
// [*SendError] with the attempt count, the last send error and, if a wait
// ended the loop, the wait's error.
//
// Do gives at-least-once delivery, not exactly-once: when a connection
// breaks after the peer received a message but before send saw it
// acknowledged, Do sends it again. Receivers must de-duplicate, e.g. by a
// sequence number carried in each message.
//
// On an open gate, with a send that succeeds, Do costs one atomic load
// and the call of send.
func (g *Gate) Do(ctx context.Context, send func(context.Context) error) error {
	return g.do(ctx, g.cfg.Policy, send)
}

func (g *Gate) do(ctx context.Context, p Policy, send func(context.Context) error) error {
	var (
		n         int           // attempts so far
		retry     int           // retries since the gate last held this call
		heldTotal time.Duration // sum of holds, for MaxHold and the hooks
		lastErr   error
		lastClass classify.Class
		probe     *probe // the round of Release.Probe this call goes first in
	)
	for {
		if !g.cur.Load().Open {
			h, pr, err := g.holdFor(ctx, p, heldTotal)
			heldTotal += h
			if err != nil {
				g.abandon(probe)
				if n == 0 {
					return err
				}
				return &SendError{Attempts: n, Class: lastClass, Err: lastErr, Wait: err}
			}
			probe = pr
			if h > 0 {
				retry = 0
			}
		}
		n++
		if n > 1 {
			g.n.retries.Add(1)
		}
		err := send(ctx)
		if err == nil {
			if g.probing.Load() {
				// The path works: release the Do calls that waited for
				// a probe to succeed (this one's or another's).
				g.confirm()
			}
			if g.cfg.OnSuccess != nil {
				g.cfg.OnSuccess(Attempt{N: n, Held: heldTotal})
			}
			return nil
		}
		c := classify.ClassifyContext(ctx, err)
		g.n.sendErrors.Add(1)
		if g.cfg.OnError != nil {
			g.cfg.OnError(Attempt{N: n, Err: err, Class: c, Held: heldTotal})
		}
		lastErr, lastClass = err, c
		if !c.Retryable() {
			g.abandon(probe)
			return &SendError{Attempts: n, Class: c, Err: err}
		}
		if p.MaxAttempts > 0 && n >= p.MaxAttempts {
			g.n.exhausted.Add(1)
			g.abandon(probe)
			return &SendError{Attempts: n, Class: c, Err: err, Wait: ErrAttemptsExhausted}
		}
		// Back off only while the gate is open: the peer may be down or
		// the Monitor may not have seen the outage yet. If the gate closes
		// meanwhile, stop sleeping and hold instead.
		s := g.cur.Load()
		if !s.Open {
			continue
		}
		t := time.NewTimer(g.delay(retry))
		retry++
		select {
		case <-t.C:
		case <-s.changed:
			t.Stop()
		case <-ctx.Done():
			t.Stop()
			g.abandon(probe)
			return &SendError{Attempts: n, Class: c, Err: err, Wait: context.Cause(ctx)}
		}
	}
}

// holdFor holds a Do call under p, which has been held for heldTotal
// already: MaxHold bounds the sum.
func (g *Gate) holdFor(ctx context.Context, p Policy, heldTotal time.Duration) (time.Duration, *probe, error) {
	if p.MaxHold <= 0 || p.FailFast {
		return g.hold(ctx, p.FailFast, 0, true)
	}
	left := p.MaxHold - heldTotal
	if left <= 0 {
		s := g.cur.Load()
		if s.Open {
			return 0, nil, nil
		}
		g.n.expired.Add(1)
		return 0, nil, g.waitError(s, heldTotal, ErrHoldExpired)
	}
	return g.hold(ctx, false, left, true)
}

// delay returns the backoff before retry number retry (0 for the first):
// uniform in [0, min(Max, Initial*2^retry)).
func (g *Gate) delay(retry int) time.Duration {
	ceiling := g.backoff.Initial
	for i := 0; i < retry && ceiling < g.backoff.Max; i++ {
		if ceiling > g.backoff.Max/2 {
			ceiling = g.backoff.Max // doubling would pass Max, or overflow
			break
		}
		ceiling *= 2
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}
