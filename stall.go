package netmon

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap"
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
// sockets, and only then re-validates the network.
//
// Neither of the systems it follows takes such a count as the verdict:
// they confirm it by checking the path. Android's NetworkMonitor (AOSP
// packages/modules/NetworkStack, NetworkMonitor.java), when isDataStall()
// says so, logs "Suspecting data stall, reevaluate" and moves from
// ValidatedState to EvaluatingState, which runs its validation probes
// (HTTP and HTTPS requests to a generate_204 URL, DNS) and marks the
// network invalid only when they fail. NetworkManager's connectivity
// check (NetworkManager.conf(5), [connectivity] uri, interval, response;
// https://ubuntu.com/core/docs/networkmanager/snap-configuration/connectivity-check)
// fetches a known URL every interval (300 s by default) and compares the
// body with the expected response to tell full connectivity from a portal
// or none. netmon sends nothing of its own (a robot may have no Internet
// to probe, and a probe URL is one more server to depend on); it confirms
// with what the path itself shows: the gateway's neighbour entry, which
// the kernel confirms by unicast ARP/NS probes of its own whenever a send
// uses a stale entry (FAILED: the first hop is dead), and, with the
// gateway answering, failures spread over destinations with no success
// anywhere since (nothing beyond the gateway answers). The notice that
// closes the Gate and the flap say which (Flap.Detail "confirmed: ..."). And
// as a circuit breaker does, it lets one held sender through every
// stallTrialEvery while the verdict holds: its send is the re-validation,
// by the traffic that matters.
//
// netmon's rule, as Options.SendError* set it:
//
//   - Counted: network-class errors (unreachable, no route) and timeouts
//     that the kernel's state does not explain, reported by senders
//     (Monitor.Report, Gate.Do) within SendErrorWindow of each other.
//     Refused or reset connections, TLS and DNS answers concern one peer
//     and are never counted.
//   - Successes count per destination ([Monitor.ReportSuccessTo],
//     gate.Sender.DoCall with gate.Call.Dst, POST /v1/success): a success
//     forgets the failures before it, and its destination (when known) is
//     live for SendErrorWindow until a send to it fails. While a destination is live, failures towards others are
//     those peers' own: they close no Gate and do not degrade the state.
//   - One dead peer is not a stall: the state goes down (send-errors) only
//     when SendErrorThreshold failures in the window came from at least two
//     destinations with no destination counting for more than half of the
//     threshold (four failures to a dead host and one elsewhere are not a
//     stall), or from anywhere while the uplink's gateway does not answer
//     (its neighbour entry FAILED). Failures without a known destination
//     count as one destination of their own.
//   - A declared target ([Options].Targets) is judged on its own: that many
//     failures towards it close its Gate (reason send-errors) and no other,
//     and they do not count for the network.
//   - While the network's verdict holds, one held Do call is let through
//     every stallTrialEvery (gate.Gate.Trial, a half-open probe). The
//     verdict ends when a send succeeds (that one's, or any reported
//     through [Monitor.ReportSuccessTo]), when the gateway answers again
//     if the verdict rested on it not answering (an upstream verdict
//     stands), or when SendErrorHold passes; a target's when a send
//     through its Gate succeeds or its hold passes; both when the kernel
//     reports a change of the path. The count
//     then starts again from zero.
//   - Failures below the threshold but towards two or more destinations
//     within Options.Recent make an up state degraded (send-errors).

// stallBit is the bit of Monitor.stallWord that says the detector holds
// something: ReportSuccess then takes the lock to end it.
const stallBit uint64 = 1 << 63

// maxStallFails bounds the failures the detector remembers.
const maxStallFails = 64

// stallTrialEvery is how often, while a send-errors verdict holds the
// Gate closed, one held Do call is let through as a half-open probe
// (gate.Gate.Trial): its success ends the verdict, so the Gate reopens
// within about this long of the upstream's return instead of after
// SendErrorHold. Twice a second costs one send per half second on a dead
// path, what a sender's own retry loop would spend.
const stallTrialEvery = 500 * time.Millisecond

