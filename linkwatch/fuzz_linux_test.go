package linkwatch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// FuzzParseMessage feeds arbitrary datagrams to the parser and the model.
// Invariants: no panic; a message either parses or is an error; whatever
// parses folds into a model whose State is internally consistent (every
// address, route and neighbour belongs to a known link).
func FuzzParseMessage(f *testing.F) {
	for _, seed := range [][]byte{
		linkMsg(wlan, false), linkMsg(wlan, true), linkMsg(lo, false),
		linkMsg(with(wlan, func(l *Link) { l.Kind = "veth" }), false),
		addrMsg(v4, false), addrMsg(v4, true),
		addrMsg(Addr{Index: 3, Prefix: netip.MustParsePrefix("fd00::1/64"), Valid: Forever, Preferred: Forever}, false),
		routeMsg(route, false, 0), routeMsg(route, true, 0), routeMsg(ra, false, 0),
		multipathMsg([]Route{route, with(route, func(r *Route) { r.Gateway = netip.MustParseAddr("10.0.0.2") })}, false, unix.NLM_F_REPLACE),
		neighMsg(Neigh{Index: 3, IP: gw4, MAC: mac, State: nudReachable}, false),
		forgedLink(7, "x"),
		wextLinkMsg(3, "wlan0", 0x11043, [6]byte{2, 0, 0, 0, 0, 2}),
		nexthopMsg(nexthop{id: 10, index: 3, gw: gw4}, false), nexthopMsg(nexthop{id: 10}, true),
		nexthopMsg(nexthop{id: 20, group: []uint32{10, 11}}, false), nexthopMsg(nexthop{id: 12, blackhole: true}, false),
		routeMsg(with(route, func(r *Route) { r.Index, r.Gateway, r.NexthopID = 0, netip.Addr{}, 10 }), false, 0),
		routeMsg(with(route, func(r *Route) { r.NexthopID = 20 }), false, unix.NLM_F_REPLACE),
		ruleMsg(wgRule, false), ruleMsg(wgRule, true),
		routeMsg(with(route, func(r *Route) { r.Dst = netip.MustParsePrefix("10.0.0.0/24") }), false, 0),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := newModel(defaultFilter, nil)
		// A link first, so that addresses and routes have somewhere to go.
		fold(t, m, t0, linkMsg(wlan, false), nexthopMsg(nexthop{id: 10, index: 3, gw: gw4}, false))
		var msg message
		_ = splitMessages(b, func(h header, data []byte) error {
			if err := parseMessage(h, data, &msg); err != nil {
				return nil
			}
			m.apply(&msg, t0.Add(time.Second), nil)
			return nil
		})
		s := m.state(t0)
		for _, a := range s.Addrs {
			if _, ok := s.Links[a.Index]; !ok {
				t.Fatalf("address %+v on unknown link", a)
			}
		}
		for _, r := range s.Routes {
			if _, ok := s.Links[r.Index]; !ok && r.Index != 0 {
				t.Fatalf("route %+v through unknown link", r)
			}
			if !r.Default() {
				t.Fatalf("non-default route %+v kept", r)
			}
		}
	})
}

// TestParseRoundTrip checks that encoded fixtures parse back to the values
// they encode.
func TestParseRoundTrip(t *testing.T) {
	m := newModel(defaultFilter, nil)
	fold(t, m, t0, linkMsg(wlan, false), addrMsg(v4, false), routeMsg(route, false, 0))
	got := m.state(t0)
	want := State{
		Links:  map[int]Link{3: wlan},
		Addrs:  []Addr{with(v4, func(a *Addr) { a.Observed = t0 })},
		Routes: []Route{route},
		Read:   t0,
	}
	if diff := cmp.Diff(want, got, equateIP()); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}
}

// TestParseMalformed checks that messages shorter than their fixed header,
// or with an attribute longer than the message, are errors.
func TestParseMalformed(t *testing.T) {
	for _, raw := range [][]byte{linkMsg(wlan, false), addrMsg(v4, false), routeMsg(route, false, 0), neighMsg(Neigh{Index: 3, IP: gw4}, false)} {
		h := header{typ: ne.Uint16(raw[4:])}
		var msg message
		if err := parseMessage(h, raw[16:19], &msg); err == nil {
			t.Errorf("type %d: a 3-byte body parsed without error", h.typ)
		}
	}
	var msg message
	bad := addrMsg(v4, false)
	ne.PutUint16(bad[16+8:], 200) // the first attribute claims 200 bytes
	if err := splitMessages(bad, func(h header, d []byte) error { return parseMessage(h, d, &msg) }); err == nil {
		t.Error("attribute longer than the message parsed without error")
	}
}
