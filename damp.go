package netmon

import "time"

// Flap damping. A link at the edge of coverage can bounce every few
// hundred milliseconds; with a fixed stabilisation window every bounce
// would release every held sender into the next drop. So the window grows
// with each loss of the path that follows the previous one within
// Options.Recent (doubling, up to dampMaxFactor times Options.Stabilize),
// and decays back while the path holds (halving for every Recent without a
// loss), as route-flap damping (RFC 2439) grows and decays a route's
// penalty. A loss counts whether it ends an up state or cuts short a return
// still waiting out its window.

// dampMaxFactor caps the window at this many times Options.Stabilize (3.2 s
// with the default 200 ms).
const dampMaxFactor = 16

// damping is the damping state.
type damping struct {
	window   time.Duration // the window as of lastLoss; 0 until the first loss
	lastLoss time.Time
}

// windowLocked returns the stabilisation window a return starting at now
// waits out: the damped window, decayed for the time the path has held
// since it last came back (time spent down is not holding).
func (m *Monitor) windowLocked(now time.Time) time.Duration {
	base, d := m.opts.Stabilize, m.damp
	if base <= 0 || d.window <= base || d.lastLoss.IsZero() {
		return base
	}
	w := d.window
	if !m.lastUpAt.After(d.lastLoss) {
		return w // down since the last loss
	}
	for t := m.lastUpAt.Add(m.opts.Recent); !now.Before(t) && w > base; t = t.Add(m.opts.Recent) {
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
