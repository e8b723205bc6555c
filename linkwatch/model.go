package linkwatch

import (
	"bytes"
	"cmp"
	"net"
	"net/netip"
	"slices"
	"time"
)

// msgKind says which rtnetlink object a message describes.
type msgKind uint8

const (
	kindNone       msgKind = iota // a message linkwatch does not track (or route noise)
	kindLink                      // RTM_NEWLINK / RTM_DELLINK
	kindAddr                      // RTM_NEWADDR / RTM_DELADDR
	kindRoute                     // RTM_NEWROUTE / RTM_DELROUTE (default routes only)
	kindNeigh                     // RTM_NEWNEIGH / RTM_DELNEIGH
	kindNexthop                   // RTM_NEWNEXTHOP / RTM_DELNEXTHOP
	kindRule                      // RTM_NEWRULE / RTM_DELRULE
	kindOtherRoute                // RTM_NEWROUTE / RTM_DELROUTE of a route not kept (prefix, unreachable, ...)
)

// nexthop is a nexthop object (`ip nexthop`), which routes name by id
// (RTA_NH_ID) instead of carrying their next hops.
type nexthop struct {
	id        uint32     // NHA_ID
	index     int        // NHA_OIF
	gw        netip.Addr // NHA_GATEWAY; zero when on-link
	linkDown  bool       // RTNH_F_LINKDOWN in nh_flags
	blackhole bool       // NHA_BLACKHOLE: packets are dropped
	group     []uint32   // NHA_GROUP members' ids; nil for a single nexthop
}

// message is one parsed rtnetlink message. The parser fills it in place and
// the model folds it into the state; byte slices point into the receive
// buffer and are copied only when the state keeps something new, which is
// what keeps folding an unchanged link free of allocations.
type message struct {
	kind    msgKind
	del     bool // RTM_DEL*
	replace bool // NLM_F_REPLACE: a route replaced another with the same key

	link     Link   // Name, Kind and MAC are left empty: see the byte fields
	name     []byte // IFLA_IFNAME
	linkKind []byte // IFLA_INFO_KIND
	mac      []byte // IFLA_ADDRESS, or NDA_LLADDR for a neighbour
	loopback bool   // IFF_LOOPBACK
	wireless bool   // IFLA_WIRELESS was present
	// partial: an RTM_NEWLINK without IFLA_OPERSTATE, which
	// rtnl_fill_ifinfo always includes. Such a message (a wireless
	// extensions event) carries only the flags and the name; the model
	// keeps what it knew of the rest.
	partial bool

	addr   Addr
	routes []Route // one per next hop; empty for a route linkwatch ignores
	neigh  Neigh
	rule   Rule
	other  OtherRouteEvent
	nh     nexthop
}

// effect asks the caller of [model.apply] to re-read part of the kernel
// state, because the message implies changes the kernel does not announce.
type effect uint8

const (
	// relistRoutes: a link changed admin state or carrier, or lost an
	// IPv4 address. The kernel deletes IPv4 routes on admin down and when
	// the last IPv4 address goes without RTM_DELROUTE, and flips the
	// linkdown flag of routes on carrier changes without any message.
	relistRoutes effect = 1 << iota
	// resync: a link was renamed into or out of the include/exclude
	// filter; its addresses, routes and neighbours must be read again.
	resync
)

type addrKey struct {
	index  int
	prefix netip.Prefix
}

type routeKey struct {
	table  int
	dst    netip.Prefix
	metric int
	index  int
	gw     netip.Addr
}

// routeHead identifies a route to the kernel, whatever its next hops.
type routeHead struct {
	table  int
	dst    netip.Prefix
	metric int
}

type neighKey struct {
	index int
	ip    netip.Addr
}

func (a Addr) key() addrKey     { return addrKey{a.Index, a.Prefix} }
func (r Route) key() routeKey   { return routeKey{r.Table, r.Dst, r.Metric, r.Index, r.Gateway} }
func (n Neigh) key() neighKey   { return neighKey{n.Index, n.IP} }
func (r Route) head() routeHead { return routeHead{r.Table, r.Dst, r.Metric} }

