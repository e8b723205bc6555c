package gate

// This file holds Do's loop: wait, send, decide, back off.

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// do is Sender.Do and Sender.DoCall under policy p, with the call's
// options c (nil for none). When pre is not nil, the first attempt was
// already made, under pre, on Sender.Do's fast path, and failed with
// preErr: do goes on from there.
func (g *Gate) do(ctx context.Context, p *Policy, c *Call, send func(context.Context) error, pre *attempt, preErr error) (Result, error) {
	var (
		r         Result
		retry     int // retries since the gate last held this call
		lastErr   error
		lastClass classify.Class
		probe     *probe // the round of Release.Probe this call goes first in
		// trial: Gate.Trial let this call make one attempt on a closed
		// gate.
		trial bool
		dst   netip.Addr
		// backoffUntil is the end of the backoff after a failed attempt,
		// which a hold cancels; afterUntil is Decision.After's, which it
		// does not. Zero when none.
		backoffUntil, afterUntil time.Time
	)
	if c != nil {
		dst = c.Dst
	}
	for {
		var (
			a   *attempt
			err error
		)
		if pre != nil {
			a, err, pre = pre, preErr, nil
			r.Attempts = 1
			goto failed
		}
		if s := g.cur.Load(); !s.Open && !trial {
			h, pr, err := g.holdFor(ctx, p, c, r.Held)
			r.Held += h
			if err != nil {
				g.abandon(probe)
				if r.Attempts == 0 {
					return r, err
				}
				return r, &SendError{Attempts: r.Attempts, Class: lastClass, Err: lastErr, Wait: err}
			}
			if pr != nil && pr.trial {
				trial, pr = true, nil // one attempt, though the gate stays closed
			}
			probe = pr
			if h > 0 {
				retry, backoffUntil = 0, time.Time{}
			}
			continue // look again: the gate may have closed since
		} else if !trial && (!backoffUntil.IsZero() || !afterUntil.IsZero()) {
			// Back off only while the gate is open: the peer may be
			// down, or the owner may not have seen the outage yet. If
			// the gate closes meanwhile, stop sleeping and hold instead.
			until := backoffUntil
			if afterUntil.After(until) {
				until = afterUntil
			}
			if d := time.Until(until); d > 0 {
				t := time.NewTimer(d)
				select {
				case <-t.C:
				case <-s.changed:
					t.Stop()
					continue
				case <-ctx.Done():
					t.Stop()
					g.abandon(probe)
					return r, &SendError{Attempts: r.Attempts, Class: lastClass, Err: lastErr, Wait: context.Cause(ctx)}
				}
			}
			backoffUntil, afterUntil = time.Time{}, time.Time{}
			continue
		} else {
			r.Attempts++
			if r.Attempts > 1 {
				g.n.retries.Add(1)
			}
			if trial {
				// A closed state's attempt context is never shared:
				// nothing would cancel it when the state ends.
				trial = false
				a = g.newAttempt(ctx, s, false)
			} else {
				a = g.attemptFor(ctx, s)
			}
			err = send(a.ctx)
			if !a.shared {
				g.done(a)
			}
			if err == nil {
				g.succeeded(r.Attempts, r.Held, dst)
				return r, nil
			}
		}

	failed:
		var cl classify.Class
		var d Decision
		switch {
		case ctx.Err() != nil:
			cl = classify.Canceled // the caller gave up, whatever err says
			d = Decision{Reason: cl.String()}
		case a.interrupted():
			// The gate closed under the send: the link's failure, not
			// the caller's. Hold, and send again when it reopens.
			g.n.interrupted.Add(1)
			cl = classify.Network
			d = Decision{Retry: true, Reason: ReasonInterrupted}
		default:
			cl = classify.Classify(err)
			d = g.decide(p, err, cl)
		}
		g.n.sendErrors.Add(1)
		if g.cfg.OnError != nil {
			g.cfg.OnError(Attempt{N: r.Attempts, Err: err, Class: cl, Decision: d, Held: r.Held, Dst: dst})
		}
		lastErr, lastClass = err, cl
		// The probe role passes on after a failed attempt, so that a
		// probe to a dead destination does not hold calls to others.
		g.abandon(probe)
		probe = nil
		if !d.Retry {
			g.n.stopped.Add(1)
			return r, &SendError{Attempts: r.Attempts, Class: cl, Err: err, Decision: d}
		}
		if p.MaxAttempts > 0 && r.Attempts >= p.MaxAttempts {
			g.n.exhausted.Add(1)
			return r, &SendError{Attempts: r.Attempts, Class: cl, Err: err, Decision: d, Wait: ErrAttemptsExhausted}
		}
		now := time.Now()
		if d.After > 0 {
			afterUntil = now.Add(d.After)
		}
		if d.Reason != ReasonInterrupted {
			backoffUntil = now.Add(g.delay(retry))
			retry++
		}
	}
}

// succeeded tells the probe and the owner that attempt n of a Do call to
// dst (the zero Addr if unknown), held for held in all, succeeded.
func (g *Gate) succeeded(n int, held time.Duration, dst netip.Addr) {
	if g.probing.Load() {
		// The path works: release the Do calls that waited for a probe
		// to succeed (this one's or another's).
		g.confirm()
	}
	if g.cfg.OnSuccess != nil {
		g.cfg.OnSuccess(Attempt{N: n, Held: held, Dst: dst})
	}
}

// holdFor holds a Do call under p, which has been held for heldTotal
// already: MaxHold bounds the sum.
func (g *Gate) holdFor(ctx context.Context, p *Policy, c *Call, heldTotal time.Duration) (time.Duration, *probe, error) {
	r := holdReq{p: p, forDo: true, c: c}
	if p.MaxHold <= 0 || p.FailFast {
		return g.hold(ctx, r)
	}
	r.limit = p.MaxHold - heldTotal
	if r.limit <= 0 {
		s := g.cur.Load()
		if s.Open {
			return 0, nil, nil
		}
		g.n.expired.Add(1)
		return 0, nil, g.waitError(s, heldTotal, ErrHoldExpired)
	}
	return g.hold(ctx, r)
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