// failure is one counted send failure.
type failure struct {
	at  time.Time
	dst netip.Addr // invalid when the error named no destination
}

// stall is the detector's state.
type stall struct {
	fails  []failure // within the window, oldest first
	downAt time.Time // when it closed the state; zero while it does not
	// succ is when a send last succeeded, per destination, within
	// SendErrorWindow. Successes are recorded while the detector holds
	// something (see ReportSuccessTo): before the first failure there is
	// nothing to judge.
	succ map[netip.Addr]time.Time
	// evidence is what confirmed the verdict that set downAt, for the
	// notice and the flap.
	evidence string
	// trialAt is when the next half-open trial is due while downAt holds.
	trialAt time.Time
	// byGateway is whether the verdict rests on the gateway not
	// answering, which its answering again then ends.
	byGateway bool
}

// stallCounts reports whether a failure of this class counts: the link's and
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
	m.stallWord.Store(stallBit)
	if t := m.targetOf(dst); t != nil {
		// A declared target is judged on its own.
		towards := 0
		for _, f := range s.fails {
			if t.has(f.dst) {
				towards++
			}
		}
		if towards >= m.opts.SendErrorThreshold && t.stallAt.IsZero() {
			t.stallAt = now
		}
	} else if s.downAt.IsZero() && m.status.State.CanSend() {
		if ev, ok := m.stallLocked(now); ok {
			s.downAt, s.evidence, s.trialAt = now, ev, now.Add(stallTrialEvery)
			s.byGateway = m.uplinkGatewayFailedLocked()
		}
	}
	m.evaluateLocked(now)
	if !s.downAt.IsZero() && s.downAt.Equal(now) && m.status.Reason == ReasonSendErrors {
		// Say what confirmed the verdict: in the flap that the
		// outage will make, and now.
		if m.outage != nil && m.outage.detail == "" {
			m.outage.detail = "confirmed: " + s.evidence
		}
		m.emitLocked(Event{Kind: EventNotice, At: now, Iface: m.status.Iface,
			Msg: "send-errors confirmed: " + s.evidence, Fields: []zap.Field{zap.String("confirmed", s.evidence)}})
	}
}

// stallLocked reports whether the failures that concern the network (not
// a declared target) make a stall (confirmStall), and what confirms it.
func (m *Monitor) stallLocked(now time.Time) (string, bool) {
	var fs []failure
	for _, f := range m.stall.fails {
		if m.targetOf(f.dst) == nil {
			fs = append(fs, f)
		}
	}
	if len(fs) < m.opts.SendErrorThreshold {
		return "", false
	}
	p, ok := confirmStall(fs, m.opts.SendErrorThreshold, m.liveLocked(now), m.uplinkGatewayFailedLocked(), now)
	switch {
	case !ok:
		return "", false
	case p.byGateway:
		return m.gatewayTextLocked() + ": the first hop does not answer", true
	}
	return fmt.Sprintf("%d failures to %d destinations in %s, no send succeeded anywhere since; %s: nothing beyond it answers",
		p.n, p.dests, p.span.Round(time.Millisecond), m.gatewayTextLocked()), true
}

// liveLocked reports whether some destination is live: a send to it
// succeeded within SendErrorWindow, and none failed since. Failures to
// other destinations while it answers are those peers' own.
func (m *Monitor) liveLocked(now time.Time) bool {
	live := func(d netip.Addr, at time.Time) bool {
		if now.Sub(at) > m.opts.SendErrorWindow {
			return false
		}
		for _, f := range m.stall.fails {
			if f.dst == d && f.at.After(at) {
				return false
			}
		}
		return true
	}
	if p := m.lastSucc.Load(); p != nil && live(p.dst, p.at) {
		return true
	}
	for d, at := range m.stall.succ {
		if live(d, at) {
			return true
		}
	}
	return false
}

// gatewayTextLocked names the uplink's gateway and its neighbour state,
// as the kernel's neighbour discovery last confirmed it: "gateway
// 10.0.0.1 REACHABLE".
func (m *Monitor) gatewayTextLocked() string {
	f, ok := m.ifaces[m.statusIdx]
	if !ok {
		return "no uplink"
	}
	for _, r := range f.routes {
		if !r.Gateway.IsValid() {
			continue
		}
		if n, ok := f.neigh(r.Gateway); ok {
			return "gateway " + r.Gateway.String() + " " + n.StateName()
		}
		return "gateway " + r.Gateway.String() + " (no neighbour entry)"
	}
	return "no gateway (an on-link default route)"
}