// model is linkwatch's view of the kernel. It holds only interfaces that
// pass the filter, and their addresses, default routes and neighbours. It
// is not safe for concurrent use; the Watcher guards it.
type model struct {
	// include decides which interfaces are watched; nil watches all.
	include func(name string, loopback bool) bool
	// kindHint names the kind of a link the kernel describes without
	// IFLA_INFO_KIND (a wireless driver has no rtnl_link_ops); nil or ""
	// means unknown.
	kindHint func(name string) string

	links  map[int]Link
	other  map[int]string // excluded links by index: their names, to notice a rename into the filter
	addrs  map[addrKey]Addr
	routes map[routeKey]Route
	neighs map[neighKey]Neigh // every neighbour entry of a watched link; State shows the gateways'
	rules  map[Rule]int       // policy rules, counted (the kernel accepts duplicates)

	nexthops map[uint32]nexthop // every nexthop object, by id
	// nhRoutes holds the routes that use a nexthop object as the kernel
	// sent them (NexthopID set, no Index or Gateway), to resolve them
	// again when the object changes; routes holds what they resolve to.
	nhRoutes map[routeHead]Route
}

func newModel(include func(string, bool) bool, kindHint func(string) string) *model {
	return &model{
		include:  include,
		kindHint: kindHint,
		links:    make(map[int]Link),
		other:    make(map[int]string),
		addrs:    make(map[addrKey]Addr),
		routes:   make(map[routeKey]Route),
		neighs:   make(map[neighKey]Neigh),
		rules:    make(map[Rule]int),
		nexthops: make(map[uint32]nexthop),
		nhRoutes: make(map[routeHead]Route),
	}
}

// apply folds one message into the model and appends the events it causes
// to evs. now stamps the events and the address lifetimes.
func (m *model) apply(msg *message, now time.Time, evs []Event) ([]Event, effect) {
	switch msg.kind {
	case kindLink:
		return m.applyLink(msg, now, evs)
	case kindAddr:
		n := len(evs)
		evs = m.applyAddr(msg, now, evs)
		if msg.del && len(evs) > n && msg.addr.Prefix.Addr().Is4() {
			// The kernel removes routes without RTM_DELROUTE when an
			// IPv4 address goes: all of a link's routes when it was the
			// last one (IPv4 is disabled on the link), and those that
			// used it as their preferred source. Re-list them after
			// any IPv4 removal.
			return evs, relistRoutes
		}
		return evs, 0
	case kindRoute:
		return m.applyRoute(msg, now, evs), 0
	case kindNeigh:
		return m.applyNeigh(msg, now, evs), 0
	case kindRule:
		return m.applyRule(msg, now, evs), 0
	case kindOtherRoute:
		o := msg.other
		o.At, o.Removed = now, msg.del
		return append(evs, o), 0
	case kindNexthop:
		return m.applyNexthop(msg, now, evs), 0
	}
	return evs, 0
}

