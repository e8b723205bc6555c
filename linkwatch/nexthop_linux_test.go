package linkwatch

import (
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// TestModelNexthop: routes that name a nexthop object (RTA_NH_ID, and
// nothing else with nexthop_compat_mode=0) leave through the object's
// interface, and follow it when it changes.
func TestModelNexthop(t *testing.T) {
	later := t0.Add(10 * time.Second)
	gwA, gwB, gwC := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.1.0.1")
	nh10 := nexthop{id: 10, index: 3, gw: gwA}
	nh11 := nexthop{id: 11, index: 4, gw: gwC}
	grp := nexthop{id: 20, group: []uint32{10, 11}}
	byID := func(id uint32) Route { // the route as the kernel sends it
		return Route{Dst: netip.MustParsePrefix("0.0.0.0/0"), Table: 254, Protocol: 3, NexthopID: id}
	}
	hop := func(id uint32, index int, gw netip.Addr) Route {
		r := byID(id)
		r.Index, r.Gateway, r.Iface = index, gw, map[int]string{3: "wlan0", 4: "eth0"}[index]
		return r
	}
	links := [][]byte{linkMsg(wlan, false), linkMsg(eth, false)}
	tests := []struct {
		name  string
		setup [][]byte // after the links, at t0
		msgs  [][]byte // at later
		want  []Event
		after []Route
	}{{
		name:  "route through a nexthop object",
		setup: [][]byte{nexthopMsg(nh10, false)},
		msgs:  [][]byte{routeMsg(byID(10), false, unix.NLM_F_CREATE)},
		want:  []Event{RouteEvent{At: later, Op: RouteAdded, Route: hop(10, 3, gwA)}},
		after: []Route{hop(10, 3, gwA)},
	}, {
		name:  "the object changes its gateway",
		setup: [][]byte{nexthopMsg(nh10, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{nexthopMsg(with(nh10, func(n *nexthop) { n.gw = gwB }), false)},
		want:  []Event{RouteEvent{At: later, Op: RouteChanged, Route: hop(10, 3, gwB), Prev: hop(10, 3, gwA)}},
		after: []Route{hop(10, 3, gwB)},
	}, {
		name:  "the object moves to another interface",
		setup: [][]byte{nexthopMsg(nh10, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{nexthopMsg(with(nh10, func(n *nexthop) { n.index = 4; n.gw = gwC }), false)},
		want:  []Event{RouteEvent{At: later, Op: RouteChanged, Route: hop(10, 4, gwC), Prev: hop(10, 3, gwA)}},
		after: []Route{hop(10, 4, gwC)},
	}, {
		name:  "a group is one route per member",
		setup: [][]byte{nexthopMsg(nh10, false), nexthopMsg(nh11, false), nexthopMsg(grp, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{routeMsg(byID(20), false, unix.NLM_F_REPLACE)},
		want: []Event{
			RouteEvent{At: later, Op: RouteChanged, Route: hop(20, 3, gwA), Prev: hop(10, 3, gwA)},
			RouteEvent{At: later, Op: RouteAdded, Route: hop(20, 4, gwC)},
		},
		after: []Route{hop(20, 3, gwA), hop(20, 4, gwC)},
	}, {
		name: "a member deleted: the group shrinks",
		setup: [][]byte{nexthopMsg(nh10, false), nexthopMsg(nh11, false), nexthopMsg(grp, false),
			routeMsg(byID(20), false, 0)},
		msgs: [][]byte{nexthopMsg(nh11, true), nexthopMsg(with(grp, func(n *nexthop) { n.group = []uint32{10} }), false)},
		want: []Event{
			RouteEvent{At: later, Op: RouteRemoved, Route: hop(20, 4, gwC), Prev: hop(20, 4, gwC)},
		},
		after: []Route{hop(20, 3, gwA)},
	}, {
		name:  "the object deleted takes its routes (no RTM_DELROUTE)",
		setup: [][]byte{nexthopMsg(nh10, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{nexthopMsg(nh10, true), nexthopMsg(nh10, false)},
		want:  []Event{RouteEvent{At: later, Op: RouteRemoved, Route: hop(10, 3, gwA), Prev: hop(10, 3, gwA)}},
	}, {
		name:  "route deleted",
		setup: [][]byte{nexthopMsg(nh10, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{routeMsg(byID(10), true, 0)},
		want:  []Event{RouteEvent{At: later, Op: RouteRemoved, Route: hop(10, 3, gwA), Prev: hop(10, 3, gwA)}},
	}, {
		name:  "a blackhole carries nothing",
		setup: [][]byte{nexthopMsg(nexthop{id: 10, blackhole: true}, false)},
		msgs:  [][]byte{routeMsg(byID(10), false, 0)},
	}, {
		name:  "the object unknown: the compat hops stand in",
		msgs:  [][]byte{routeMsg(hop(10, 3, gwA), false, 0)},
		want:  []Event{RouteEvent{At: later, Op: RouteAdded, Route: hop(10, 3, gwA)}},
		after: []Route{hop(10, 3, gwA)},
	}, {
		name:  "the object unknown and no compat hops: resolved when it comes",
		msgs:  [][]byte{routeMsg(byID(10), false, 0), nexthopMsg(nh10, false)},
		want:  []Event{RouteEvent{At: later, Op: RouteAdded, Route: hop(10, 3, gwA)}},
		after: []Route{hop(10, 3, gwA)},
	}, {
		name:  "a classic route replaces one through an object",
		setup: [][]byte{nexthopMsg(nh10, false), routeMsg(byID(10), false, 0)},
		msgs:  [][]byte{routeMsg(with(hop(0, 4, gwC), func(r *Route) { r.Protocol = 3 }), false, unix.NLM_F_REPLACE), nexthopMsg(with(nh10, func(n *nexthop) { n.gw = gwB }), false)},
		want:  []Event{RouteEvent{At: later, Op: RouteChanged, Route: hop(0, 4, gwC), Prev: hop(10, 3, gwA)}},
		after: []Route{hop(0, 4, gwC)},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(defaultFilter, nil)
			fold(t, m, t0, append(links, tt.setup...)...)
			got, _ := fold(t, m, later, tt.msgs...)
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			sortRoutes(tt.after)
			if diff := cmp.Diff(tt.after, m.state(later).Routes, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
		})
	}
}

// TestParseNexthop checks the nexthop object's layout and its errors.
func TestParseNexthop(t *testing.T) {
	var msg message
	for _, nh := range []nexthop{
		{id: 10, index: 3, gw: netip.MustParseAddr("10.0.0.1"), linkDown: true},
		{id: 11, index: 3, gw: netip.MustParseAddr("fe80::1")},
		{id: 12, index: 3},
		{id: 13, blackhole: true},
		{id: 20, group: []uint32{10, 11}},
	} {
		raw := nexthopMsg(nh, false)
		if err := splitMessages(raw, func(h header, d []byte) error { return parseMessage(h, d, &msg) }); err != nil {
			t.Fatalf("%+v: %v", nh, err)
		}
		if diff := cmp.Diff(nh, msg.nh, cmp.AllowUnexported(nexthop{}), equateIP()); diff != "" || msg.kind != kindNexthop {
			t.Errorf("%+v (-want +got):\n%s", nh, diff)
		}
	}
	bad := nexthopMsg(nexthop{id: 20, group: []uint32{10}}, false)
	// nlmsghdr, nhmsg, NHA_ID, NHA_GROUP_TYPE (padded to 8), NHA_GROUP
	ne.PutUint16(bad[16+8+8+8:], 4+6) // a 6-byte NHA_GROUP
	err := splitMessages(bad, func(h header, d []byte) error { return parseMessage(h, d, &msg) })
	if err == nil || err.Error() != "linkwatch: NHA_GROUP (8 bytes per struct nexthop_grp): length 6, want 8" {
		t.Errorf("a 6-byte NHA_GROUP: %v", err)
	}
	noID := nlmsg(unix.RTM_NEWNEXTHOP, 0, make([]byte, sizeofNhmsg))
	if err := splitMessages(noID, func(h header, d []byte) error { return parseMessage(h, d, &msg) }); err == nil {
		t.Error("a nexthop without NHA_ID parsed without error")
	}
}

// TestIntegrationNexthop runs routes through nexthop objects with
// net.ipv4.nexthop_compat_mode=0 (a per-namespace sysctl), where route
// messages carry only RTA_NH_ID, and checks that they leave through the
// objects' interfaces, follow changes of the objects, and go when the
// kernel flushes the objects on carrier loss without a message.
func TestIntegrationNexthop(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	netnstest.Veth(t, a, "vc", b, "vd")
	a.Sysctl("net/ipv4/nexthop_compat_mode", "0")
	a.IP("addr", "add", "10.84.0.1/24", "dev", "va")
	a.IP("addr", "add", "10.85.0.1/24", "dev", "vc")
	a.IP("nexthop", "add", "id", "10", "via", "10.84.0.2", "dev", "va")
	a.IP("route", "add", "default", "nhid", "10")
	r := watch(t, a, Config{})
	ev, _ := r.waitFor("baseline", isBaseline)
	va, _ := ev.(Baseline).State.LinkByName("va")
	gw := netip.MustParseAddr
	if rs := ev.(Baseline).State.Routes; len(rs) != 1 || rs[0].Index != va.Index || rs[0].Gateway != gw("10.84.0.2") || rs[0].NexthopID != 10 {
		t.Fatalf("baseline routes %+v, want one via 10.84.0.2 on va with NexthopID 10", rs)
	}
	if !r.w.State().Usable(va.Index) {
		t.Fatalf("va not usable with a default route through nexthop 10: %+v", r.w.State())
	}
	r.consistent()

	t.Log("step: the object changes its gateway")
	a.IP("nexthop", "replace", "id", "10", "via", "10.84.0.3", "dev", "va")
	r.waitFor("RouteChanged to 10.84.0.3", routeEv(RouteChanged, func(rt, p Route) bool {
		return rt.Gateway == gw("10.84.0.3") && p.Gateway == gw("10.84.0.2")
	}))
	r.consistent()

	t.Log("step: a group over both links")
	a.IP("nexthop", "add", "id", "11", "via", "10.85.0.2", "dev", "vc")
	a.IP("nexthop", "add", "id", "20", "group", "10/11")
	a.IP("route", "replace", "default", "nhid", "20")
	r.waitFor("RouteAdded via vc", routeEv(RouteAdded, func(rt, _ Route) bool { return rt.Gateway == gw("10.85.0.2") && rt.NexthopID == 20 }))
	r.consistent()

	t.Log("step: a member deleted")
	a.IP("nexthop", "del", "id", "11")
	r.waitFor("RouteRemoved via vc", routeEv(RouteRemoved, func(rt, _ Route) bool { return rt.Gateway == gw("10.85.0.2") }))
	r.consistent()

	t.Log("step: carrier loss flushes nexthop 10 and the route, without a message")
	b.IP("link", "set", "vb", "down")
	r.waitFor("RouteRemoved via va", routeEv(RouteRemoved, func(rt, _ Route) bool { return rt.Gateway == gw("10.84.0.3") }))
	r.consistent()
	if len(r.w.State().Routes) != 0 {
		t.Fatalf("routes left: %+v", r.w.State().Routes)
	}
}

// TestIntegrationNoNexthopSupport: a kernel without nexthop objects
// answers RTM_GETNEXTHOP with EOPNOTSUPP. linkwatch says so once and
// watches everything else.
func TestIntegrationNoNexthopSupport(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	a.IP("addr", "add", "10.86.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.86.0.2")
	core, logs := observer.New(zap.WarnLevel)
	var refused atomic.Int32
	r := watchWith(t, a, Config{Logger: zap.New(core)}, func(w *Watcher) {
		w.failDump = func(typ uint16) error {
			if typ != unix.RTM_GETNEXTHOP {
				return nil
			}
			refused.Add(1)
			return fmt.Errorf("linkwatch: netlink dump: %w", os.NewSyscallError("netlink", unix.EOPNOTSUPP))
		}
	})
	r.waitFor("baseline", isBaseline)
	r.consistent()
	// Two carrier changes: two route re-reads, each asking for nexthops.
	for _, state := range []string{"down", "up"} {
		b.IP("link", "set", "vb", state)
		r.waitFor("v4 default linkdown "+state, routeEv(RouteChanged, func(rt, _ Route) bool { return rt.LinkDown == (state == "down") }))
	}
	r.consistent()
	if n := refused.Load(); n < 3 {
		t.Fatalf("RTM_GETNEXTHOP asked %d times, want the snapshot's and two re-reads'", n)
	}
	if n := logs.FilterMessageSnippet("RTM_GETNEXTHOP").Len(); n != 1 {
		t.Errorf("%d warnings about RTM_GETNEXTHOP, want 1:\n%v", n, logs.All())
	}
}
