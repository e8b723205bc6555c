package netmon

import (
	"errors"
	"net"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// The data-stall detector: senders' failures that nothing in the kernel's
// state explains, as evidence that the path is dead although every link,
// address and route looks fine (associated to an access point whose
// upstream is gone, a captive portal, a dead NAT).
//
// It is modelled on Android's data-stall detection (DataStallDetector in
// the NetworkStack module): Android counts DNS timeouts in a row
// (config_data_stall_consecutive_dns_timeout_threshold, 5) within a window
// (data_stall_min_evaluate_interval, 60 s) and TCP failures across all
// sockets, and only then re-validates the network. netmon's rule, as
// Options.SendError* set it:
//
//   - Counted: network-class errors (unreachable, no route) and timeouts
//     that the kernel's state does not explain, reported by senders
//     (Monitor.Report, Gate.Do) within SendErrorWindow of each other.
//     Refused or reset connections, TLS and DNS answers concern one peer
//     and are never counted.
//   - One dead peer is not a stall: the state goes down (send-errors) only
//     when SendErrorThreshold failures in the window reached at least two
//     distinct destinations, or the uplink's gateway does not answer (its
//     neighbour entry FAILED). Failures without a known destination count
//     as one destination of their own.
//   - A declared target ([Options].Targets) is judged on its own: that many
//     failures towards it close its Gate (reason send-errors) and no other.
//   - The verdict ends when a send succeeds ([Monitor.ReportSuccess]), the
//     kernel reports a change of the path, the gateway answers, or
//     SendErrorHold passes; the count then starts again from zero.
//   - Failures below the threshold but towards two or more destinations
//     within Options.Recent make an up state degraded (send-errors).

// stallBit is the bit of Monitor.stallWord that says the detector holds
// something: ReportSuccess then takes the lock to end it.
const stallBit uint64 = 1 << 63

// maxStallFails bounds the failures the detector remembers.
const maxStallFails = 64

// failure is one counted send failure.
type failure struct {
	at  time.Time
	dst netip.Addr // invalid when the error named no destination
}

// stall is the detector's state.
type stall struct {
	fails  []failure // within the window, oldest first
	downAt time.Time // when it closed the state; zero while it does not
}

// counts reports whether a failure of this class counts: the link's and
// the path's failures, timeouts included, never one peer's answer.
func stallCounts(class classify.Class) bool {
	return class.LinkRelated() || class == classify.Timeout
}

// stallEvidenceLocked reports whether a failure of this class, explained
// as cause, counts: one the kernel's state does not explain, or a failed
// gateway's (which leaves the Gate open on its own), or one just after a
// send-errors outage ended (that outage explains nothing: the path did
// not change, and failing again is the evidence that it is still dead).
func (m *Monitor) stallEvidenceLocked(class classify.Class, cause Cause) bool {
	if m.opts.SendErrorThreshold <= 0 || !stallCounts(class) {
		return false
	}
	switch cause {
	case CauseUnexplained, CauseGatewayFailed:
		return true
	case CauseRecentOutage:
		f, ok := m.journal.last()
		return ok && f.Cause == ReasonSendErrors
	}
	return false
}

// errDestination returns the address a failed operation was aimed at, as
// the net package records it (*net.OpError's Addr), or the zero Addr.
func errDestination(err error) netip.Addr {
	var op *net.OpError
	if !errors.As(err, &op) || op.Addr == nil {
		return netip.Addr{}
	}
	var ip net.IP
	switch a := op.Addr.(type) {
	case *net.TCPAddr:
		ip = a.IP
	case *net.UDPAddr:
		ip = a.IP
	case *net.IPAddr:
		ip = a.IP
	}
	addr, _ := netip.AddrFromSlice(ip)
	return addr.Unmap()
}

// recordFailureLocked counts a failure towards dst and, when the rule says
// so, closes the state or a target's Gate.
func (m *Monitor) recordFailureLocked(now time.Time, dst netip.Addr) {
	s := &m.stall
	keep := s.fails[:0]
	for _, f := range s.fails {
		if now.Sub(f.at) <= m.opts.SendErrorWindow {
			keep = append(keep, f)
		}
	}
	s.fails = append(keep, failure{at: now, dst: dst})
	if len(s.fails) > maxStallFails {
		s.fails = s.fails[len(s.fails)-maxStallFails:]
	}
	n := len(s.fails)
	if n >= m.opts.SendErrorThreshold && s.downAt.IsZero() && m.status.State.CanSend() &&
		(distinctDestinations(s.fails) >= 2 || m.uplinkGatewayFailedLocked()) {
		s.downAt = now
	}
	m.stallWord.Store(stallBit)
	for _, p := range m.paths {
		if p.implicit || !p.stallAt.IsZero() || !p.t.Addr.IsValid() {
			continue
		}
		towards := 0
		for _, f := range s.fails {
			if p.has(f.dst) {
				towards++
			}
		}
		if towards >= m.opts.SendErrorThreshold {
			p.stallAt = now
		}
	}
	m.evaluateLocked(now)
}

// has reports whether a is one of the target's addresses.
func (p *pathState) has(a netip.Addr) bool {
	if a == p.t.Addr {
		return a.IsValid()
	}
	for _, x := range p.addrs {
		if x == a {
			return true
		}
	}
	return false
}

// distinctDestinations counts the destinations of the failures; those
// without one count as one more.
func distinctDestinations(fs []failure) int {
	seen := make(map[netip.Addr]struct{}, 4)
	for _, f := range fs {
		seen[f.dst] = struct{}{}
	}
	return len(seen)
}

// uplinkGatewayFailedLocked reports whether the gateway of the interface
// the status concerns does not answer.
func (m *Monitor) uplinkGatewayFailedLocked() bool {
	f, ok := m.ifaces[m.statusIdx]
	return ok && f.gatewayFailed()
}

// resetStallLocked ends every verdict of the detector and forgets its
// count: the path works, or changed.
func (m *Monitor) resetStallLocked() {
	m.stall = stall{}
	for _, p := range m.paths {
		p.stallAt = time.Time{}
	}
	m.stallWord.Store(0)
}

// stallActive reports whether the detector holds anything.
func (m *Monitor) stallActive() bool {
	if len(m.stall.fails) > 0 || !m.stall.downAt.IsZero() {
		return true
	}
	for _, p := range m.paths {
		if !p.stallAt.IsZero() {
			return true
		}
	}
	return false
}

// expireStallLocked ends the verdicts whose SendErrorHold has passed, so
// that a sender can test the path again; the count starts from zero.
func (m *Monitor) expireStallLocked(c *clock) {
	hold := m.opts.SendErrorHold
	if !m.stall.downAt.IsZero() && !c.before(m.stall.downAt.Add(hold)) {
		m.resetStallLocked()
		return
	}
	for _, p := range m.paths {
		if p.stallAt.IsZero() || c.before(p.stallAt.Add(hold)) {
			continue
		}
		p.stallAt = time.Time{}
		keep := m.stall.fails[:0]
		for _, f := range m.stall.fails {
			if !p.has(f.dst) {
				keep = append(keep, f)
			}
		}
		m.stall.fails = keep
	}
	if !m.stallActive() {
		m.stallWord.Store(0)
	}
}

// stallVerdict applies the detector to a verdict the kernel's state
// allows: down while it holds the state, degraded while recent failures
// reached several destinations.
func (m *Monitor) stallVerdict(c *clock, v verdict) verdict {
	if !v.state.CanSend() {
		return v
	}
	s := &m.stall
	switch {
	case !s.downAt.IsZero():
		v.state, v.reason, v.target = Down, ReasonSendErrors, ""
	case v.state == Up && len(s.fails) > 0 && c.within(s.fails[len(s.fails)-1].at, m.opts.Recent) &&
		distinctDestinations(s.fails) >= 2:
		v.state, v.reason = Degraded, ReasonSendErrors
	}
	return v
}
