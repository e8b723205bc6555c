package linkwatch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// ra is an IPv6 default route learnt from a router advertisement, with
// the router lifetime left.
var ra = Route{Index: 3, Iface: "wlan0", Dst: netip.MustParsePrefix("::/0"), Gateway: netip.MustParseAddr("fe80::1"),
	Metric: 1024, Table: 254, Protocol: 9, Expires: 1800 * time.Second}

// TestRouteExpiresLeft checks the lifetime arithmetic.
func TestRouteExpiresLeft(t *testing.T) {
	r := with(ra, func(r *Route) { r.Expires = 100 * time.Second; r.Observed = t0 })
	for _, tt := range []struct {
		r       Route
		at      time.Duration
		left    time.Duration
		expired bool
	}{
		{r, 30 * time.Second, 70 * time.Second, false},
		{r, 100 * time.Second, 0, true},
		{r, 200 * time.Second, 0, true},
		{route, time.Hour, Forever, false},
		{with(r, func(r *Route) { r.Expires = -10 * time.Millisecond }), 0, 0, true},
	} {
		if got := tt.r.ExpiresLeft(t0.Add(tt.at)); got != tt.left {
			t.Errorf("%v after %v: ExpiresLeft = %v, want %v", tt.r.Expires, tt.at, got, tt.left)
		}
		if got := tt.r.Expired(t0.Add(tt.at)); got != tt.expired {
			t.Errorf("%v after %v: Expired = %v, want %v", tt.r.Expires, tt.at, got, tt.expired)
		}
	}
}

// TestModelRouteExpires: the lifetime comes from RTA_CACHEINFO; a reading
// that only counted down is silent, an extension or the expiry is a
// RouteChanged.
func TestModelRouteExpires(t *testing.T) {
	later := t0.Add(10 * time.Second)
	at := func(r Route, obs time.Time) Route { r.Observed = obs; return r }
	tests := []struct {
		name string
		msg  Route // read at later
		want []Event
	}{{
		name: "counted down: no event",
		msg:  with(ra, func(r *Route) { r.Expires -= 10 * time.Second }),
	}, {
		name: "extended by an advertisement",
		msg:  ra,
		want: []Event{RouteEvent{At: later, Op: RouteChanged, Route: at(ra, later), Prev: at(ra, t0)}},
	}, {
		name: "expired",
		msg:  with(ra, func(r *Route) { r.Expires = -10 * time.Millisecond }),
		want: []Event{RouteEvent{At: later, Op: RouteChanged,
			Route: at(with(ra, func(r *Route) { r.Expires = -10 * time.Millisecond }), later), Prev: at(ra, t0)}},
	}, {
		name: "no longer expires",
		msg:  with(ra, func(r *Route) { r.Expires = 0 }),
		want: []Event{RouteEvent{At: later, Op: RouteChanged, Route: with(ra, func(r *Route) { r.Expires = 0 }), Prev: at(ra, t0)}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(defaultFilter, nil)
			evs, _ := fold(t, m, t0, linkMsg(wlan, false), routeMsg(ra, false, 0))
			if want := (RouteEvent{At: t0, Op: RouteAdded, Route: at(ra, t0)}); !cmp.Equal(evs[1], Event(want), equateIP()) {
				t.Fatalf("added %+v, want %+v", evs[1], want)
			}
			got, _ := fold(t, m, later, routeMsg(tt.msg, false, 0))
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty(), equateIP()); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if r := m.state(later).Routes[0]; r.Expires != tt.msg.Expires {
				t.Errorf("state keeps Expires %v, want the new reading %v", r.Expires, tt.msg.Expires)
			}
		})
	}
	// The kernel puts struct rta_cacheinfo whole.
	raw := routeMsg(ra, false, 0)
	raw = raw[:len(raw)-4] // cut rta_cacheinfo short (the last attribute)
	ne.PutUint32(raw, uint32(len(raw)))
	ne.PutUint16(raw[len(raw)-32:], 32)
	var msg message
	err := splitMessages(raw, func(h header, d []byte) error { return parseMessage(h, d, &msg) })
	if err == nil || err.Error() != "linkwatch: RTA_CACHEINFO: length 28, want 32" {
		t.Errorf("short RTA_CACHEINFO: %v", err)
	}
}

