package netmon

import (
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// The rule, in one place: judge takes the facts the Monitor has gathered
// (the interfaces' links, addresses, routes and gateways' neighbour
// entries with what the Wi-Fi and DHCP watchers said of them, the
// targets' paths as the kernel routes them, the data-stall detector's
// summary, the stabilisation window's state) and returns the verdict and
// the next instant at which it could change by itself (a lifetime running
// out, a roam hold ending, a send-errors hold ending, a stabilisation
// window closing...). It holds no lock, reads no clock, does no I/O and
// changes nothing but its own result: the Monitor keeps the state, builds
// the facts under its lock (factsLocked) and carries out what the verdict
// implies (apply.go: the Gate, events, the flap journal), as tailscale's
// net/netmon compares two State values with one method. verdict_test.go
// tests it by tables.

// facts is what the rule judges: plain values, read only.
type facts struct {
	// ifaces are the watched interfaces by index, with their Wi-Fi and
	// DHCP facts attached (a bridge's or bond's from its wireless port).
	// judge reads them and never changes them.
	ifaces map[int]*iface
	// paths are the targets' paths (the implicit internet ones without
	// Options.Targets), in order.
	paths []pathFacts
	// prevUplink is the interface that last carried traffic (0: none).
	prevUplink int
	// had is the set of families the uplink hadIdx carried since it
	// became the uplink (see verdict.had).
	had    families
	hadIdx int
	// recent bounds how long a roam or recent send failures count;
	// leaseMargin is how close to its end a lease counts as expiring.
	recent, leaseMargin time.Duration
	stall               stallFacts
	stab                stabFacts
	// out is a buffer for verdict.paths (its capacity is reused, so an
	// evaluation allocates nothing).
	out []pathVerdict
}

// pathFacts is what the rule knows of one target's path.
type pathFacts struct {
	t        Target
	implicit bool // an internet target, not one the user named
	// path is the kernel's answer for t.Addr, under that with a policy
	// rule's mark when path enters an overlay (the underlay), zero
	// otherwise.
	path, under linkwatch.Path
	stallAt     time.Time // when the data-stall detector closed it (stall.go); zero while it does not
	// gated is whether the target has a Gate of its own (a declared
	// target), gateWas that Gate's state after the last evaluation.
	gated   bool
	gateWas targetGate
}

// family returns 4 or 6.
func (p *pathFacts) family() int { return addrFamily(p.t.Addr) }

// pathVerdict is the rule's verdict on one target's path.
type pathVerdict struct {
	ok     bool
	reason Reason
	index  int // the interface judged: the underlay when via is set
	via    int // the overlay the path enters, 0 when none
	// gateNow is the state of the target's own Gate after this
	// evaluation (declared targets only, see nextGate).
	gateNow targetGate
}

// targetGate is the state of a declared target's own Gate.
type targetGate struct {
	open        bool      // it was opened last
	lostWhileUp bool      // lost while the overall state stayed usable: stabilise its return
	upAt        time.Time // when its return has lasted Options.Stabilize
}

// nextGate returns the state of a target's Gate after an evaluation: open
// while its path is usable (ok) and the overall state lets traffic flow
// (canSend), closed otherwise. A target lost while the overall state
// stayed usable (another target was fine) reopens only after its return
// has lasted stabilize, as the Monitor's Gate does after an outage; after
// an outage of everything the Monitor's own window has already applied.
func nextGate(g targetGate, ok, canSend bool, stabilize time.Duration, c *clock) targetGate {
	if !ok || !canSend {
		return targetGate{lostWhileUp: canSend && (g.open || g.lostWhileUp)}
	}
	if g.open {
		return g
	}
	if g.lostWhileUp && stabilize > 0 {
		if g.upAt.IsZero() {
			g.upAt = c.now.Add(stabilize)
		}
		if c.before(g.upAt) {
			return g
		}
	}
	return targetGate{open: true}
}

// stallFacts summarises the data-stall detector (stall.go) for the rule.
type stallFacts struct {
	// downAt is when the detector confirmed a stall of the network
	// (zero: it holds none); the verdict holds for hold from then, and
	// a target's (pathFacts.stallAt) for hold from its own.
	downAt time.Time
	hold   time.Duration
	// lastFail is the last counted failure (zero: none); spread is how
	// many destinations the network's failures within recent reached.
	lastFail time.Time
	spread   int
	// live is whether some destination is live (a send to it succeeded
	// within the window and none failed since); liveEnd is the earliest
	// instant after now at which a success leaves the window (zero:
	// none).
	live    bool
	liveEnd time.Time
}

// stabFacts is the state of the stabilisation window a return waits out
// (Options.Stabilize, damp.go).
type stabFacts struct {
	prev      State         // the state last reported
	stabilize time.Duration // Options.Stabilize; 0: returns act at once
	// upAt is when the return under way has lasted its window, window
	// that window; zero while no return waits.
	upAt   time.Time
	window time.Duration
	// damp and lastUpAt (when an outage last ended) give the window a new
	// return waits out (dampWindow).
	damp     damping
	lastUpAt time.Time
}

// verdict is the outcome of one evaluation.
type verdict struct {
	state  State
	reason Reason
	iface  string
	index  int
	target string // the target the reason concerns, "" for none

	// paths are the verdicts on facts.paths, in their order.
	paths []pathVerdict
	// had and hadIdx are the families the uplink carries, for the next
	// facts: losing one later reads as ipv4-lost or ipv6-lost. A new
	// uplink, or an outage, starts afresh.
	had    families
	hadIdx int
	// loss is set when the path is lost: an outage begins, or a return
	// waiting out its window is cut short (damping counts it).
	loss bool
	// holdUntil is set while a return waits out its stabilisation window
	// (holdWindow long): the reported status stays as it was until then.
	holdUntil  time.Time
	holdWindow time.Duration
}

// judge returns the verdict on f at now and the next instant after now at
// which the verdict could change without a new fact (zero: none). It reads
// f and writes only into f.out's array (the verdict's paths).
func judge(f *facts, now time.Time) (verdict, time.Time) {
	c := &clock{now: now}
	out := f.out
	if cap(out) < len(f.paths) {
		out = make([]pathVerdict, len(f.paths))
	}
	out = out[:len(f.paths)]
	for i := range f.paths {
		judgePath(f.ifaces, &f.paths[i], f.stall.hold, c, &out[i])
	}
	v := evaluate(f.ifaces, f.paths, out, c, f.prevUplink, f.had, f.hadIdx, f.recent, f.leaseMargin)
	v.paths = out
	noteFamilies(&v, f.paths, f.had, f.hadIdx)
	stallVerdict(&v, &f.stall, f.recent, c)

	// Returns wait out the stabilisation window, damped for a link that
	// keeps bouncing (damp.go); losses act at once.
	s := f.stab
	v.loss = !v.state.CanSend() && (s.prev.CanSend() || !s.upAt.IsZero())
	if v.state.CanSend() && s.prev == Down && s.stabilize > 0 {
		if s.upAt.IsZero() {
			s.window = dampWindow(s.damp, s.stabilize, f.recent, s.lastUpAt, now)
			s.upAt = now.Add(s.window)
		}
		if c.before(s.upAt) {
			v.holdUntil, v.holdWindow = s.upAt, s.window
		}
	}

	// The targets' own Gates follow the status as it will be reported:
	// the one before while a return waits out its window.
	canSend := v.state.CanSend()
	if !v.holdUntil.IsZero() {
		canSend = s.prev.CanSend()
	}
	for i := range f.paths {
		if f.paths[i].gated {
			out[i].gateNow = nextGate(f.paths[i].gateWas, out[i].ok, canSend, s.stabilize, c)
		}
	}
	return v, c.next
}

// noteFamilies sets which families the uplink carries after verdict v
// (v.had, v.hadIdx): those it had, and those of the implicit paths usable
// through it now. A new uplink, or an outage, starts afresh: a network
// that never had IPv6 is not degraded.
func noteFamilies(v *verdict, paths []pathFacts, had families, hadIdx int) {
	if !v.state.CanSend() {
		v.had, v.hadIdx = 0, 0
		return
	}
	if v.index != hadIdx {
		had, hadIdx = 0, v.index
	}
	for i := range paths {
		if pv := &v.paths[i]; paths[i].implicit && pv.ok && pv.index == v.index {
			had |= famBit(paths[i].family())
		}
	}
	v.had, v.hadIdx = had, hadIdx
}

// stallVerdict applies the data-stall detector to a verdict the kernel's
// state allows: down while it holds the state, degraded while recent
// failures reached several destinations and none is live.
func stallVerdict(v *verdict, s *stallFacts, recent time.Duration, c *clock) {
	if !v.state.CanSend() {
		return
	}
	switch {
	case !s.downAt.IsZero() && c.before(s.downAt.Add(s.hold)):
		v.state, v.reason, v.target = Down, ReasonSendErrors, ""
	case v.state == Up && c.within(s.lastFail, recent) && s.spread >= 2 && !s.liveClock(c):
		v.state, v.reason = Degraded, ReasonSendErrors
	}
}

// liveClock is live asked through the rule's clock, so that the moment a
// destination stops counting as live is a deadline.
func (s *stallFacts) liveClock(c *clock) bool {
	c.before(s.liveEnd)
	return s.live
}

// roaming reports whether the station is held as between two APs.
func (w *WifiInfo) roaming(c *clock) bool { return w != nil && c.before(w.roamUntil) }

// weak reports whether the signal band is weak or critical.
func (w *WifiInfo) weak() bool { return w != nil && (w.Band == "weak" || w.Band == "critical") }

// usableAddr reports whether a can carry traffic to the outside: global
// scope, DAD finished and passed, lifetime not over.
func usableAddr(a linkwatch.Addr, c *clock) bool {
	return a.Usable() && (a.Observed.IsZero() || a.Valid == linkwatch.Forever || c.before(a.Observed.Add(a.Valid)))
}

// gatewayFailed reports whether every gateway of the interface's default
// routes has a FAILED neighbour entry (at least one gateway must exist).
func (f *iface) gatewayFailed() bool {
	failed := false
	for _, r := range f.routes {
		if !r.Gateway.IsValid() {
			return false // on-link default: no gateway to fail
		}
		n, ok := f.neigh(r.Gateway)
		if !ok || !n.Failed() {
			return false
		}
		failed = true
	}
	return failed
}

// metric returns the lowest metric of the interface's usable default
// routes.
func (f *iface) metric(c *clock) int {
	best := int(^uint(0) >> 1)
	for _, r := range f.routes {
		if f.routeUsable(r, c) && r.Metric < best {
			best = r.Metric
		}
	}
	return best
}

// downReason returns why the interface cannot carry traffic to the
// internet, or "" if it can: its link, a usable address of either family,
// and a default route. The checks run from the lowest layer up, so the
// reason names the first thing that is wrong.
func (f *iface) downReason(c *clock) Reason {
	if r := f.pathDownReason(0, c); r != "" {
		return r
	}
	for _, r := range f.routes {
		if f.routeUsable(r, c) {
			return ""
		}
	}
	return ReasonNoDefaultRoute
}

// linkDownReason returns why the link itself cannot carry traffic, or "".
// A station held between two APs (roaming) can.
func (f *iface) linkDownReason(c *clock) Reason {
	l := f.link
	switch {
	case !l.AdminUp:
		return ReasonAdminDown
	case f.wifi.roaming(c):
		return ""
	case f.wifi != nil && f.wifi.Disconnected:
		return ReasonWifiDisconnect
	case !l.Carrier || (l.Oper != linkwatch.OperUp && l.Oper != linkwatch.OperUnknown):
		return ReasonCarrierLost
	}
	return ""
}

// pathDownReason returns why a path the kernel routes through the
// interface cannot carry traffic of the family (4 or 6; 0: either), or ""
// if it can: the link, then a usable address of that family. The route
// itself is the kernel's answer, so it is not checked here.
func (f *iface) pathDownReason(fam int, c *clock) Reason {
	if r := f.linkDownReason(c); r != "" {
		return r
	}
	if !f.hasAddr(fam, c) {
		// A lease past T1 whose address is gone has expired, even if the
		// kernel's removal message is still on its way.
		if f.dhcp != nil && (f.dhcp.Phase == "expired" || f.dhcp.Phase == "rebinding" || f.dhcp.Phase == "renewing") {
			return ReasonLeaseExpired
		}
		return ReasonNoAddress
	}
	return ""
}

// routeUsable reports whether a default route through the interface can
// carry traffic. The kernel flags a route linkdown while its device has no
// carrier and clears the flag without a message when the carrier returns,
// so the flag read before a carrier-up event is stale once the link says
// it has carrier: trusting it would report no-default-route for the few
// milliseconds until linkwatch re-reads the routes.
//
// A station held between two APs keeps its routes usable: the flag is set
// for the gap only.
func (f *iface) routeUsable(r linkwatch.Route, c *clock) bool {
	return !r.LinkDown || f.link.Carrier || f.wifi.roaming(c)
}

// degradedReason returns why a usable interface may lose traffic soon, or
// "" if nothing does. recent bounds how long a roam counts; margin is how
// close to expiry a lease counts as expiring.
func (f *iface) degradedReason(c *clock, recent, margin time.Duration) Reason {
	switch {
	case f.wifi.roaming(c):
		return ReasonRoamed
	case f.gatewayFailed():
		return ReasonGatewayFailed
	case f.dhcp != nil && (f.dhcp.Phase == "renewing" || f.dhcp.Phase == "rebinding"):
		return ReasonDHCPRenewing
	case f.dhcp != nil && !f.dhcp.Expires.IsZero() && !c.before(f.dhcp.Expires.Add(-margin)):
		return ReasonLeaseExpiring
	case f.wifi.weak():
		return ReasonWeakSignal
	case f.wifi != nil && c.within(f.wifi.LastRoam, recent):
		return ReasonRoamed
	}
	return ""
}

// families is a set of IP families, by 4 and 6.
type families uint8

func famBit(fam int) families { return families(1) << (fam / 6) } // 4 -> 1, 6 -> 2

// evaluate computes the overall state from the interfaces and the
// targets' paths, judged already (pv, one per path; see judgePath). Without targets the paths are the implicit
// internet ones, one per family: up while either is usable; degraded
// (ipv4-lost, ipv6-lost) while one family the uplink had (in had, for the
// interface hadIdx) is gone and the other stays; an IPv4-only network is
// never degraded for lacking IPv6. With targets: up while every target is
// reachable, degraded (target-unreachable, naming the first that is not)
// while some are, down while none is. prevUplink is the index of the last
// interface that carried traffic: when everything is down and no path
// names an interface, its reason is the one reported, because that is the
// link the user lost.
func evaluate(ifaces map[int]*iface, paths []pathFacts, pv []pathVerdict, c *clock, prevUplink int, had families, hadIdx int, recent, margin time.Duration) verdict {
	if len(ifaces) == 0 {
		return verdict{state: Down, reason: ReasonNoInterface}
	}
	var up *pathVerdict
	var down *pathFacts
	for i := range paths {
		switch {
		case pv[i].ok && up == nil:
			up = &pv[i]
		case !pv[i].ok && down == nil:
			down = &paths[i]
		}
	}
	if up == nil {
		return downVerdict(ifaces, paths, pv, c, prevUplink)
	}
	v := verdict{state: Up, index: up.index}
	f := ifaces[up.index]
	if f != nil {
		v.iface = f.link.Name
	}
	if down != nil {
		switch {
		case !down.implicit:
			v.state, v.reason, v.target = Degraded, ReasonTargetUnreachable, down.t.Spec
			return v
		case hadIdx == up.index && had&famBit(down.family()) != 0:
			v.state, v.reason = Degraded, ReasonIPv4Lost
			if down.family() == 6 {
				v.reason = ReasonIPv6Lost
			}
			return v
		}
	}
	if f != nil {
		if r := f.degradedReason(c, recent, margin); r != "" {
			v.state, v.reason = Degraded, r
		}
	}
	return v
}

// downVerdict explains a state in which no target is reachable: the first
// path that names an interface gives the reason and the interface; else
// the interface the user most likely cares about (the last uplink, else
// one that still has a default route, else a wireless one, else the first)
// with its own reason.
func downVerdict(ifaces map[int]*iface, paths []pathFacts, pv []pathVerdict, c *clock, prevUplink int) verdict {
	for i, p := range pv {
		if f, ok := ifaces[p.index]; ok && p.reason != "" {
			v := verdict{state: Down, reason: p.reason, iface: f.link.Name, index: p.index}
			if !paths[i].implicit {
				v.target = paths[i].t.Spec
			}
			return v
		}
	}
	idx := sortedIndexes(ifaces)
	pick := 0
	if _, ok := ifaces[prevUplink]; ok {
		pick = prevUplink
	}
	for _, i := range idx {
		if pick != 0 {
			break
		}
		if len(ifaces[i].routes) > 0 {
			pick = i
		}
	}
	for _, i := range idx {
		if pick != 0 {
			break
		}
		if ifaces[i].wifi != nil {
			pick = i
		}
	}
	if pick == 0 {
		pick = idx[0]
	}
	f := ifaces[pick]
	v := verdict{state: Down, reason: f.downReason(c), iface: f.link.Name, index: pick}
	if len(paths) > 0 && !paths[0].implicit {
		// The interface is fine, but the targets' paths are not.
		if v.reason == "" {
			v.reason = pv[0].reason
		}
		v.target = paths[0].t.Spec
	}
	if v.reason == "" && len(paths) > 0 {
		v.reason = pv[0].reason
	}
	return v
}

// judgePath decides whether traffic to p's target can flow, and which
// interface the verdict concerns. A path through an overlay is judged by
// the overlay's own link (the tunnel daemon still holds it) and then by its
// underlay: the interface the rule's mark leads to, else the best
// physical uplink.
// A target the data-stall detector closed (its stallAt) stays closed
// (send-errors) for hold from then.
func judgePath(ifaces map[int]*iface, p *pathFacts, hold time.Duration, c *clock, v *pathVerdict) {
	*v = pathVerdict{}
	switch {
	case !p.t.Addr.IsValid():
		v.reason = ReasonUnresolved
		return
	case !p.path.Reachable():
		v.reason = ReasonNoRoute
		if p.implicit {
			v.reason = ReasonNoDefaultRoute
		}
		return
	}
	fam := p.family()
	f, ok := ifaces[p.path.Index]
	if !ok {
		// The kernel routes through an interface the options leave out
		// (Options.Interfaces, Exclude): the user said which interfaces
		// matter, so judge the best of those instead.
		if f = bestPhysical(ifaces, fam, c); f == nil {
			v.reason = ReasonNoDefaultRoute
			return
		}
	}
	v.index = f.link.Index
	if isOverlay(f.link.Kind) {
		v.via = f.link.Index
		if r := f.linkDownReason(c); r != "" {
			v.reason = r // the tunnel daemon let go of its device
			return
		}
		if !f.hasAddr(fam, c) {
			v.reason = ReasonNoAddress
			return
		}
		f = nil
		if p.under.Index != 0 || p.under.Err != nil {
			if !p.under.Reachable() {
				v.reason = ReasonNoDefaultRoute
				v.index = 0
				return
			}
			f = ifaces[p.under.Index]
		}
		if f == nil {
			f = bestPhysical(ifaces, fam, c)
		}
		if f == nil {
			f = bestPhysical(ifaces, 0, c) // a tunnel over the other family
		}
		if f == nil {
			v.reason, v.index = ReasonNoUnderlay, 0
			return
		}
		v.index = f.link.Index
		fam = 0 // the tunnel's own packets may use either family
	}
	v.reason = f.pathDownReason(fam, c)
	if v.reason == "" && !p.stallAt.IsZero() && c.before(p.stallAt.Add(hold)) {
		v.reason = ReasonSendErrors // senders' failures towards it (stall.go)
	}
	v.ok = v.reason == ""
}

// bestPhysical returns the interface that most likely carries an overlay
// whose daemon marks nothing: a usable non-overlay interface with a
// default route of the family (lowest metric), else any with one (so that
// the verdict names what is wrong with it), else nil.
func bestPhysical(ifaces map[int]*iface, fam int, c *clock) *iface {
	var best, any *iface
	for _, i := range sortedIndexes(ifaces) {
		f := ifaces[i]
		if isOverlay(f.link.Kind) || !f.hasDefault(fam) {
			continue
		}
		if any == nil {
			any = f
		}
		if f.downReason(c) == "" && (best == nil || f.metric(c) < best.metric(c)) {
			best = f
		}
	}
	if best != nil {
		return best
	}
	return any
}

// hasDefault reports whether a default route of the family (4 or 6; 0:
// either) leaves through the interface.
func (f *iface) hasDefault(fam int) bool {
	for _, r := range f.routes {
		if fam == 0 || addrFamily(r.Dst.Addr()) == fam {
			return true
		}
	}
	return false
}

// hasAddr reports whether the interface has a usable address of the
// family (4 or 6; 0: either).
func (f *iface) hasAddr(fam int, c *clock) bool {
	for _, a := range f.addrs {
		if (fam == 0 || addrFamily(a.Prefix.Addr()) == fam) && usableAddr(a, c) {
			return true
		}
	}
	return false
}

// clock is the rule's view of time. Every time-based predicate of the rule
// asks it, and it remembers the earliest instant after now at which one of
// those answers would change: a lifetime running out, a roam leaving the
// recent window, a lease coming within the margin of its end, a send-errors
// hold ending, a stabilisation window closing. So the rule knows its own
// deadlines: the Monitor's loop sleeps until next, and there is no second
// list of time predicates to keep in step with the rule.
type clock struct {
	now  time.Time
	next time.Time // zero: nothing time-based can change the verdict
}

// before reports whether now is before t. While it is, the answer changes
// at t, which is noted. A zero t is never in the future.
func (c *clock) before(t time.Time) bool {
	if t.IsZero() || !c.now.Before(t) {
		return false
	}
	if c.next.IsZero() || t.Before(c.next) {
		c.next = t
	}
	return true
}

// within reports whether t happened less than d ago (false for a zero t).
func (c *clock) within(t time.Time, d time.Duration) bool {
	return !t.IsZero() && c.before(t.Add(d))
}

// stallProof is what confirmed a stall (confirmStall).
type stallProof struct {
	byGateway bool          // the uplink's gateway does not answer
	n, dests  int           // else: n failures to dests destinations
	span      time.Duration // from the first of them to now
}

// confirmStall is the data-stall detector's rule (stall.go): whether the
// failures that concern the network (fails, oldest first, all since the
// last success anywhere: a success forgets the failures before it) make a
// stall at now. It takes threshold of them, no destination live, and
// either the uplink's gateway not answering (its neighbour entry FAILED:
// the first hop is dead) or the failures spanning at least two
// destinations, none counting for more than half of the threshold (so
// that one dead peer and a stray failure elsewhere are not one) while the
// gateway answers: nothing beyond it does. Failures without a known
// destination count as one destination of their own.
func confirmStall(fails []failure, threshold int, live, gatewayFailed bool, now time.Time) (stallProof, bool) {
	if len(fails) < threshold || live {
		return stallProof{}, false
	}
	if gatewayFailed {
		return stallProof{byGateway: true}, true
	}
	per := map[netip.Addr]int{}
	for _, f := range fails {
		per[f.dst]++
	}
	limit := (threshold + 1) / 2
	capped := 0
	for _, c := range per {
		capped += min(c, limit)
	}
	if len(per) < 2 || capped < threshold {
		return stallProof{}, false
	}
	return stallProof{n: len(fails), dests: len(per), span: now.Sub(fails[0].at)}, true
}
