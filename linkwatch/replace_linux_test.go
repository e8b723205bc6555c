package linkwatch

import (
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// eth is a second link for routes with hops on two interfaces.
var eth = Link{Index: 4, Name: "eth0", Kind: "veth", AdminUp: true, Carrier: true, Oper: OperUp, MTU: 1500, MAC: mac}

// TestModelReplaceMultipath: NLM_F_REPLACE swaps every hop of the route
// with the same table, destination and metric, and the events let a
// consumer that applies them (Changed: drop Prev, add Route) reach the
// same set of routes.
func TestModelReplaceMultipath(t *testing.T) {
	later := t0.Add(10 * time.Second)
	hop := func(index int, gw string) Route {
		r := with(route, func(r *Route) { r.Index = index; r.Gateway = netip.MustParseAddr(gw); r.Protocol = 3 })
		r.Iface = map[int]string{3: "wlan0", 4: "eth0"}[index]
		return r
	}
	a, b := hop(3, "10.0.0.1"), hop(4, "10.1.0.1")
	c, d := hop(3, "10.0.0.3"), hop(4, "10.1.0.3")
	other := with(hop(3, "10.0.0.9"), func(r *Route) { r.Metric = 100 }) // another metric: untouched
	tests := []struct {
		name  string
		old   []Route
		new   []Route
		want  []Event
		after []Route
	}{{
		name: "multipath replaced by multipath",
		old:  []Route{a, b},
		new:  []Route{c, d},
		want: []Event{
			RouteEvent{At: later, Op: RouteChanged, Route: c, Prev: a},
			RouteEvent{At: later, Op: RouteChanged, Route: d, Prev: b},
		},
		after: []Route{c, d},
	}, {
		name: "multipath replaced by one hop",
		old:  []Route{a, b},
		new:  []Route{c},
		want: []Event{
			RouteEvent{At: later, Op: RouteChanged, Route: c, Prev: a},
			RouteEvent{At: later, Op: RouteRemoved, Route: b, Prev: b},
		},
		after: []Route{c},
	}, {
		name: "one hop kept, one swapped",
		old:  []Route{a, b},
		new:  []Route{a, d},
		want: []Event{
			RouteEvent{At: later, Op: RouteChanged, Route: d, Prev: b},
		},
		after: []Route{a, d},
	}, {
		name: "one hop replaced by multipath",
		old:  []Route{a},
		new:  []Route{c, d},
		want: []Event{
			RouteEvent{At: later, Op: RouteChanged, Route: c, Prev: a},
			RouteEvent{At: later, Op: RouteAdded, Route: d},
		},
		after: []Route{c, d},
	}, {
		name:  "nothing to replace: added",
		new:   []Route{c, d},
		want:  []Event{RouteEvent{At: later, Op: RouteAdded, Route: c}, RouteEvent{At: later, Op: RouteAdded, Route: d}},
		after: []Route{c, d},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(defaultFilter, nil)
			setup := [][]byte{linkMsg(wlan, false), linkMsg(eth, false), routeMsg(other, false, 0)}
			if len(tt.old) > 0 {
				setup = append(setup, multipathMsg(tt.old, false, unix.NLM_F_CREATE))
			}
			fold(t, m, t0, setup...)
			got, _ := fold(t, m, later, multipathMsg(tt.new, false, unix.NLM_F_REPLACE))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			want := append([]Route{other}, tt.after...)
			sortRoutes(want)
			if diff := cmp.Diff(want, m.state(t0).Routes, equateIP()); diff != "" {
				t.Errorf("routes (-want +got):\n%s", diff)
			}
			// A consumer that folds the events reaches the same routes.
			view := map[routeKey]Route{other.key(): other}
			for _, r := range tt.old {
				view[r.key()] = r
			}
			for _, ev := range got {
				e := ev.(RouteEvent)
				delete(view, e.Prev.key())
				if e.Op != RouteRemoved {
					view[e.Route.key()] = e.Route
				}
			}
			var folded []Route
			for _, r := range view {
				folded = append(folded, r)
			}
			sortRoutes(folded)
			if diff := cmp.Diff(want, folded, equateIP()); diff != "" {
				t.Errorf("consumer's view (-want +got):\n%s", diff)
			}
		})
	}
}

func sortRoutes(rs []Route) { slices.SortFunc(rs, compareRoute) }

// TestIntegrationReplaceMultipath replaces a multipath default route over
// two veths with `ip route replace`, for IPv4 and IPv6, and checks that
// the replaced hops leave the state (the kernel sends no RTM_DELROUTE for
// them).
func TestIntegrationReplaceMultipath(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	netnstest.Veth(t, a, "vc", b, "vd")
	a.IP("addr", "add", "10.81.0.1/24", "dev", "va")
	a.IP("addr", "add", "10.82.0.1/24", "dev", "vc")
	a.IP("addr", "add", "fd81::1/64", "dev", "va", "nodad")
	a.IP("addr", "add", "fd82::1/64", "dev", "vc", "nodad")
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	gw := netip.MustParseAddr
	via := func(g string) func(rt, _ Route) bool { return func(rt, _ Route) bool { return rt.Gateway == gw(g) } }
	for _, fam := range []struct{ flag, a1, c1, a2, c2, a3 string }{
		{"-4", "10.81.0.2", "10.82.0.2", "10.81.0.3", "10.82.0.3", "10.81.0.4"},
		{"-6", "fd81::2", "fd82::2", "fd81::3", "fd82::3", "fd81::4"},
	} {
		t.Log("step: multipath default", fam.flag)
		a.IP(fam.flag, "route", "add", "default", "nexthop", "via", fam.a1, "dev", "va", "nexthop", "via", fam.c1, "dev", "vc")
		r.waitFor("RouteAdded via "+fam.c1, routeEv(RouteAdded, via(fam.c1)))
		r.consistent()

		t.Log("step: replaced by another multipath route")
		a.IP(fam.flag, "route", "replace", "default", "nexthop", "via", fam.a2, "dev", "va", "nexthop", "via", fam.c2, "dev", "vc")
		r.waitFor("RouteChanged to "+fam.c2, routeEv(RouteChanged, via(fam.c2)))
		r.consistent()
		for _, rt := range r.w.State().Routes {
			if rt.Gateway == gw(fam.a1) || rt.Gateway == gw(fam.c1) {
				t.Fatalf("replaced hop %+v still in State", rt)
			}
		}

		t.Log("step: replaced by one hop")
		a.IP(fam.flag, "route", "replace", "default", "via", fam.a3, "dev", "va")
		r.waitFor("RouteRemoved via "+fam.c2, routeEv(RouteRemoved, via(fam.c2)))
		r.consistent()
		a.IP(fam.flag, "route", "del", "default")
		r.waitFor("RouteRemoved via "+fam.a3, routeEv(RouteRemoved, via(fam.a3)))
	}
}