// TestModelExpiryCheck: the routes are re-read a second before a route
// expires, and just after it.
func TestModelExpiryCheck(t *testing.T) {
	m := newModel(defaultFilter, nil)
	fold(t, m, t0, linkMsg(wlan, false), routeMsg(route, false, 0),
		routeMsg(with(ra, func(r *Route) { r.Expires = 100 * time.Second }), false, 0))
	for _, tt := range []struct{ now, want time.Duration }{
		{0, 99 * time.Second},
		{99*time.Second + 200*time.Millisecond, 100*time.Second + 50*time.Millisecond},
		{101 * time.Second, -1},
	} {
		want := time.Time{}
		if tt.want >= 0 {
			want = t0.Add(tt.want)
		}
		if got := m.expiryCheck(t0.Add(tt.now)); !got.Equal(want) {
			t.Errorf("at +%v: expiryCheck = %v, want %v", tt.now, got, want)
		}
	}
}

// TestStateExpiredRouteDoesNotCount: a default route past its lifetime
// carries nothing (the kernel skips it), so the link is not usable.
func TestStateExpiredRouteDoesNotCount(t *testing.T) {
	v6 := Addr{Index: 3, Prefix: netip.MustParsePrefix("fd00::5/64"), Valid: Forever, Preferred: Forever}
	s := State{Links: map[int]Link{3: wlan}, Addrs: []Addr{v6}}
	s.Routes = []Route{with(ra, func(r *Route) { r.Expires = time.Minute; r.Observed = time.Now() })}
	if !s.Usable(3) {
		t.Error("not usable with a live default route")
	}
	s.Routes = []Route{with(ra, func(r *Route) { r.Expires = time.Minute; r.Observed = time.Now().Add(-2 * time.Minute) })}
	if s.Usable(3) {
		t.Error("usable with an expired default route")
	}
}

// TestIntegrationRouteExpires adds an IPv6 default route with a lifetime
// (`expires`, as a router advertisement's) and checks the lifetime read,
// that State agrees with iproute2, and that the route stops counting when
// it expires although the kernel still lists it.
func TestIntegrationRouteExpires(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	a.IP("addr", "add", "fd83::1/64", "dev", "va", "nodad")
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	a.IP("-6", "route", "add", "default", "via", "fe80::1", "dev", "va", "expires", "5")
	ev, _ := r.waitFor("RouteAdded via fe80::1", routeEv(RouteAdded, func(rt, _ Route) bool {
		return rt.Gateway == netip.MustParseAddr("fe80::1")
	}))
	rt := ev.(RouteEvent).Route
	if rt.Expires <= 0 || rt.Expires > 5*time.Second {
		t.Fatalf("Expires = %v, want within (0, 5s]", rt.Expires)
	}
	va, _ := r.w.State().LinkByName("va")
	if !r.w.State().Usable(va.Index) {
		t.Fatalf("va not usable with a live default route: %+v", r.w.State())
	}
	r.consistent()
	// No message marks the end of the lifetime: the watcher re-reads the
	// routes when it comes, and the kernel lists the route as expired.
	ev, _ = r.waitFor("RouteChanged: expired", routeEv(RouteChanged, func(rt, _ Route) bool { return rt.Expires < 0 }))
	if e := ev.(RouteEvent); !e.Route.Expired(time.Now()) || e.Prev.Expires <= 0 {
		t.Fatalf("expiry event %+v", e)
	}
	if r.w.State().Usable(va.Index) {
		t.Fatalf("va usable with only an expired default route: %+v", r.w.State())
	}
	r.consistent()
}