func (m *model) applyLink(msg *message, now time.Time, evs []Event) ([]Event, effect) {
	idx := msg.link.Index
	old, watched := m.links[idx]
	if msg.del {
		delete(m.other, idx)
		if !watched {
			return evs, 0
		}
		// The kernel announces the removal of IPv6 addresses and routes,
		// but not always of IPv4 ones: forget everything on the link.
		evs = m.dropIndex(idx, now, evs)
		delete(m.links, idx)
		evs = append(evs, LinkEvent{At: now, Op: LinkRemoved, Link: old, Prev: old})
		if len(m.nexthops) > 0 {
			// The kernel deletes the nexthop objects of a link that
			// goes, and the routes using them, without a message
			// (nexthop_flush_dev in net/ipv4/nexthop.c).
			return evs, relistRoutes
		}
		return evs, 0
	}
	// Reuse the strings and slices already held when they did not change,
	// so that the common message (a flag flip) allocates nothing.
	l := msg.link
	mac := msg.mac
	if msg.partial && watched {
		// A wireless extensions event (see [message.partial]): only the
		// flags, the name and IFLA_WIRELESS are news.
		l.Oper, l.MTU, l.CarrierChanges, l.Master = old.Oper, old.MTU, old.CarrierChanges, old.Master
		if mac == nil {
			mac = old.MAC
		}
	}
	switch {
	case watched && (old.Name == string(msg.name) || msg.partial && len(msg.name) == 0):
		l.Name = old.Name
	case !watched && m.other[idx] == string(msg.name):
		l.Name = m.other[idx]
	default:
		l.Name = string(msg.name)
	}
	switch {
	case msg.loopback:
		l.Kind = "loopback"
	case len(msg.linkKind) > 0 && watched && old.Kind == string(msg.linkKind):
		l.Kind = old.Kind
	case len(msg.linkKind) > 0:
		l.Kind = string(msg.linkKind)
	case msg.wireless:
		l.Kind = "wireless"
	case watched:
		l.Kind = old.Kind // the kind of a link never changes
	case m.kindHint != nil:
		l.Kind = m.kindHint(l.Name)
	}
	if watched && bytes.Equal(old.MAC, mac) {
		l.MAC = old.MAC
	} else if len(mac) > 0 {
		l.MAC = net.HardwareAddr(bytes.Clone(mac))
	}
	in := m.include == nil || m.include(l.Name, msg.loopback)
	_, excluded := m.other[idx]
	switch {
	case watched && in:
		if old.equal(l) {
			return evs, 0
		}
		m.links[idx] = l
		if old.Name != l.Name {
			m.rename(idx, l.Name)
		}
		evs = append(evs, LinkEvent{At: now, Op: LinkChanged, Link: l, Prev: old})
		if old.AdminUp != l.AdminUp || old.Carrier != l.Carrier || old.Oper != l.Oper || old.Master != l.Master {
			// A VRF takes its ports' routes into its table when they
			// join (the kernel cycles the port down and up). Admin
			// down and carrier loss also delete the link's nexthop
			// objects and the routes using them, without a message
			// (nexthop_flush_dev, from nh_netdev_event).
			return evs, relistRoutes
		}
		return evs, 0
	case watched && !in, excluded && in:
		// Renamed across the filter: the re-read decides what appears or
		// goes, and emits it.
		return evs, resync
	case in:
		m.links[idx] = l
		return append(evs, LinkEvent{At: now, Op: LinkAdded, Link: l}), 0
	default:
		m.other[idx] = l.Name
		return evs, 0
	}
}

// rename updates the interface name that addresses, routes and
// neighbours of a renamed link carry.
func (m *model) rename(idx int, name string) {
	for k, a := range m.addrs {
		if k.index == idx {
			a.Iface = name
			m.addrs[k] = a
		}
	}
	for k, r := range m.routes {
		if k.index == idx {
			r.Iface = name
			m.routes[k] = r
		}
	}
	for k, n := range m.neighs {
		if k.index == idx {
			n.Iface = name
			m.neighs[k] = n
		}
	}
}

// dropIndex removes the addresses, routes and neighbours of a link that
// went away, with events for what was visible.
func (m *model) dropIndex(idx int, now time.Time, evs []Event) []Event {
	var addrs []Addr
	for k, a := range m.addrs {
		if k.index == idx {
			addrs = append(addrs, a)
			delete(m.addrs, k)
		}
	}
	slices.SortFunc(addrs, compareAddr)
	for _, a := range addrs {
		evs = append(evs, AddrEvent{At: now, Op: AddrRemoved, Addr: a, Prev: a})
	}
	var neighs []Neigh
	for k, n := range m.neighs {
		if k.index == idx {
			if m.isGateway(n.Index, n.IP) {
				neighs = append(neighs, n)
			}
			delete(m.neighs, k)
		}
	}
	slices.SortFunc(neighs, compareNeigh)
	for _, n := range neighs {
		evs = append(evs, NeighEvent{At: now, Neigh: n, Prev: n, Removed: true})
	}
	for id, nh := range m.nexthops {
		if nh.index == idx {
			delete(m.nexthops, id)
		}
	}
	var routes []Route
	for k, r := range m.routes {
		if k.index == idx {
			routes = append(routes, r)
			delete(m.routes, k)
		}
	}
	slices.SortFunc(routes, compareRoute)
	for _, r := range routes {
		evs = append(evs, RouteEvent{At: now, Op: RouteRemoved, Route: r, Prev: r})
	}
	return evs
}

