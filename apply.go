package netmon

import (
	"fmt"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
)

// applyLinkLocked folds one linkwatch event into the interfaces, emits the
// matching event and re-evaluates the state.
func (m *Monitor) applyLinkLocked(ev linkwatch.Event) {
	now := ev.Time()
	if m.dhcp != nil {
		// Lease events first: an address removed at the end of its
		// lifetime must read as lease-expired, not no-address.
		m.applyDHCPLocked(m.dhcp.Apply(now, ev))
	}
	// kernelChange is whether the event changes the path senders use; it
	// ends a data-stall verdict. A lifetime refresh, a flag change or a
	// link message that moves nothing (statistics, promiscuity) does not.
	kernelChange := true
	switch e := ev.(type) {
	case linkwatch.Baseline:
		m.replaceLocked(e.State)
		m.baseline = true
		m.baselineDue = now.Add(m.opts.BaselineWait)
		m.refreshPathsLocked()
		m.evaluateLocked(now)
		m.baselineEventLocked(now)
		return
	case linkwatch.GapEvent:
		m.stats.Gaps++
		m.replaceLocked(e.State)
		m.pathsDirty = true
		m.emitLocked(Event{Kind: EventGap, At: now, Msg: "kernel messages lost or a read failed; state re-read",
			Fields: []zap.Field{zap.Error(e.Err)}})
	case linkwatch.LinkEvent:
		m.applyLinkEventLocked(e)
		kernelChange = e.PathChanged()
	case linkwatch.AddrEvent:
		m.applyAddrEventLocked(e)
		kernelChange = e.Op == linkwatch.AddrAdded || e.Op == linkwatch.AddrRemoved
	case linkwatch.RouteEvent:
		m.applyRouteEventLocked(e)
	case linkwatch.NeighEvent:
		// Only a neighbour that answers ends the verdict; that is
		// decided inside, where the streak is cleared too.
		m.applyNeighEventLocked(e)
		kernelChange = false
		// The kernel's choice among IPv6 routers (and, with
		// fib_multipath_use_neigh, among IPv4 next hops) follows the
		// gateways' neighbour state without a route message.
		m.pathsDirty = true
	case linkwatch.RuleEvent:
		m.applyRuleLocked(e)
	case linkwatch.OtherRouteEvent:
		// A prefix or unreachable route: it may move a target's path,
		// but it is not the kind of change that ends a data-stall
		// verdict (a routing daemon installs such routes all day).
		m.pathsDirty = true
		kernelChange = false
	default:
		kernelChange = false
	}
	if kernelChange && m.stallActive() {
		// "until the kernel reports a change": the data-stall verdict,
		// and the failures it counted, concern the old path.
		m.resetStallLocked()
	}
	if kernelChange {
		m.pathsDirty = true
	}
	if m.pathsDirty && !m.batching && !m.refreshDeferredLocked() {
		// The last of a batch of changes: ask the kernel where the
		// targets' packets go now, once for the whole batch.
		m.refreshPathsLocked()
	}
	m.evaluateLocked(now)
}

// replaceLocked rebuilds the interfaces from a full state, keeping what
// the Wi-Fi and DHCP watchers said about interfaces that still exist.
func (m *Monitor) replaceLocked(s linkwatch.State) {
	m.rules = s.Rules
	old := m.ifaces
	m.ifaces = make(map[int]*iface, len(s.Links))
	for i, l := range s.Links {
		f := &iface{link: l}
		if o, ok := old[i]; ok {
			f.wifi, f.dhcp = o.wifi, o.dhcp
		}
		m.ifaces[i] = f
	}
	for _, a := range s.Addrs {
		if f, ok := m.ifaces[a.Index]; ok {
			f.addrs = append(f.addrs, a)
		}
	}
	for _, r := range s.Routes {
		if f, ok := m.ifaces[r.Index]; ok && r.Default() {
			f.routes = append(f.routes, r)
		}
	}
	for _, n := range s.Neighs {
		if f, ok := m.ifaces[n.Index]; ok {
			f.neighs = append(f.neighs, n)
		}
	}
}

