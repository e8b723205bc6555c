package netmon

import "time"

// Flap damping, an option (Options.Stabilize > 0; off by default). A link
// at the edge of coverage can bounce every few hundred milliseconds; with a
// fixed stabilisation window every bounce would release every held sender
// into the next drop. So the window grows
// with each loss of the path that follows the previous one within
// Options.Recent (doubling, up to dampMaxFactor times Options.Stabilize),
// and decays back while the path holds (halving for every Recent without a
// loss), as route-flap damping (RFC 2439) grows and decays a route's
// penalty. A loss counts whether it ends an up state or cuts short a return
// still waiting out its window.
//
// It is off by default because it holds senders while the link works: on
// the edge-of-coverage schedule of issue 26 (drops of 0.3-1.5 s every
// 2-8 s) the window grew to 3.2 s and never decayed (the link never held
// for Recent), so senders could use 53.6% of the link's up time, and p95
// latency beyond the physical floor was 6.1 s against 0.8 s for a plain
// retry loop. The default guards against a herd with a probe sender
// instead (gate.Release.Probe, see Options.Gate).

// dampMaxFactor caps the window at this many times Options.Stabilize (3.2 s
// with 200 ms).
const dampMaxFactor = 16

// damping is the damping state.
type damping struct {
	window   time.Duration // the window as of lastLoss; 0 until the first loss
	lastLoss time.Time
}

// windowLocked returns the stabilisation window a return starting at now
// waits out (dampWindow with the Monitor's state).
func (m *Monitor) windowLocked(now time.Time) time.Duration {
	return dampWindow(m.damp, m.opts.Stabilize, m.opts.Recent, m.lastUpAt, now)
}

// dampWindow returns the stabilisation window a return starting at now
// waits out: the damped window d, decayed for the time the path has held
// since it last came back at lastUpAt (time spent down is not holding),
// never below base (Options.Stabilize).
func dampWindow(d damping, base, recent time.Duration, lastUpAt, now time.Time) time.Duration {
	if base <= 0 || d.window <= base || d.lastLoss.IsZero() {
		return base
	}
	w := d.window
	if !lastUpAt.After(d.lastLoss) {
		return w // down since the last loss
	}
	for t := lastUpAt.Add(recent); !now.Before(t) && w > base; t = t.Add(recent) {
		w /= 2
	}
	return max(w, base)
}

// noteLossLocked records a loss of the path at now and grows the window
// when it follows the last loss within Options.Recent.
func (m *Monitor) noteLossLocked(now time.Time) {
	if m.opts.Stabilize <= 0 {
		return
	}
	w := m.windowLocked(now)
	if !m.damp.lastLoss.IsZero() && now.Sub(m.damp.lastLoss) < m.opts.Recent {
		w = min(2*w, dampMaxFactor*m.opts.Stabilize)
	}
	m.damp = damping{window: w, lastLoss: now}
}