// targetOf returns the declared target dst belongs to, or nil.
func (m *Monitor) targetOf(dst netip.Addr) *pathState {
	if !dst.IsValid() {
		return nil
	}
	for _, p := range m.paths {
		if !p.implicit && p.has(dst) {
			return p
		}
	}
	return nil
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

// distinctDestinations counts the destinations of the network's failures
// (not those towards a declared target) at or after since; failures
// without one count as one more.
func (m *Monitor) distinctDestinations(since time.Time) int {
	seen := make(map[netip.Addr]struct{}, 4)
	for _, f := range m.stall.fails {
		if !f.at.Before(since) && m.targetOf(f.dst) == nil {
			seen[f.dst] = struct{}{}
		}
	}
	return len(seen)
}

// uplinkGatewayFailedLocked reports whether the gateway of the interface
// the status concerns does not answer.
func (m *Monitor) uplinkGatewayFailedLocked() bool {
	f, ok := m.ifaces[m.statusIdx]
	return ok && f.gatewayFailed()
}

// resetStallLocked ends every verdict of the detector and forgets every
// failure: the path changed.
func (m *Monitor) resetStallLocked() {
	m.stall = stall{}
	for _, p := range m.paths {
		p.stallAt = time.Time{}
	}
	m.stallWord.Store(0)
}

// resetOverallStallLocked ends the network's verdict and forgets the
// failures that concern it, keeping those of declared targets: a send
// that succeeded, or a gateway that answered, says nothing of one host.
func (m *Monitor) resetOverallStallLocked() {
	m.stall.downAt, m.stall.evidence, m.stall.trialAt, m.stall.byGateway = time.Time{}, "", time.Time{}, false
	m.dropFailuresLocked(func(f failure) bool { return m.targetOf(f.dst) == nil })
}

// gatewayAnsweredLocked applies the uplink's gateway answering (its
// neighbour entry confirmed reachable): a verdict that rested on the
// gateway not answering ends, and the failures it counted are forgotten.
// A verdict confirmed while the gateway answered (nothing beyond it did)
// stands, and so do failures counted without a verdict: the gateway
// answering says nothing about the upstream (the kernel confirms its
// entry by probes of its own while senders' SYNs vanish beyond it). A
// declared target's own failures stand too.
func (m *Monitor) gatewayAnsweredLocked() {
	if m.stall.downAt.IsZero() || !m.stall.byGateway {
		return
	}
	m.resetOverallStallLocked()
}

// targetSuccess ends a target's own stall after a send through its Gate
// succeeded. It takes the lock only while the detector holds something.
func (m *Monitor) targetSuccess(p *pathState) {
	if m.stallWord.Load()&stallBit == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	held := !p.stallAt.IsZero()
	p.stallAt = time.Time{}
	m.dropFailuresLocked(func(f failure) bool { return p.has(f.dst) })
	if held {
		m.stats.Successes++
		m.evaluateLocked(time.Now())
	}
}

// dropFailuresLocked forgets the failures drop selects and keeps
// stallWord in step.
func (m *Monitor) dropFailuresLocked(drop func(failure) bool) {
	keep := m.stall.fails[:0]
	for _, f := range m.stall.fails {
		if !drop(f) {
			keep = append(keep, f)
		}
	}
	m.stall.fails = keep
	if !m.stallActive() {
		m.stallWord.Store(0)
	}
}

// overallStallLocked reports whether the detector holds something about
// the network (not only about declared targets).
func (m *Monitor) overallStallLocked() bool {
	if !m.stall.downAt.IsZero() {
		return true
	}
	for _, f := range m.stall.fails {
		if m.targetOf(f.dst) == nil {
			return true
		}
	}
	return false
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
//
// While the network's verdict holds, it lets one held sender (a Do call,
// else a Wait caller) through every stallTrialEvery (gate.Gate.Trial), as
// a circuit breaker's half-open state: its success, reported, ends the
// verdict (ReportSuccessTo), so the Gate reopens soon after the upstream
// returns.
func (m *Monitor) expireStallLocked(c *clock) {
	hold := m.opts.SendErrorHold
	s := &m.stall
	if !s.downAt.IsZero() && !c.before(s.downAt.Add(hold)) {
		m.resetOverallStallLocked()
	}
	if !s.downAt.IsZero() && !c.before(s.trialAt) {
		if m.status.Reason == ReasonSendErrors {
			m.gate.Trial()
		}
		s.trialAt = c.now.Add(stallTrialEvery)
		c.before(s.trialAt)
	}
	for _, p := range m.paths {
		if p.stallAt.IsZero() || c.before(p.stallAt.Add(hold)) {
			continue
		}
		p.stallAt = time.Time{}
		m.dropFailuresLocked(func(f failure) bool { return p.has(f.dst) })
	}
}

// succMark is a success remembered while the detector held nothing.
type succMark struct {
	dst netip.Addr
	at  time.Time
}

// succMarkEvery is how often markSuccess replaces the mark of the same
// destination: its time may be this much behind the last success, which
// only makes a destination that fails right after it count as dead
// sooner.
const succMarkEvery = 100 * time.Millisecond

// markSuccess remembers a success towards dst while the detector holds
// nothing, without the lock: one clock read and, when dst changed or the
// mark is older than succMarkEvery, one pointer store.
func (m *Monitor) markSuccess(dst netip.Addr) {
	now := time.Now()
	if p := m.lastSucc.Load(); p != nil && p.dst == dst && now.Sub(p.at) < succMarkEvery {
		return
	}
	m.lastSucc.Store(&succMark{dst: dst, at: now})
}

// successLocked records a send that succeeded towards dst (the zero Addr
// if unknown) at now: the path works, so the network's verdict ends and
// the failures before it are forgotten, and dst is live for
// SendErrorWindow unless it fails again. A success towards a declared
// target's address ends that target's own verdict too.
func (m *Monitor) successLocked(now time.Time, dst netip.Addr) {
	s := &m.stall
	if s.succ == nil {
		s.succ = make(map[netip.Addr]time.Time, 4)
	}
	for d, at := range s.succ {
		if now.Sub(at) > m.opts.SendErrorWindow {
			delete(s.succ, d)
		}
	}
	// A success towards an unknown destination forgets the failures
	// before it, but makes nothing live: a failure to its destination
	// could not be told apart from one elsewhere.
	if _, ok := s.succ[dst]; dst.IsValid() && (ok || len(s.succ) < maxStallFails) {
		s.succ[dst] = now
	}
	changed := false
	if p := m.targetOf(dst); p != nil {
		changed = !p.stallAt.IsZero()
		p.stallAt = time.Time{}
		m.dropFailuresLocked(func(f failure) bool { return p.has(f.dst) })
	}
	if m.overallStallLocked() {
		changed = true
		m.resetOverallStallLocked()
	}
	if changed {
		m.stats.Successes++
		m.evaluateLocked(now)
	}
}

// stallFactsLocked summarises the detector for the rule at now (see
// stallFacts): expireStallLocked has ended the verdicts whose hold passed.
func (m *Monitor) stallFactsLocked(now time.Time) stallFacts {
	s := &m.stall
	f := stallFacts{downAt: s.downAt, hold: m.opts.SendErrorHold}
	if len(s.fails) == 0 {
		return f
	}
	f.lastFail = s.fails[len(s.fails)-1].at
	f.spread = m.distinctDestinations(now.Add(-m.opts.Recent))
	f.live = m.liveLocked(now)
	end := func(at time.Time) {
		if t := at.Add(m.opts.SendErrorWindow); now.Before(t) && (f.liveEnd.IsZero() || t.Before(f.liveEnd)) {
			f.liveEnd = t
		}
	}
	for _, at := range s.succ {
		end(at)
	}
	if p := m.lastSucc.Load(); p != nil {
		end(p.at)
	}
	return f
}