func (m *Monitor) applyLinkEventLocked(e linkwatch.LinkEvent) {
	l := e.Link
	fields := []zap.Field{
		zap.Int("index", l.Index),
		zap.Bool("admin_up", l.AdminUp),
		zap.Bool("carrier", l.Carrier),
		zap.String("oper", l.Oper.String()),
	}
	switch e.Op {
	case linkwatch.LinkRemoved:
		if f, ok := m.ifaces[l.Index]; ok {
			for _, a := range f.addrs {
				m.maybeRebindLocked(e.At, f, a)
			}
		}
		delete(m.ifaces, l.Index)
		// Its Wi-Fi and lease facts go with it: the kernel may give its
		// index to the next link, which must not inherit them.
		delete(m.wifiInfo, l.Index)
		delete(m.dhcpInfo, l.Index)
		m.emitLocked(Event{Kind: EventLink, At: e.At, Iface: l.Name, Msg: "link removed", Fields: fields})
		return
	case linkwatch.LinkAdded:
		m.ifaces[l.Index] = &iface{link: l}
		m.emitLocked(Event{Kind: EventLink, At: e.At, Iface: l.Name, Msg: "link added", Fields: fields})
		return
	}
	f, ok := m.ifaces[l.Index]
	if !ok {
		f = &iface{}
		m.ifaces[l.Index] = f
	}
	f.link = l
	// An associated station's carrier loss may be a roam: hold the
	// verdict until nl80211 says why (see roamHold).
	if w := m.wifiInfo[l.Index]; w != nil && e.Prev.Carrier && !l.Carrier && w.Associated && !w.Disconnected {
		w.startRoamHold(e.At, verdictWait, e.Prev.Up())
	}
	fields = append(fields, zap.Stringer("changed", e.Changes()))
	m.emitLocked(Event{Kind: EventLink, At: e.At, Iface: l.Name, Msg: linkChangeMsg(e.Prev, l), Fields: fields})
	m.probeOnReturnLocked(e, f)
}

// linkChangeMsg describes what changed between two versions of a link.
func linkChangeMsg(prev, l linkwatch.Link) string {
	switch {
	case prev.Name != "" && prev.Name != l.Name:
		return fmt.Sprintf("renamed from %s", prev.Name)
	case prev.AdminUp != l.AdminUp && !l.AdminUp:
		return "admin down"
	case prev.AdminUp != l.AdminUp:
		return "admin up"
	case prev.Carrier != l.Carrier && !l.Carrier:
		return "carrier lost"
	case prev.Carrier != l.Carrier:
		return "carrier up"
	case prev.Oper != l.Oper:
		return "operstate " + l.Oper.String()
	}
	return "changed"
}

func (m *Monitor) applyAddrEventLocked(e linkwatch.AddrEvent) {
	a := e.Addr
	f, ok := m.ifaces[a.Index]
	if !ok {
		return // a filtered interface
	}
	i := -1
	for j := range f.addrs {
		if f.addrs[j].Prefix == a.Prefix {
			i = j
			break
		}
	}
	msg := ""
	switch e.Op {
	case linkwatch.AddrRemoved:
		if i >= 0 {
			f.addrs = append(f.addrs[:i], f.addrs[i+1:]...)
		}
		msg = a.Prefix.String() + " removed"
		m.maybeRebindLocked(e.At, f, a)
	default:
		if i >= 0 {
			f.addrs[i] = a
		} else {
			f.addrs = append(f.addrs, a)
		}
		msg = a.Prefix.String() + map[linkwatch.AddrOp]string{
			linkwatch.AddrAdded: " added", linkwatch.AddrRefreshed: " lifetimes refreshed", linkwatch.AddrChanged: " flags changed",
		}[e.Op]
	}
	fields := []zap.Field{zap.String("addr", a.Prefix.String())}
	if a.Valid != linkwatch.Forever {
		fields = append(fields, zap.Duration("valid_lft", a.Valid), zap.Duration("preferred_lft", a.Preferred))
	}
	if a.Tentative() {
		fields = append(fields, zap.Bool("tentative", true))
	}
	m.emitLocked(Event{Kind: EventAddr, At: e.At, Iface: f.link.Name, Msg: msg, Fields: fields})
}

