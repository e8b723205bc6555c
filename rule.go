package netmon

import (
	"net/netip"
	"sort"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// WifiInfo is the radio side of one wireless interface, as the Monitor
// last learned it from wifiwatch.
type WifiInfo struct {
	Associated bool      `json:"associated"`
	SSID       string    `json:"ssid,omitempty"`
	BSSID      string    `json:"bssid,omitempty"`
	FreqMHz    int       `json:"freq_mhz,omitempty"`
	SignalDBm  int       `json:"signal_dbm,omitempty"`
	Band       string    `json:"band,omitempty"` // good, fair, weak, critical
	TxBitrate  int       `json:"tx_bitrate_bps,omitempty"`
	RxBitrate  int       `json:"rx_bitrate_bps,omitempty"`
	LastRoam   time.Time `json:"last_roam,omitzero"`
	// Disconnected is set by an nl80211 disconnect and cleared by the next
	// association: it closes the Gate before the carrier change arrives.
	Disconnected     bool   `json:"disconnected,omitempty"`
	DisconnectReason uint16 `json:"disconnect_reason,omitempty"`
	// roamUntil is set while the station may be between two access points
	// (see startRoamHold): until then the link counts as usable and the
	// state is degraded, reason roamed. roamFrom is when the hold began:
	// holds that follow each other never reach past roamFrom plus
	// verdictWait plus roamGrace.
	roamUntil, roamFrom time.Time
}

// A station whose supplicant roams through the kernel's own MLME (every
// mac80211 driver; wpa_supplicant's SME) loses its carrier between the two
// access points: mac80211 leaves the old AP (a locally generated
// deauthentication, reason 1) the moment the supplicant starts
// authenticating with the new one, and the carrier returns with the new
// association. In the Wi-Fi lab (internal/wifilab, Debian's 6.1) that gap
// is 80-120 ms; queued TCP data survives it, so the Gate should not close.
// The Monitor holds its verdict over such a gap:
//   - verdictWait: a carrier loss on an associated station waits this long
//     for nl80211 to say why (the disconnect follows the carrier loss by
//     about 50 ms). A disconnect by the AP, or for any other reason than 1,
//     ends the hold at once: a beacon loss (reason 4) or a deauthentication
//     is an outage.
//   - roamGrace: a locally generated disconnect with reason 1 holds this
//     long, for the association to the next AP and (WPA2) its 4-way
//     handshake: a station whose link is up again by then had no outage.
//     Past it a station still without its link is down, from then.
//
// A deliberate disconnect by the supplicant (wpa_cli disconnect, a network
// switch) gives reason 3 and is not held.
const (
	verdictWait = 250 * time.Millisecond
	roamGrace   = time.Second
)

// roaming reports whether the station is held as between two APs.
func (w *WifiInfo) roaming(c *clock) bool { return w != nil && c.before(w.roamUntil) }

// startRoamHold holds the verdict for d from at, on a station whose link
// was usable just before (linkUp) or that is held already; a hold that
// follows another stays within the first one's bounds.
func (w *WifiInfo) startRoamHold(at time.Time, d time.Duration, linkUp bool) {
	held := at.Before(w.roamUntil)
	if !linkUp && !held {
		w.roamUntil = time.Time{}
		return
	}
	if !held {
		w.roamFrom = at
	}
	w.roamUntil = at.Add(d)
	if limit := w.roamFrom.Add(verdictWait + roamGrace); w.roamUntil.After(limit) {
		w.roamUntil = limit
	}
}

// disconnectHold applies a disconnect to the hold: a locally generated
// reason 1 on a station that was associated with its link up, or that is
// held after its carrier loss, starts a roamGrace; a disconnect without a
// reason (0: found by polling before nl80211's notification, as a loaded
// machine does) leaves a running hold to its bound; anything else ends it.
func (w *WifiInfo) disconnectHold(at time.Time, reason uint16, byAP, linkUp bool) {
	if reason == 0 && !byAP {
		return
	}
	if byAP || reason != 1 {
		w.roamUntil = time.Time{}
		return
	}
	w.startRoamHold(at, roamGrace, w.Associated && linkUp)
}

// weak reports whether the signal band is weak or critical.
func (w *WifiInfo) weak() bool { return w != nil && (w.Band == "weak" || w.Band == "critical") }

// DHCPInfo is the lease state of one interface, as the Monitor last learned
// it from dhcpwatch.
type DHCPInfo struct {
	Phase     string        `json:"phase"` // static, bound, renewing, rebinding, expired
	LeaseTime time.Duration `json:"-"`
	// Expires is when the lease runs out (zero when unknown or static).
	Expires time.Time  `json:"-"`
	T1, T2  time.Time  `json:"-"`
	Server  netip.Addr `json:"server,omitzero"`
	Router  netip.Addr `json:"router,omitzero"`
	Source  string     `json:"source,omitempty"` // "kernel" or the lease file
	// LeaseFile is the lease file that enriches a kernel lease (server,
	// router, T1 and T2), "" when none agrees with the kernel.
	LeaseFile string `json:"lease_file,omitempty"`
	// LastBlip is the end of the last renewal blip (address or route gone
	// and back within the blip window).
	LastBlip time.Time `json:"-"`
	// LastReconnect is when the address last came back after the link
	// reconnected (it was flushed while the link had no carrier or Wi-Fi
	// was not associated).
	LastReconnect time.Time `json:"-"`
}

// iface is the Monitor's view of one interface: the kernel's facts plus
// what the Wi-Fi and DHCP watchers said about it.
type iface struct {
	link   linkwatch.Link
	addrs  []linkwatch.Addr
	routes []linkwatch.Route // default routes leaving through it
	neighs []linkwatch.Neigh // its gateways' neighbour entries
	wifi   *WifiInfo
	dhcp   *DHCPInfo
}

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

func (f *iface) neigh(ip netip.Addr) (linkwatch.Neigh, bool) {
	for _, n := range f.neighs {
		if n.IP == ip {
			return n, true
		}
	}
	return linkwatch.Neigh{}, false
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

// verdict is the outcome of one evaluation.
type verdict struct {
	state  State
	reason Reason
	iface  string
	index  int
	target string // the target the reason concerns, "" for none
}

// families is a set of IP families, by 4 and 6.
type families uint8

func famBit(fam int) families { return families(1) << (fam / 6) } // 4 -> 1, 6 -> 2

// evaluate computes the overall state from the interfaces and the
// targets' paths (see judge). Without targets the paths are the implicit
// internet ones, one per family: up while either is usable; degraded
// (ipv4-lost, ipv6-lost) while one family the uplink had (in had, for the
// interface hadIdx) is gone and the other stays; an IPv4-only network is
// never degraded for lacking IPv6. With targets: up while every target is
// reachable, degraded (target-unreachable, naming the first that is not)
// while some are, down while none is. prevUplink is the index of the last
// interface that carried traffic: when everything is down and no path
// names an interface, its reason is the one reported, because that is the
// link the user lost.
func evaluate(ifaces map[int]*iface, paths []*pathState, c *clock, prevUplink int, had families, hadIdx int, recent, margin time.Duration) verdict {
	for _, p := range paths {
		judge(ifaces, p, c)
	}
	if len(ifaces) == 0 {
		return verdict{state: Down, reason: ReasonNoInterface}
	}
	var up, down *pathState
	for _, p := range paths {
		switch {
		case p.ok && up == nil:
			up = p
		case !p.ok && down == nil:
			down = p
		}
	}
	if up == nil {
		return downVerdict(ifaces, paths, c, prevUplink)
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
func downVerdict(ifaces map[int]*iface, paths []*pathState, c *clock, prevUplink int) verdict {
	for _, p := range paths {
		if f, ok := ifaces[p.index]; ok && p.reason != "" {
			v := verdict{state: Down, reason: p.reason, iface: f.link.Name, index: p.index}
			if !p.implicit {
				v.target = p.t.Spec
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
			v.reason = paths[0].reason
		}
		v.target = paths[0].t.Spec
	}
	if v.reason == "" && len(paths) > 0 {
		v.reason = paths[0].reason
	}
	return v
}

// sortedIndexes returns the interfaces' indexes in order.
func sortedIndexes(ifaces map[int]*iface) []int {
	idx := make([]int, 0, len(ifaces))
	for i := range ifaces {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

// judge decides whether traffic to p's target can flow, and which
// interface the verdict concerns. A path through an overlay is judged by
// the overlay's own link (the tunnel daemon still holds it) and then by its
// underlay: the interface the rule's mark leads to, else the best
// physical uplink.
func judge(ifaces map[int]*iface, p *pathState, c *clock) {
	p.ok, p.reason, p.index, p.via = false, "", 0, 0
	switch {
	case !p.t.Addr.IsValid():
		p.reason = ReasonUnresolved
		return
	case !p.path.Reachable():
		p.reason = ReasonNoRoute
		if p.implicit {
			p.reason = ReasonNoDefaultRoute
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
			p.reason = ReasonNoDefaultRoute
			return
		}
	}
	p.index = f.link.Index
	if isOverlay(f.link.Kind) {
		p.via = f.link.Index
		if r := f.linkDownReason(c); r != "" {
			p.reason = r // the tunnel daemon let go of its device
			return
		}
		if !f.hasAddr(fam, c) {
			p.reason = ReasonNoAddress
			return
		}
		f = nil
		if p.under.Index != 0 || p.under.Err != nil {
			if !p.under.Reachable() {
				p.reason = ReasonNoDefaultRoute
				p.index = 0
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
			p.reason, p.index = ReasonNoUnderlay, 0
			return
		}
		p.index = f.link.Index
		fam = 0 // the tunnel's own packets may use either family
	}
	p.reason = f.pathDownReason(fam, c)
	if p.reason == "" && !p.stallAt.IsZero() {
		p.reason = ReasonSendErrors // senders' failures towards it (stall.go)
	}
	p.ok = p.reason == ""
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

func addrFamily(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
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
