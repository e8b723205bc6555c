package linkwatch

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

var (
	t0    = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	mac   = net.HardwareAddr{2, 0, 0, 0, 0, 1}
	wlan  = Link{Index: 3, Name: "wlan0", Kind: "wireless", AdminUp: true, Carrier: true, Oper: OperUp, MTU: 1500, MAC: mac}
	lo    = Link{Index: 1, Name: "lo", Kind: "loopback", AdminUp: true, Carrier: true, Oper: OperUnknown, MTU: 65536}
	v4    = Addr{Index: 3, Iface: "wlan0", Prefix: netip.MustParsePrefix("10.0.0.5/24"), Valid: 3600 * time.Second, Preferred: 3600 * time.Second}
	gw4   = netip.MustParseAddr("10.0.0.1")
	route = Route{Index: 3, Iface: "wlan0", Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: gw4, Metric: 600, Table: 254, Protocol: 16}
)

// equateIP lets cmp compare netip values, whose fields are unexported.
func equateIP() cmp.Option { return cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{}) }

func with[T any](v T, f func(*T)) T { f(&v); return v }

// fold parses raw messages and applies them to m at the given times,
// returning every event.
func fold(t *testing.T, m *model, at time.Time, raws ...[]byte) ([]Event, effect) {
	t.Helper()
	var (
		evs []Event
		all effect
		msg message
	)
	for _, raw := range raws {
		err := splitMessages(raw, func(h header, data []byte) error {
			if err := parseMessage(h, data, &msg); err != nil {
				return err
			}
			var eff effect
			evs, eff = m.apply(&msg, at, evs)
			all |= eff
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return evs, all
}

func defaultFilter(_ string, loopback bool) bool { return !loopback }

// TestModelApply states how each kernel message changes the state and
// which events it causes.
func TestModelApply(t *testing.T) {
	later := t0.Add(10 * time.Second)
	tests := []struct {
		name    string
		setup   [][]byte // folded at t0, events ignored
		msgs    [][]byte // folded at later
		want    []Event
		effect  effect
		wantLen int // links in the state afterwards
	}{{
		name:    "new link",
		msgs:    [][]byte{linkMsg(wlan, false)},
		want:    []Event{LinkEvent{At: later, Op: LinkAdded, Link: wlan}},
		wantLen: 1,
	}, {
		name:    "loopback is filtered",
		msgs:    [][]byte{linkMsg(lo, false)},
		wantLen: 0,
	}, {
		name:    "same link again changes nothing",
		setup:   [][]byte{linkMsg(wlan, false)},
		msgs:    [][]byte{linkMsg(wlan, false)},
		wantLen: 1,
	}, {
		name:  "carrier loss asks for a route re-read",
		setup: [][]byte{linkMsg(wlan, false)},
		msgs:  [][]byte{linkMsg(with(wlan, func(l *Link) { l.Carrier = false; l.Oper = OperDown }), false)},
		want: []Event{LinkEvent{At: later, Op: LinkChanged,
			Link: with(wlan, func(l *Link) { l.Carrier = false; l.Oper = OperDown }), Prev: wlan}},
		effect:  relistRoutes,
		wantLen: 1,
	}, {
		name:  "MTU change does not re-read routes",
		setup: [][]byte{linkMsg(wlan, false)},
		msgs:  [][]byte{linkMsg(with(wlan, func(l *Link) { l.MTU = 1400 }), false)},
		want: []Event{LinkEvent{At: later, Op: LinkChanged,
			Link: with(wlan, func(l *Link) { l.MTU = 1400 }), Prev: wlan}},
		wantLen: 1,
	}, {
		name:  "enslaved to a bridge: master change, routes re-read",
		setup: [][]byte{linkMsg(wlan, false)},
		msgs:  [][]byte{linkMsg(with(wlan, func(l *Link) { l.Master = 9 }), false)},
		want: []Event{LinkEvent{At: later, Op: LinkChanged,
			Link: with(wlan, func(l *Link) { l.Master = 9 }), Prev: wlan}},
		effect:  relistRoutes,
		wantLen: 1,
	}, {
		name:  "released: a full message without IFLA_MASTER",
		setup: [][]byte{linkMsg(with(wlan, func(l *Link) { l.Master = 9 }), false)},
		msgs:  [][]byte{linkMsg(wlan, false)},
		want: []Event{LinkEvent{At: later, Op: LinkChanged,
			Link: wlan, Prev: with(wlan, func(l *Link) { l.Master = 9 })}},
		effect:  relistRoutes,
		wantLen: 1,
	}, {
		name:  "link removed takes its addresses and routes",
		setup: [][]byte{linkMsg(wlan, false), addrMsg(v4, false), routeMsg(route, false, 0)},
		msgs:  [][]byte{linkMsg(wlan, true)},
		want: []Event{
			AddrEvent{At: later, Op: AddrRemoved, Addr: with(v4, func(a *Addr) { a.Observed = t0 }), Prev: with(v4, func(a *Addr) { a.Observed = t0 })},
			RouteEvent{At: later, Op: RouteRemoved, Route: route, Prev: route},
			LinkEvent{At: later, Op: LinkRemoved, Link: wlan, Prev: wlan},
		},
	}, {
		name:    "address added",
		setup:   [][]byte{linkMsg(wlan, false)},
		msgs:    [][]byte{addrMsg(v4, false)},
		want:    []Event{AddrEvent{At: later, Op: AddrAdded, Addr: with(v4, func(a *Addr) { a.Observed = later })}},
		wantLen: 1,
	}, {
		name:    "address of an unknown link is ignored",
		msgs:    [][]byte{addrMsg(v4, false)},
		wantLen: 0,
	}, {
		name:  "lifetimes reset: refreshed",
		setup: [][]byte{linkMsg(wlan, false), addrMsg(v4, false)},
		msgs:  [][]byte{addrMsg(v4, false)}, // same lifetimes 10 s later: the lease was renewed
		want: []Event{AddrEvent{At: later, Op: AddrRefreshed,
			Addr: with(v4, func(a *Addr) { a.Observed = later }), Prev: with(v4, func(a *Addr) { a.Observed = t0 })}},
		wantLen: 1,
	}, {
		name:    "lifetimes counted down: no event",
		setup:   [][]byte{linkMsg(wlan, false), addrMsg(v4, false)},
		msgs:    [][]byte{addrMsg(with(v4, func(a *Addr) { a.Valid -= 10 * time.Second; a.Preferred -= 10 * time.Second }), false)},
		wantLen: 1,
	}, {
		name:  "DAD finished: changed",
		setup: [][]byte{linkMsg(wlan, false), addrMsg(with(v4, func(a *Addr) { a.Flags = unix.IFA_F_TENTATIVE }), false)},
		msgs:  [][]byte{addrMsg(with(v4, func(a *Addr) { a.Valid -= 10 * time.Second; a.Preferred -= 10 * time.Second }), false)},
		want: []Event{AddrEvent{At: later, Op: AddrChanged,
			Addr: with(v4, func(a *Addr) { a.Observed = later; a.Valid -= 10 * time.Second; a.Preferred -= 10 * time.Second }),
			Prev: with(v4, func(a *Addr) { a.Observed = t0; a.Flags = unix.IFA_F_TENTATIVE })}},
		wantLen: 1,
	}, {
		name:    "default route added",
		setup:   [][]byte{linkMsg(wlan, false)},
		msgs:    [][]byte{routeMsg(route, false, 0)},
		want:    []Event{RouteEvent{At: later, Op: RouteAdded, Route: route}},
		wantLen: 1,
	}, {
		// A prefix route is not kept, but reported: it can move a path.
		name:    "prefix route is reported without state",
		setup:   [][]byte{linkMsg(wlan, false)},
		msgs:    [][]byte{routeMsg(with(route, func(r *Route) { r.Dst = netip.MustParsePrefix("10.0.0.0/24") }), false, 0)},
		want:    []Event{OtherRouteEvent{At: later, Dst: netip.MustParsePrefix("10.0.0.0/24"), Table: unix.RT_TABLE_MAIN, Type: unix.RTN_UNICAST}},
		wantLen: 1,
	}, {
		name:  "replace swaps the gateway without a delete",
		setup: [][]byte{linkMsg(wlan, false), routeMsg(route, false, 0)},
		msgs: [][]byte{routeMsg(with(route, func(r *Route) { r.Gateway = netip.MustParseAddr("10.0.0.2") }), false,
			unix.NLM_F_REPLACE)},
		want: []Event{RouteEvent{At: later, Op: RouteChanged,
			Route: with(route, func(r *Route) { r.Gateway = netip.MustParseAddr("10.0.0.2") }), Prev: route}},
		wantLen: 1,
	}, {
		name:    "route deleted",
		setup:   [][]byte{linkMsg(wlan, false), routeMsg(route, false, 0)},
		msgs:    [][]byte{routeMsg(route, true, 0)},
		want:    []Event{RouteEvent{At: later, Op: RouteRemoved, Route: route, Prev: route}},
		wantLen: 1,
	}, {
		name:  "gateway neighbour fails",
		setup: [][]byte{linkMsg(wlan, false), routeMsg(route, false, 0), neighMsg(Neigh{Index: 3, IP: gw4, MAC: mac, State: nudReachable}, false)},
		msgs:  [][]byte{neighMsg(Neigh{Index: 3, IP: gw4, State: nudFailed}, false)},
		want: []Event{NeighEvent{At: later,
			Neigh: Neigh{Index: 3, Iface: "wlan0", IP: gw4, State: nudFailed},
			Prev:  Neigh{Index: 3, Iface: "wlan0", IP: gw4, MAC: mac, State: nudReachable}}},
		wantLen: 1,
	}, {
		name:    "other neighbours are silent",
		setup:   [][]byte{linkMsg(wlan, false), routeMsg(route, false, 0)},
		msgs:    [][]byte{neighMsg(Neigh{Index: 3, IP: netip.MustParseAddr("10.0.0.77"), MAC: mac, State: nudReachable}, false)},
		wantLen: 1,
	}, {
		name:    "renamed out of the filter asks for a re-read",
		setup:   [][]byte{linkMsg(wlan, false)},
		msgs:    [][]byte{linkMsg(with(wlan, func(l *Link) { l.Name = "eth0" }), false)},
		effect:  resync,
		wantLen: 1,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(func(name string, loopback bool) bool { return !loopback && name != "eth0" }, nil)
			fold(t, m, t0, tt.setup...)
			got, eff := fold(t, m, later, tt.msgs...)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if eff != tt.effect {
				t.Errorf("effect = %b, want %b", eff, tt.effect)
			}
			if len(m.links) != tt.wantLen {
				t.Errorf("%d links in the state, want %d", len(m.links), tt.wantLen)
			}
		})
	}
}

// TestModelDiff checks that a re-read emits exactly the differences.
func TestModelDiff(t *testing.T) {
	old := newModel(defaultFilter, nil)
	fold(t, old, t0, linkMsg(wlan, false), addrMsg(v4, false), routeMsg(route, false, 0))
	next := newModel(defaultFilter, nil)
	down := with(wlan, func(l *Link) { l.Carrier = false })
	v6 := Addr{Index: 3, Iface: "wlan0", Prefix: netip.MustParsePrefix("fd00::5/64"), Valid: Forever, Preferred: Forever, Flags: unix.IFA_F_PERMANENT}
	fold(t, next, t0, linkMsg(down, false), addrMsg(v6, false))
	got := old.diff(next, t0, nil)
	want := []Event{
		LinkEvent{At: t0, Op: LinkChanged, Link: down, Prev: wlan},
		AddrEvent{At: t0, Op: AddrRemoved, Addr: with(v4, func(a *Addr) { a.Observed = t0 }), Prev: with(v4, func(a *Addr) { a.Observed = t0 })},
		AddrEvent{At: t0, Op: AddrAdded, Addr: with(v6, func(a *Addr) { a.Observed = t0 })},
		RouteEvent{At: t0, Op: RouteRemoved, Route: route, Prev: route},
	}
	if diff := cmp.Diff(want, got, equateIP()); diff != "" {
		t.Errorf("diff events (-want +got):\n%s", diff)
	}
	if evs := next.diff(next, t0, nil); len(evs) != 0 {
		t.Errorf("a state compared with itself gave %v", evs)
	}
}

// TestStateUsable states when traffic can leave through an interface.
func TestStateUsable(t *testing.T) {
	base := State{
		Links:  map[int]Link{3: wlan},
		Addrs:  []Addr{v4},
		Routes: []Route{route},
	}
	tests := []struct {
		name string
		edit func(s *State)
		want bool
	}{
		{"carrier, address, default route", func(*State) {}, true},
		{"no carrier", func(s *State) { s.Links[3] = with(wlan, func(l *Link) { l.Carrier = false }) }, false},
		{"admin down", func(s *State) { s.Links[3] = with(wlan, func(l *Link) { l.AdminUp = false }) }, false},
		{"dormant (WPA handshake)", func(s *State) { s.Links[3] = with(wlan, func(l *Link) { l.Oper = OperDormant }) }, false},
		{"tentative address", func(s *State) { s.Addrs[0].Flags = unix.IFA_F_TENTATIVE }, false},
		{"optimistic address", func(s *State) { s.Addrs[0].Flags = unix.IFA_F_TENTATIVE | unix.IFA_F_OPTIMISTIC }, true},
		{"link-local address only", func(s *State) { s.Addrs[0].Scope = 253 }, false},
		{"deprecated address still works", func(s *State) { s.Addrs[0].Flags = unix.IFA_F_DEPRECATED }, true},
		{"no default route", func(s *State) { s.Routes = nil }, false},
		{"stale linkdown flag on a link with carrier", func(s *State) { s.Routes[0].LinkDown = true }, true},
		{"linkdown route, no carrier", func(s *State) {
			s.Routes[0].LinkDown = true
			s.Links[3] = with(wlan, func(l *Link) { l.Carrier = false; l.Oper = OperDown })
		}, false},
		{"route through another interface", func(s *State) { s.Routes[0].Index = 4 }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := base.Clone()
			tt.edit(&s)
			if got := s.Usable(3); got != tt.want {
				t.Errorf("Usable = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestStateClone checks that a clone shares nothing mutable.
func TestStateClone(t *testing.T) {
	s := State{Links: map[int]Link{3: wlan}, Addrs: []Addr{v4}, Neighs: []Neigh{{IP: gw4, MAC: mac}}}
	c := s.Clone()
	c.Links[3].MAC[0] = 0xff
	c.Addrs[0].Index = 9
	c.Neighs[0].MAC[0] = 0xff
	if s.Links[3].MAC[0] == 0xff || s.Addrs[0].Index == 9 || s.Neighs[0].MAC[0] == 0xff {
		t.Fatal("Clone shares memory with the original")
	}
}

// TestAddrLifetimes checks the time-left arithmetic.
func TestAddrLifetimes(t *testing.T) {
	a := Addr{Valid: 100 * time.Second, Preferred: Forever, Observed: t0}
	if got := a.ValidLeft(t0.Add(30 * time.Second)); got != 70*time.Second {
		t.Errorf("ValidLeft after 30 s = %v, want 70s", got)
	}
	if got := a.ValidLeft(t0.Add(200 * time.Second)); got != 0 {
		t.Errorf("ValidLeft after expiry = %v, want 0", got)
	}
	if got := a.PreferredLeft(t0.Add(time.Hour)); got != Forever {
		t.Errorf("PreferredLeft of a permanent lifetime = %v, want Forever", got)
	}
}

// TestLinkEventChanges names what a LinkChanged event changed.
func TestLinkEventChanges(t *testing.T) {
	base := Link{Index: 3, Name: "wlan0", AdminUp: true, Carrier: true, Oper: OperUp, MTU: 1500, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}}
	tests := []struct {
		name string
		ev   LinkEvent
		want string
		path bool
	}{
		{"carrier loss", LinkEvent{Op: LinkChanged, Prev: base, Link: with(base, func(l *Link) { l.Carrier = false; l.Oper = OperDown; l.CarrierChanges++ })}, "carrier|oper|carrier_changes", true},
		{"admin down", LinkEvent{Op: LinkChanged, Prev: base, Link: with(base, func(l *Link) { l.AdminUp = false })}, "admin", true},
		{"rename", LinkEvent{Op: LinkChanged, Prev: base, Link: with(base, func(l *Link) { l.Name = "wl0" })}, "name", false},
		{"mtu and mac", LinkEvent{Op: LinkChanged, Prev: base, Link: with(base, func(l *Link) { l.MTU = 1400; l.MAC = net.HardwareAddr{2, 0, 0, 0, 0, 2} })}, "mtu|mac", false},
		{"enslaved", LinkEvent{Op: LinkChanged, Prev: base, Link: with(base, func(l *Link) { l.Master = 7 })}, "master", true},
		{"released", LinkEvent{Op: LinkChanged, Prev: with(base, func(l *Link) { l.Master = 7 }), Link: base}, "master", true},
		{"nothing", LinkEvent{Op: LinkChanged, Prev: base, Link: base}, "none", false},
		{"added", LinkEvent{Op: LinkAdded, Link: base}, "none", true},
		{"removed", LinkEvent{Op: LinkRemoved, Link: base, Prev: base}, "none", true},
	}
	for _, tt := range tests {
		if got := tt.ev.Changes().String(); got != tt.want {
			t.Errorf("%s: Changes() = %s, want %s", tt.name, got, tt.want)
		}
		if got := tt.ev.PathChanged(); got != tt.path {
			t.Errorf("%s: PathChanged() = %v, want %v", tt.name, got, tt.path)
		}
	}
}