// maybeRebindLocked signals a rebind when a usable address goes away:
// connections bound to it are dead even if their writes still succeed.
func (m *Monitor) maybeRebindLocked(at time.Time, f *iface, a linkwatch.Addr) {
	if !a.Global() {
		return
	}
	m.rebindLocked(Rebind{At: at, Iface: f.link.Name, Addr: a.Prefix, Reason: "address-removed"})
}

func (m *Monitor) rebindLocked(r Rebind) {
	m.lastRebind = r
	close(m.rebind)
	m.rebind = make(chan struct{})
	fields := []zap.Field{zap.String("reason", r.Reason)}
	if r.Addr.IsValid() {
		fields = append(fields, zap.String("addr", r.Addr.String()))
	}
	m.emitLocked(Event{Kind: EventRebind, At: r.At, Iface: r.Iface, Msg: "redial connections", Fields: fields})
}

func (m *Monitor) applyRouteEventLocked(e linkwatch.RouteEvent) {
	r := e.Route
	if !r.Default() {
		return
	}
	// A replaced route may move between interfaces: drop the old version
	// wherever it is.
	for _, old := range []linkwatch.Route{e.Prev, r} {
		if f, ok := m.ifaces[old.Index]; ok {
			f.routes = removeRoute(f.routes, old)
		}
	}
	if e.Op != linkwatch.RouteRemoved {
		if f, ok := m.ifaces[r.Index]; ok {
			f.routes = append(f.routes, r)
		}
	}
	msg := map[linkwatch.RouteOp]string{linkwatch.RouteAdded: "default route added",
		linkwatch.RouteRemoved: "default route removed", linkwatch.RouteChanged: "default route changed"}[e.Op]
	fields := []zap.Field{zap.String("dst", r.Dst.String()), zap.Int("metric", r.Metric)}
	if r.Gateway.IsValid() {
		fields = append(fields, zap.String("gateway", r.Gateway.String()))
	}
	if r.LinkDown {
		fields = append(fields, zap.Bool("linkdown", true))
	}
	m.emitLocked(Event{Kind: EventRoute, At: e.At, Iface: r.Iface, Msg: msg, Fields: fields})
}

// removeRoute deletes the route with r's key (destination, gateway,
// metric, table) from rs.
func removeRoute(rs []linkwatch.Route, r linkwatch.Route) []linkwatch.Route {
	out := rs[:0]
	for _, x := range rs {
		if x.Dst == r.Dst && x.Gateway == r.Gateway && x.Metric == r.Metric && x.Table == r.Table {
			continue
		}
		out = append(out, x)
	}
	return out
}

func (m *Monitor) applyNeighEventLocked(e linkwatch.NeighEvent) {
	n := e.Neigh
	f, ok := m.ifaces[n.Index]
	if !ok {
		return
	}
	out := f.neighs[:0]
	for _, x := range f.neighs {
		if x.IP != n.IP {
			out = append(out, x)
		}
	}
	f.neighs = out
	if !e.Removed {
		f.neighs = append(f.neighs, n)
	}
	if !e.Removed && n.Reachable() && n.Index == m.statusIdx {
		m.gatewayAnsweredLocked() // stall.go
	}
	m.emitLocked(Event{Kind: EventNeigh, At: e.At, Iface: f.link.Name, Msg: "gateway " + n.StateName(),
		Fields: []zap.Field{zap.String("gateway", n.IP.String()), zap.String("nud", n.StateName())}})
	m.probeUnresolvedLocked(e, f)
}

// evaluateLocked recomputes the state at now and carries out a change:
// the Gate, the flap journal, the state event.
func (m *Monitor) evaluateLocked(now time.Time) {
	if m.done {
		return // Run has returned: the status stays down/shutdown
	}
	// Evaluations never go back in time: an event read before the
	// timer fired (linkwatch stamps events when it parses them, and the
	// loop picks among ready channels at random) or a Report that waited
	// for the lock is judged at the latest time already judged, so a
	// deadline acted on is not undone.
	if now.Before(m.evalAt) {
		now = m.evalAt
	}
	m.evalAt = now
	before := m.wakeAt
	m.evaluateStatusLocked(now)
	if m.baseline {
		m.updateTargetGatesLocked()
		m.notePathsLocked()
	}
	if !m.wakeAt.IsZero() && (before.IsZero() || m.wakeAt.Before(before)) {
		m.wakeLocked() // the loop's timer must learn of the earlier deadline
	}
}