func (m *model) applyAddr(msg *message, now time.Time, evs []Event) []Event {
	a := msg.addr
	l, ok := m.links[a.Index]
	if !ok {
		return evs // an excluded interface
	}
	a.Iface = l.Name
	a.Observed = now
	k := a.key()
	old, had := m.addrs[k]
	if msg.del {
		if !had {
			return evs
		}
		delete(m.addrs, k)
		return append(evs, AddrEvent{At: now, Op: AddrRemoved, Addr: a, Prev: old})
	}
	m.addrs[k] = a
	switch {
	case !had:
		return append(evs, AddrEvent{At: now, Op: AddrAdded, Addr: a})
	case old.Flags != a.Flags || old.Scope != a.Scope:
		return append(evs, AddrEvent{At: now, Op: AddrChanged, Addr: a, Prev: old})
	case lifetimeMoved(old.Valid, old.Observed, a.Valid, now) ||
		lifetimeMoved(old.Preferred, old.Observed, a.Preferred, now):
		return append(evs, AddrEvent{At: now, Op: AddrRefreshed, Addr: a, Prev: old})
	}
	// The same address with the lifetimes it already had (the kernel
	// counts in whole seconds): the state took the new reading, but
	// nothing a consumer acts on changed.
	return evs
}

// lifetimeMoved reports whether a lifetime read at now ends at another
// moment than the one read at then, by at least the kernel's one-second
// granularity.
func lifetimeMoved(before time.Duration, then time.Time, after time.Duration, now time.Time) bool {
	if (before == Forever) != (after == Forever) {
		return true
	}
	if before == Forever {
		return false
	}
	d := then.Add(before).Sub(now.Add(after))
	return d >= time.Second || d <= -time.Second
}

func (m *model) applyRoute(msg *message, now time.Time, evs []Event) []Event {
	if len(msg.routes) > 0 && msg.routes[0].NexthopID != 0 {
		return m.applyNexthopRoute(msg, now, evs)
	}
	if msg.replace && !msg.del && len(msg.routes) > 0 {
		return m.replaceRoute(msg, now, evs)
	}
	for _, r := range msg.routes {
		r, ok := m.watched(r, now)
		if !ok {
			continue // leaves through an excluded interface
		}
		k := r.key()
		old, had := m.routes[k]
		if msg.del {
			if had {
				delete(m.routes, k)
				evs = append(evs, RouteEvent{At: now, Op: RouteRemoved, Route: r, Prev: old})
			}
			continue
		}
		m.routes[k] = r
		switch {
		case !had:
			evs = append(evs, RouteEvent{At: now, Op: RouteAdded, Route: r})
		case !old.same(r):
			evs = append(evs, RouteEvent{At: now, Op: RouteChanged, Route: r, Prev: old})
		}
	}
	return evs
}

// watched returns r with its interface's name (and, when it expires, read
// at now), or false when r leaves through an interface that is not
// watched.
func (m *model) watched(r Route, now time.Time) (Route, bool) {
	l, ok := m.links[r.Index]
	if !ok && r.Index != 0 {
		return r, false
	}
	r.Iface = l.Name
	if r.Expires != 0 {
		r.Observed = now
	}
	return r, true
}