// movedLocked returns the interface traffic left by before, when it now
// leaves by another, or "". Without targets that is the uplink. With
// targets each one counts on its own: a target now reachable through
// another interface than the one it last used moved, but the uplink
// (the first reachable target's interface) changing because another
// target came or went moves nobody's traffic.
func (m *Monitor) movedLocked(v verdict) string {
	if len(m.opts.Targets) == 0 {
		if m.uplink != 0 && v.index != m.uplink {
			return m.uplinkName
		}
		return ""
	}
	from := ""
	for _, p := range m.paths {
		if !p.ok || p.index == 0 {
			continue
		}
		if p.lastIdx != 0 && p.lastIdx != p.index && from == "" {
			from = p.lastName
		}
		p.lastIdx, p.lastName = p.index, m.ifaceName(p.index)
	}
	return from
}

// attachPortsLocked gives a bridge or bond the Wi-Fi and DHCP facts of its
// wireless port, since the master carries the route and the port the
// radio (wlan0 in br0, or an active-backup bond of eth0 and wlan0). The
// master takes the Wi-Fi facts of a wireless port when no other port of
// it has carrier (the radio is what carries it, or an outage is the
// radio's), and the port's DHCP facts when it has none of its own (the
// client normally runs on the master).
func (m *Monitor) attachPortsLocked() {
	for _, i := range sortedIndexes(m.ifaces) {
		f := m.ifaces[i]
		mf, ok := m.ifaces[f.link.Master]
		if f.link.Master == 0 || !ok {
			continue
		}
		if mf.dhcp == nil && f.dhcp != nil {
			mf.dhcp = f.dhcp
		}
		if mf.wifi != nil || f.wifi == nil {
			continue
		}
		other := false
		for j, g := range m.ifaces {
			other = other || (j != i && g.link.Master == mf.link.Index && g.link.Carrier && g.wifi == nil)
		}
		if !other {
			mf.wifi = f.wifi
		}
	}
}

// factsLocked gathers what the rule judges at now (verdict.go): the
// interfaces with their Wi-Fi and DHCP facts, the targets' paths, the
// data-stall detector's summary and the stabilisation window's state.
func (m *Monitor) factsLocked(now time.Time) facts {
	for i, f := range m.ifaces {
		f.wifi, f.dhcp = m.wifiInfo[i], m.dhcpInfo[i]
	}
	m.attachPortsLocked()
	m.pathFacts = m.pathFacts[:0]
	for _, p := range m.paths {
		m.pathFacts = append(m.pathFacts, p.pathFacts)
	}
	return facts{
		ifaces:      m.ifaces,
		paths:       m.pathFacts,
		prevUplink:  m.uplink,
		had:         m.had,
		hadIdx:      m.hadIdx,
		recent:      m.opts.Recent,
		leaseMargin: m.opts.LeaseMargin,
		stall:       m.stallFactsLocked(now),
		stab: stabFacts{prev: m.status.State, stabilize: m.opts.Stabilize, upAt: m.upAt, window: m.upWindow,
			damp: m.damp, lastUpAt: m.lastUpAt},
		out: m.pathVerdicts,
	}
}

// evaluateStatusLocked is evaluateLocked without the targets' Gates: it
// judges the facts (judge) and carries out the verdict.
func (m *Monitor) evaluateStatusLocked(now time.Time) {
	c := &clock{now: now}
	m.expireStallLocked(c)
	m.wakeAt = c.next
	if !m.baseline {
		return // stay unknown until the first full read
	}
	f := m.factsLocked(now)
	v, next := judge(&f, now)
	c.before(next)
	m.wakeAt = c.next
	m.pathVerdicts = v.paths
	for i, p := range m.paths {
		p.pathVerdict = v.paths[i]
	}
	m.had, m.hadIdx = v.had, v.hadIdx
	if v.loss {
		m.noteLossLocked(now) // an outage begins, or a return is cut short
	}
	if !v.holdUntil.IsZero() {
		m.upAt, m.upWindow = v.holdUntil, v.holdWindow
		return
	}
	m.upAt = time.Time{}
	if v.state.CanSend() {
		if from := m.movedLocked(v); from != "" {
			// Traffic now leaves by another interface, whether it moved
			// while up (failover) or came back elsewhere after an
			// outage: sockets bound to the old one must be redialled.
			m.rebindLocked(Rebind{At: now, Iface: from, Reason: "uplink-changed"})
		}
		m.uplink, m.uplinkName = v.index, v.iface
	}
	if v.state == m.status.State && v.reason == m.status.Reason && v.iface == m.status.Iface && v.target == m.status.Target {
		return
	}
	prev := m.status
	m.status = Status{State: v.state, Reason: v.reason, Iface: v.iface, Target: v.target, Since: now}
	m.statusIdx = v.index
	m.transitionLocked(prev, now)
}

// transitionLocked carries out a state change from prev to m.status.
func (m *Monitor) transitionLocked(prev Status, now time.Time) {
	cur := m.status
	switch {
	case cur.State.CanSend() && !prev.State.CanSend():
		m.gate.Open()
		if m.outage != nil {
			m.endOutageLocked(now)
		}
	case !cur.State.CanSend() && prev.State.CanSend():
		m.gate.Close(closeReason(cur))
		m.startOutageLocked(now)
	case !cur.State.CanSend():
		m.gate.Close(closeReason(cur))
	}
	if m.baselineOut { // the baseline event reports the state until it goes out
		msg := fmt.Sprintf("%s -> %s", prev.State, cur.State)
		switch {
		case prev.State != cur.State:
		case prev.Reason != cur.Reason:
			// Same state, new explanation: say what changed.
			msg = fmt.Sprintf("%s: %s -> %s", cur.State, reasonText(prev.Reason), reasonText(cur.Reason))
		case prev.Iface != cur.Iface:
			msg = fmt.Sprintf("%s: uplink %s -> %s", cur.State, ifaceText(prev.Iface), ifaceText(cur.Iface))
		default:
			msg = fmt.Sprintf("%s: %s target %s -> %s", cur.State, reasonText(cur.Reason), prev.Target, cur.Target)
		}
		m.emitLocked(Event{Kind: EventState, At: now, Iface: cur.Iface, Msg: msg, Status: cur, Fields: m.snapshotFieldsLocked(now)})
	}
	m.wakeLocked()
}

// ifaceText is an interface name for a message: "none" for the empty one.
func ifaceText(name string) string {
	if name == "" {
		return "none"
	}
	return name
}

// reasonText is a reason for a message: "none" for the empty one.
func reasonText(r Reason) string {
	if r == ReasonNone {
		return "none"
	}
	return string(r)
}

// closeReason is what the Gate's errors carry: "carrier-lost on wlan0".
func closeReason(s Status) gate.Reason {
	return gate.Reason{Code: string(s.Reason), Iface: s.Iface}
}

func (m *Monitor) startOutageLocked(now time.Time) {
	o := &outage{start: now, cause: m.status.Reason, iface: m.status.Iface}
	if f, ok := m.ifaces[m.statusIdx]; ok && f.wifi != nil {
		o.signal, o.bssid = f.wifi.SignalDBm, f.wifi.BSSID
		if f.wifi.Disconnected && f.wifi.DisconnectReason != 0 {
			o.detail = fmt.Sprintf("802.11 reason %d", f.wifi.DisconnectReason)
		}
	}
	m.outage = o
}

func (m *Monitor) endOutageLocked(now time.Time) {
	o := m.outage
	m.outage = nil
	fl := Flap{Start: o.start, End: now, Duration: now.Sub(o.start), Iface: o.iface, Cause: o.cause,
		Detail: o.detail, SignalBefore: o.signal, BSSIDBefore: o.bssid, Stabilize: m.upWindow}
	m.upWindow = 0
	if f, ok := m.ifaces[m.statusIdx]; ok && f.wifi != nil {
		fl.SignalAfter, fl.BSSIDAfter = f.wifi.SignalDBm, f.wifi.BSSID
	}
	m.journal.add(fl)
	m.stats.Flaps++
	m.stats.DownTime += fl.Duration
	m.lastUpAt = now
	m.emitLocked(Event{Kind: EventFlap, At: now, Iface: fl.Iface,
		Msg: fmt.Sprintf("outage of %s ended after %s: %s", fl.Iface, fl.Duration.Round(time.Millisecond), fl.Cause), Flap: &fl})
}