// expiryCheck returns when the routes should be re-read because one of
// them expires, or zero when none expires after now. The kernel extends a
// router's default route on every advertisement without a message
// (fib6_set_expires in ndisc_router_discovery, net/ipv6/ndisc.c): the
// check comes a second before the recorded end, to learn of an extension
// before the route counts as expired, or, when the end is less than 1.5 s
// away, 50 ms after it, when the kernel reports the route expired (a
// negative rta_expires: within a clock tick of the end it reports 0,
// which reads as never).
func (m *model) expiryCheck(now time.Time) time.Time {
	var next time.Time
	for _, r := range m.routes {
		if r.Expires <= 0 {
			continue
		}
		end := r.Observed.Add(r.Expires)
		t := end.Add(-time.Second)
		if t.Before(now.Add(time.Second / 2)) {
			// Too close to the end to learn more before it (a fresh
			// reading after the early check lands here too).
			t = end.Add(50 * time.Millisecond)
		}
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// replaceRoute folds an RTM_NEWROUTE with NLM_F_REPLACE. The kernel swaps
// the whole route with the same table, destination and metric, every next
// hop of it, for the message's, and sends no RTM_DELROUTE for what it
// replaced (fib_table_insert in net/ipv4/fib_trie.c; for IPv6
// fib6_add_rt2node in net/ipv6/ip6_fib.c removes the replaced route's
// siblings, and ip6_route_multipath_add sends one notification for all new
// hops).
func (m *model) replaceRoute(msg *message, now time.Time, evs []Event) []Event {
	h := msg.routes[0].head() // every hop has the same table, destination and metric
	delete(m.nhRoutes, h)
	return m.swap(func(r Route) bool { return r.head() == h }, m.watchedAll(msg.routes, now), now, evs)
}

// watchedAll returns the routes of rs that leave through watched
// interfaces, with their names.
func (m *model) watchedAll(rs []Route, now time.Time) []Route {
	var out []Route
	for _, r := range rs {
		if r, ok := m.watched(r, now); ok {
			out = append(out, r)
		}
	}
	return out
}

// swap replaces the routes that match with news (watched routes, with
// their names), and emits what changed: a hop that stays is silent or
// [RouteChanged]; new hops take the place of old ones as RouteChanged
// (Prev the hop replaced), then [RouteAdded]; old hops left over are
// [RouteRemoved], last, so that a consumer never sees the destination
// without a route in between.
func (m *model) swap(match func(Route) bool, news []Route, now time.Time, evs []Event) []Event {
	var old []Route
	for k, r := range m.routes {
		if match(r) {
			old = append(old, r)
			delete(m.routes, k)
		}
	}
	slices.SortFunc(old, compareRoute)
	var added []Route
	for _, r := range news {
		k := r.key()
		if _, dup := m.routes[k]; dup {
			continue // a second hop with the same interface and gateway
		}
		m.routes[k] = r
		i := slices.IndexFunc(old, func(o Route) bool { return o.key() == k })
		if i < 0 {
			added = append(added, r)
			continue
		}
		if !old[i].same(r) {
			evs = append(evs, RouteEvent{At: now, Op: RouteChanged, Route: r, Prev: old[i]})
		}
		old = slices.Delete(old, i, i+1)
	}
	for i, r := range added {
		if i < len(old) {
			evs = append(evs, RouteEvent{At: now, Op: RouteChanged, Route: r, Prev: old[i]})
		} else {
			evs = append(evs, RouteEvent{At: now, Op: RouteAdded, Route: r})
		}
	}
	for _, o := range old[min(len(added), len(old)):] {
		evs = append(evs, RouteEvent{At: now, Op: RouteRemoved, Route: o, Prev: o})
	}
	return evs
}

// applyNexthopRoute folds a route that uses a nexthop object (RTA_NH_ID).
// With net.ipv4.nexthop_compat_mode=0 the kernel sends only the id; with
// 1 it adds the resolved hops (RTA_OIF, RTA_GATEWAY or RTA_MULTIPATH),
// which stand in while the object itself is unknown.
func (m *model) applyNexthopRoute(msg *message, now time.Time, evs []Event) []Event {
	t := msg.routes[0]
	t.Index, t.Gateway = 0, netip.Addr{}
	h, id := t.head(), t.NexthopID
	if msg.del {
		if cur, ok := m.nhRoutes[h]; ok && cur.NexthopID == id {
			delete(m.nhRoutes, h)
		}
		return m.swap(func(r Route) bool { return r.head() == h && r.NexthopID == id }, nil, now, evs)
	}
	if msg.replace {
		delete(m.nhRoutes, h)
	}
	m.nhRoutes[h] = t
	hops := m.resolve(t)
	if _, known := m.nexthops[id]; !known {
		for _, r := range msg.routes {
			if r.Index != 0 {
				hops = append(hops, r)
			}
		}
	}
	match := func(r Route) bool { return r.head() == h && (msg.replace || r.NexthopID == id) }
	return m.swap(match, m.watchedAll(hops, now), now, evs)
}

// resolve returns the hops of a route that uses a nexthop object: one
// per member of a group, none for a blackhole or an unknown object.
func (m *model) resolve(t Route) []Route {
	nh, ok := m.nexthops[t.NexthopID]
	if !ok {
		return nil
	}
	var hops []Route
	add := func(nh nexthop) {
		if nh.blackhole || nh.group != nil || nh.index == 0 && !nh.gw.IsValid() {
			return
		}
		r := t
		r.Index, r.Gateway, r.LinkDown = nh.index, nh.gw, t.LinkDown || nh.linkDown
		hops = append(hops, r)
	}
	if nh.group == nil {
		add(nh)
		return hops
	}
	for _, id := range nh.group {
		if member, ok := m.nexthops[id]; ok {
			add(member)
		}
	}
	return hops
}

// applyNexthop folds a nexthop object and resolves again the routes that
// use it, directly or through a group. The kernel deletes the routes that
// use an object it deletes; with nexthop_compat_mode=0 without
// RTM_DELROUTE (remove_nexthop in net/ipv4/nexthop.c).
func (m *model) applyNexthop(msg *message, now time.Time, evs []Event) []Event {
	id := msg.nh.id
	if msg.del {
		delete(m.nexthops, id)
	} else {
		m.nexthops[id] = msg.nh
	}
	var users []Route
	for _, t := range m.nhRoutes {
		if t.NexthopID == id || slices.Contains(m.nexthops[t.NexthopID].group, id) {
			users = append(users, t)
		}
	}
	slices.SortFunc(users, compareRoute)
	for _, t := range users {
		if msg.del && t.NexthopID == id {
			delete(m.nhRoutes, t.head())
		}
		match := func(r Route) bool { return r.head() == t.head() && r.NexthopID == t.NexthopID }
		evs = m.swap(match, m.watchedAll(m.resolve(t), now), now, evs)
	}
	return evs
}

func (m *model) applyNeigh(msg *message, now time.Time, evs []Event) []Event {
	n := msg.neigh
	l, ok := m.links[n.Index]
	if !ok {
		return evs
	}
	n.Iface = l.Name
	k := n.key()
	old, had := m.neighs[k]
	if msg.del {
		if !had {
			return evs
		}
		delete(m.neighs, k)
		if m.isGateway(n.Index, n.IP) {
			evs = append(evs, NeighEvent{At: now, Neigh: old, Prev: old, Removed: true})
		}
		return evs
	}
	if had && bytes.Equal(old.MAC, msg.mac) {
		n.MAC = old.MAC
	} else if len(msg.mac) > 0 {
		n.MAC = net.HardwareAddr(bytes.Clone(msg.mac))
	}
	m.neighs[k] = n
	if had && old.State == n.State && bytes.Equal(old.MAC, n.MAC) {
		return evs
	}
	if m.isGateway(n.Index, n.IP) {
		evs = append(evs, NeighEvent{At: now, Neigh: n, Prev: old})
	}
	return evs
}

// isGateway reports whether a default route leaves through index via ip.
func (m *model) isGateway(index int, ip netip.Addr) bool {
	for k := range m.routes {
		if k.index == index && k.gw == ip {
			return true
		}
	}
	return false
}

// state returns a deep copy of the model as a State.
func (m *model) state(read time.Time) State {
	s := State{
		Links:  cloneLinks(m.links),
		Addrs:  make([]Addr, 0, len(m.addrs)),
		Routes: make([]Route, 0, len(m.routes)),
		Rules:  m.ruleList(),
		Read:   read,
	}
	for _, a := range m.addrs {
		s.Addrs = append(s.Addrs, a)
	}
	for _, r := range m.routes {
		s.Routes = append(s.Routes, r)
	}
	for _, n := range m.neighs {
		if m.isGateway(n.Index, n.IP) {
			n.MAC = bytes.Clone(n.MAC)
			s.Neighs = append(s.Neighs, n)
		}
	}
	slices.SortFunc(s.Addrs, compareAddr)
	slices.SortFunc(s.Routes, compareRoute)
	slices.SortFunc(s.Neighs, compareNeigh)
	return s
}

func compareAddr(a, b Addr) int {
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	if c := a.Prefix.Addr().Compare(b.Prefix.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Prefix.Bits(), b.Prefix.Bits())
}

func compareRoute(a, b Route) int {
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	if c := a.Dst.Addr().Compare(b.Dst.Addr()); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Metric, b.Metric); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	return a.Gateway.Compare(b.Gateway)
}

func compareNeigh(a, b Neigh) int {
	if c := cmp.Compare(a.Index, b.Index); c != 0 {
		return c
	}
	return a.IP.Compare(b.IP)
}

// diff returns the events that turn the visible part of m into that of n:
// links added and changed first, then address, route and neighbour
// changes, then links removed, so that a consumer never sees an address on
// a link it does not know.
func (m *model) diff(n *model, now time.Time, evs []Event) []Event {
	for _, idx := range sortedKeys(n.links) {
		l := n.links[idx]
		switch old, ok := m.links[idx]; {
		case !ok:
			evs = append(evs, LinkEvent{At: now, Op: LinkAdded, Link: l})
		case !old.equal(l):
			evs = append(evs, LinkEvent{At: now, Op: LinkChanged, Link: l, Prev: old})
		}
	}
	evs = m.diffAddrs(n, now, evs)
	evs = m.diffRoutes(n, now, evs)
	evs = m.diffNeighs(n, now, evs)
	evs = m.diffRules(n, now, evs)
	for _, idx := range sortedKeys(m.links) {
		if _, ok := n.links[idx]; !ok {
			l := m.links[idx]
			evs = append(evs, LinkEvent{At: now, Op: LinkRemoved, Link: l, Prev: l})
		}
	}
	return evs
}

func (m *model) diffAddrs(n *model, now time.Time, evs []Event) []Event {
	var gone, come []Addr
	for k, a := range m.addrs {
		if _, ok := n.addrs[k]; !ok {
			gone = append(gone, a)
		}
	}
	for _, a := range n.addrs {
		come = append(come, a)
	}
	slices.SortFunc(gone, compareAddr)
	slices.SortFunc(come, compareAddr)
	for _, a := range gone {
		evs = append(evs, AddrEvent{At: now, Op: AddrRemoved, Addr: a, Prev: a})
	}
	for _, a := range come {
		old, ok := m.addrs[a.key()]
		switch {
		case !ok:
			evs = append(evs, AddrEvent{At: now, Op: AddrAdded, Addr: a})
		case old.Flags != a.Flags || old.Scope != a.Scope || old.Iface != a.Iface:
			evs = append(evs, AddrEvent{At: now, Op: AddrChanged, Addr: a, Prev: old})
		case lifetimeMoved(old.Valid, old.Observed, a.Valid, a.Observed) ||
			lifetimeMoved(old.Preferred, old.Observed, a.Preferred, a.Observed):
			evs = append(evs, AddrEvent{At: now, Op: AddrRefreshed, Addr: a, Prev: old})
		}
	}
	return evs
}

func (m *model) diffRoutes(n *model, now time.Time, evs []Event) []Event {
	var gone, come []Route
	for k, r := range m.routes {
		if _, ok := n.routes[k]; !ok {
			gone = append(gone, r)
		}
	}
	for _, r := range n.routes {
		come = append(come, r)
	}
	slices.SortFunc(gone, compareRoute)
	slices.SortFunc(come, compareRoute)
	for _, r := range gone {
		evs = append(evs, RouteEvent{At: now, Op: RouteRemoved, Route: r, Prev: r})
	}
	for _, r := range come {
		switch old, ok := m.routes[r.key()]; {
		case !ok:
			evs = append(evs, RouteEvent{At: now, Op: RouteAdded, Route: r})
		case !old.same(r):
			evs = append(evs, RouteEvent{At: now, Op: RouteChanged, Route: r, Prev: old})
		}
	}
	return evs
}

// diffNeighs compares the gateways' neighbour entries, the only ones a
// consumer sees.
func (m *model) diffNeighs(n *model, now time.Time, evs []Event) []Event {
	before, after := m.state(time.Time{}).Neighs, n.state(time.Time{}).Neighs
	for _, o := range before {
		if _, ok := n.neighs[o.key()]; !ok || !n.isGateway(o.Index, o.IP) {
			evs = append(evs, NeighEvent{At: now, Neigh: o, Prev: o, Removed: true})
		}
	}
	for _, x := range after {
		o, ok := m.neighs[x.key()]
		if !ok || !m.isGateway(x.Index, x.IP) {
			evs = append(evs, NeighEvent{At: now, Neigh: x})
		} else if o.State != x.State || !bytes.Equal(o.MAC, x.MAC) {
			evs = append(evs, NeighEvent{At: now, Neigh: x, Prev: o})
		}
	}
	return evs
}

func sortedKeys[V any](m map[int]V) []int {
	ks := make([]int, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
