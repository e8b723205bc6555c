package netmon

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest"
)

// These tests build the networks robots really have (a VPN overlay, dual
// stack, a LAN without a default route, policy routing) in namespaces and
// check that the verdict follows the path the kernel itself uses.

// targetSnap returns the snapshot entry of one target.
func targetSnap(t *testing.T, m *Monitor, name string) TargetSnapshot {
	t.Helper()
	for _, ts := range m.Snapshot().Targets {
		if ts.Target == name {
			return ts
		}
	}
	t.Fatalf("no target %q in the snapshot: %+v", name, m.Snapshot().Targets)
	return TargetSnapshot{}
}

// waitSnap waits until the snapshot satisfies ok, reading the events
// meanwhile, and returns it.
func (r *rig) waitSnap(t *testing.T, want string, ok func(Snapshot) bool) Snapshot {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for s := r.m.Snapshot(); ; s = r.m.Snapshot() {
		if ok(s) {
			return s
		}
		select {
		case ev := <-r.events:
			t.Logf("event %s %s %s", ev.Kind, ev.Iface, ev.Msg)
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("snapshot not as wanted (%s) after 10s: %+v", want, s)
		}
	}
}

// waitTarget waits until the snapshot entry of target satisfies ok.
func (r *rig) waitTarget(t *testing.T, target, want string, ok func(TargetSnapshot) bool) {
	t.Helper()
	r.waitSnap(t, target+": "+want, func(s Snapshot) bool {
		for _, ts := range s.Targets {
			if ts.Target == target {
				return ok(ts)
			}
		}
		return false
	})
}

// waitGate waits until g's state satisfies ok, reading the events
// meanwhile.
func (r *rig) waitGate(t *testing.T, g *gate.Sender, ok func(gate.State) bool) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for s := g.State(); !ok(s); s = g.State() {
		select {
		case ev := <-r.events:
			t.Logf("event %s %s %s", ev.Kind, ev.Iface, ev.Msg)
		case <-s.Changed():
		case <-deadline.C:
			t.Fatalf("gate state %+v not reached within 10s", s)
		}
	}
}

// waitLookups waits until the Monitor has looked the paths up again since
// it had done so n times: it has seen a kernel change that may move
// nothing visible. It reads the events meanwhile, as a subscriber must.
func (r *rig) waitLookups(t *testing.T, n uint64) {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for r.m.Stats().PathLookups <= n {
		select {
		case ev := <-r.events:
			t.Logf("event %s %s %s", ev.Kind, ev.Iface, ev.Msg)
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("paths not looked up again within 10s (%d lookups)", n)
		}
	}
}

// TestIntegrationPathWireGuardUnderlay: with wg-quick's full tunnel the
// kernel sends everything into wg0, which keeps its carrier whatever the
// network under it does. The verdict must follow the underlay: va losing
// its carrier is an outage at once, named after va.
func TestIntegrationPathWireGuardUnderlay(t *testing.T) {
	t.Parallel()
	r := newRigSetup(t, Options{}, nil, func(a, _ *netnstest.NS) { a.WGQuick("wg0") })
	ev := r.waitState(t, Up, ReasonNone)
	if ev.Iface != "va" {
		t.Fatalf("up on %q, want the underlay va", ev.Iface)
	}
	if ts := targetSnap(t, r.m, "internet-ipv4"); !ts.Reachable || ts.Iface != "va" || ts.Via != "wg0" || ts.Table != 51820 {
		t.Fatalf("internet-ipv4 = %+v, want reachable via wg0 (table 51820) over va", ts)
	}

	// Tailscale's table 52 with only the tailnet's route moves nothing.
	n := r.m.Stats().PathLookups
	r.a.IP("-4", "route", "add", "100.64.0.0/10", "dev", "wg0", "table", "52")
	r.a.IP("-4", "rule", "add", "lookup", "52", "priority", "5270")
	r.waitLookups(t, n)
	if s := r.m.Status(); s.State != Up || s.Iface != "va" {
		t.Fatalf("status after tailscale's table 52 = %+v, want up on va", s)
	}

	r.b.IP("link", "set", "vb", "down")
	ev = r.waitState(t, Down, ReasonCarrierLost)
	if ev.Iface != "va" {
		t.Fatalf("outage on %q, want the underlay va", ev.Iface)
	}
	if gs := r.m.Gate().State(); gs.Open || gs.Reason.Iface != "va" {
		t.Fatalf("gate = %+v, want closed for va", gs)
	}
	r.b.IP("link", "set", "vb", "up")
	r.waitState(t, Up, ReasonNone)
	fl := r.m.Flaps()
	if len(fl) != 1 || fl[0].Cause != ReasonCarrierLost || fl[0].Iface != "va" {
		t.Fatalf("journal = %+v, want one carrier-lost outage of va", fl)
	}

	// The tunnel daemon dies: its device goes, and table 51820's route
	// with it. wg-quick's rules stay, but the kernel falls through them to
	// the main table: the path is va's own, with no tunnel.
	r.a.IP("link", "del", "wg0")
	r.waitTarget(t, "internet-ipv4", "va from main, no tunnel", func(ts TargetSnapshot) bool {
		return ts.Reachable && ts.Iface == "va" && ts.Via == "" && ts.Table == 254
	})
}

// TestIntegrationPathDualStack: losing one family's default route while
// the other stays is degraded, named after the family; a network that
// never had IPv6 is plainly up.
func TestIntegrationPathDualStack(t *testing.T) {
	t.Parallel()
	r := newRigSetup(t, Options{}, nil, func(a, b *netnstest.NS) {
		a.IP("addr", "add", "2001:db8:210::1/64", "dev", "va", "nodad")
		b.IP("addr", "add", "2001:db8:210::2/64", "dev", "vb", "nodad")
		a.IP("-6", "route", "add", "default", "via", "2001:db8:210::2", "dev", "va")
	})
	r.waitState(t, Up, ReasonNone)
	for _, name := range []string{"internet-ipv4", "internet-ipv6"} {
		if ts := targetSnap(t, r.m, name); !ts.Reachable || ts.Iface != "va" {
			t.Fatalf("%s = %+v, want reachable on va", name, ts)
		}
	}
	r.a.IP("-4", "route", "del", "default")
	ev := r.waitState(t, Degraded, ReasonIPv4Lost)
	if ev.Iface != "va" || !r.m.Gate().State().Open {
		t.Fatalf("ipv4-lost on %q, gate %+v: want va, gate open", ev.Iface, r.m.Gate().State())
	}
	r.a.IP("-4", "route", "add", "default", "via", "10.210.0.2", "dev", "va")
	r.waitState(t, Up, ReasonNone)
	r.a.IP("-6", "route", "del", "default")
	r.waitState(t, Degraded, ReasonIPv6Lost)
	r.a.IP("-4", "route", "del", "default")
	r.waitState(t, Down, ReasonNoDefaultRoute)
}

func TestIntegrationPathIPv4OnlyIsUp(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	r.waitState(t, Up, ReasonNone)
	if ts := targetSnap(t, r.m, "internet-ipv6"); ts.Reachable || ts.Reason != ReasonNoDefaultRoute {
		t.Fatalf("internet-ipv6 = %+v, want unreachable with no-default-route", ts)
	}
	if s := r.m.Status(); s.State != Up || s.Reason != ReasonNone {
		t.Fatalf("status = %+v, want plain up on an IPv4-only network", s)
	}
}

// TestIntegrationPathLANOnlyTarget: a robot on an access point without a
// default route declares its on-site server; the Gate opens, and closes
// when the address goes, naming the target.
func TestIntegrationPathLANOnlyTarget(t *testing.T) {
	t.Parallel()
	r := newRigSetup(t, Options{Targets: []string{"10.210.0.2:8883"}}, nil, func(a, _ *netnstest.NS) {
		a.IP("route", "del", "default")
	})
	r.waitState(t, Up, ReasonNone)
	g := r.m.GateFor("10.210.0.2:8883")
	if g == nil || !g.State().Open || !r.m.Gate().State().Open {
		t.Fatalf("target gate %v, Gate %+v: want both open", g, r.m.Gate().State())
	}
	if ts := targetSnap(t, r.m, "10.210.0.2:8883"); ts.Iface != "va" || ts.Gateway != "" || ts.Src != "10.210.0.1" {
		t.Fatalf("target = %+v, want on-link on va from 10.210.0.1", ts)
	}
	// The address goes, and the on-link route with it: the kernel has no
	// path, and the interface says why.
	r.a.IP("addr", "del", "10.210.0.1/24", "dev", "va")
	ev := r.waitState(t, Down, ReasonNoAddress)
	if ev.Status.Target != "10.210.0.2:8883" || ev.Iface != "va" {
		t.Fatalf("down for target %q on %q, want 10.210.0.2:8883 on va", ev.Status.Target, ev.Iface)
	}
	// The kernel removes the subnet's route just after the address: the
	// target's own verdict ends as no-route.
	r.waitGate(t, g, func(gs gate.State) bool { return !gs.Open && gs.Reason.Code == string(ReasonNoRoute) })
}

// secondUplink adds vc in a, joined to vd in a namespace of its own, with
// 10.211.0.1/24 on vc and the peer at 10.211.0.2.
func secondUplink(t *testing.T, a *netnstest.NS) *netnstest.NS {
	c := netnstest.New(t)
	netnstest.Veth(t, a, "vc", c, "vd")
	a.IP("addr", "add", "10.211.0.1/24", "dev", "vc")
	c.IP("addr", "add", "10.211.0.2/24", "dev", "vd")
	return c
}

// TestIntegrationPathPolicyRule: a rule sends one target through a second
// uplink (table 100); its path, its Gate and the other target's follow the
// rule, and deleting the rule moves it back.
func TestIntegrationPathPolicyRule(t *testing.T) {
	t.Parallel()
	var c *netnstest.NS
	const cloud, lan = "198.51.100.7", "10.210.0.2"
	r := newRigSetup(t, Options{Targets: []string{cloud, lan}, Stabilize: 200 * time.Millisecond}, nil, func(a, _ *netnstest.NS) {
		c = secondUplink(t, a)
		a.IP("route", "add", "default", "via", "10.211.0.2", "table", "100")
	})
	r.waitState(t, Up, ReasonNone)
	if ts := targetSnap(t, r.m, cloud); ts.Iface != "va" || ts.Table != 254 {
		t.Fatalf("cloud = %+v, want va from main", ts)
	}
	r.a.IP("rule", "add", "to", cloud, "lookup", "100", "priority", "1000")
	r.waitTarget(t, cloud, "vc via 10.211.0.2 from table 100", func(ts TargetSnapshot) bool {
		return ts.Iface == "vc" && ts.Table == 100 && ts.Gateway == "10.211.0.2"
	})
	// The rule's uplink fails: only the cloud target is lost.
	c.IP("link", "set", "vd", "down")
	ev := r.waitState(t, Degraded, ReasonTargetUnreachable)
	if ev.Status.Target != cloud {
		t.Fatalf("degraded for %q, want %s", ev.Status.Target, cloud)
	}
	if r.m.GateFor(cloud).State().Open || !r.m.GateFor(lan).State().Open || !r.m.Gate().State().Open {
		t.Fatalf("gates: cloud %+v, lan %+v, overall %+v: want cloud closed, the others open",
			r.m.GateFor(cloud).State(), r.m.GateFor(lan).State(), r.m.Gate().State())
	}
	r.a.IP("rule", "del", "to", cloud, "lookup", "100", "priority", "1000")
	up := r.waitState(t, Up, ReasonNone)
	if ts := targetSnap(t, r.m, cloud); ts.Iface != "va" {
		t.Fatalf("cloud after the rule went = %+v, want va", ts)
	}
	// The cloud's Gate reopens once its return has lasted Stabilize,
	// as the Monitor's own Gate does after an outage.
	g := r.m.GateFor(cloud)
	r.waitGate(t, g, func(gs gate.State) bool { return gs.Open })
	if d := g.State().Since.Sub(up.At); d < 200*time.Millisecond {
		t.Fatalf("cloud's gate reopened %v after its path returned, want >= the 200ms stabilisation window", d)
	}
}

// TestIntegrationPathIgnoreLinkdown: two uplinks, the better one loses its
// carrier. With ignore_routes_with_linkdown=0 (the default) the kernel
// keeps sending into the dead link, so the state is down; with 1 it fails
// over, so the state is up on the other. Each time the verdict's
// interface is the one `ip route get` names.
func TestIntegrationPathIgnoreLinkdown(t *testing.T) {
	t.Parallel()
	r := newRigSetup(t, Options{}, nil, func(a, _ *netnstest.NS) {
		secondUplink(t, a)
		a.IP("route", "add", "default", "via", "10.211.0.2", "dev", "vc", "metric", "200")
	})
	r.waitState(t, Up, ReasonNone)
	kernelDev := func() string {
		f := strings.Fields(r.a.IP("-4", "route", "get", "8.8.8.8"))
		for i := range f[:len(f)-1] {
			if f[i] == "dev" {
				return f[i+1]
			}
		}
		t.Fatalf("ip route get: no dev in %q", f)
		return ""
	}
	r.b.IP("link", "set", "vb", "down")
	ev := r.waitState(t, Down, ReasonCarrierLost)
	if dev := kernelDev(); ev.Iface != "va" || dev != "va" {
		t.Fatalf("sysctl 0: verdict on %q, kernel routes via %q; want both va", ev.Iface, dev)
	}
	r.b.IP("link", "set", "vb", "up")
	r.waitState(t, Up, ReasonNone)

	r.a.Sysctl("net/ipv4/conf/all/ignore_routes_with_linkdown", "1")
	r.b.IP("link", "set", "vb", "down")
	var up Event
	for up.Iface != "vc" {
		up = r.waitState(t, Up, ReasonNone)
	}
	if dev := kernelDev(); dev != "vc" {
		t.Fatalf("sysctl 1: verdict on vc, kernel routes via %q", dev)
	}
	if !r.m.Gate().State().Open {
		t.Fatal("gate closed although the kernel fails over to vc")
	}
}

// TestIntegrationPathHostTarget: a target named by host name that does not
// resolve at start is unreachable (unresolved), said once, retried, and
// judged once it resolves; it is resolved again when its path returns.
func TestIntegrationPathHostTarget(t *testing.T) {
	t.Parallel()
	const name = "server.robot.test:8883"
	var calls atomic.Int32
	r := newRigSetup(t, Options{Targets: []string{name}}, nil, nil, func(m *Monitor) {
		m.resolve = func(_ context.Context, host string) ([]netip.Addr, error) {
			if host != "server.robot.test" {
				return nil, fmt.Errorf("resolved %q, want the host without the port", host)
			}
			if calls.Add(1) == 1 {
				return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
			}
			return []netip.Addr{netip.MustParseAddr("10.210.0.2")}, nil
		}
	})
	ev := r.waitState(t, Down, ReasonUnresolved)
	if ev.Status.Target != name {
		t.Fatalf("unresolved target %q, want %s", ev.Status.Target, name)
	}
	r.waitState(t, Up, ReasonNone)
	if ts := targetSnap(t, r.m, name); ts.Addr != "10.210.0.2" || ts.Iface != "va" {
		t.Fatalf("target = %+v, want 10.210.0.2 on va", ts)
	}
	r.b.IP("link", "set", "vb", "down")
	r.waitState(t, Down, ReasonCarrierLost)
	r.b.IP("link", "set", "vb", "up")
	r.waitState(t, Up, ReasonNone)
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("resolved %d times, want a third after the path returned", calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIntegrationPathBridgePort: the radio is a port of a bridge that
// carries the address and the route. The port's Wi-Fi facts attach to the
// bridge: the snapshot shows them on br0, and the radio's disconnect is
// br0's outage.
func TestIntegrationPathBridgePort(t *testing.T) {
	t.Parallel()
	fake := wifiwatchtest.New()
	r := newRigSetup(t, Options{WifiPollInterval: time.Hour}, fake, func(a, _ *netnstest.NS) {
		a.IP("link", "add", "br0", "type", "bridge", "forward_delay", "0")
		a.IP("link", "set", "va", "master", "br0")
		a.IP("link", "set", "br0", "up")
		a.IP("addr", "del", "10.210.0.1/24", "dev", "va")
		a.IP("addr", "add", "10.210.0.1/24", "dev", "br0")
		a.IP("route", "add", "default", "via", "10.210.0.2", "dev", "br0")
	})
	ev := r.waitState(t, Up, ReasonNone)
	if ev.Iface != "br0" {
		t.Fatalf("up on %q, want the bridge br0", ev.Iface)
	}
	for ev := r.waitKind(t, EventWifi); !strings.HasPrefix(ev.Msg, "Wi-Fi baseline"); ev = r.waitKind(t, EventWifi) {
	}
	iface := func(s Snapshot, name string) IfaceSnapshot {
		for _, is := range s.Interfaces {
			if is.Name == name {
				return is
			}
		}
		return IfaceSnapshot{}
	}
	snap := r.waitSnap(t, "br0 with va's Wi-Fi facts", func(s Snapshot) bool { return iface(s, "br0").Wifi != nil })
	va, br := iface(snap, "va"), iface(snap, "br0")
	if br.Wifi.SSID != "robots" || br.Wifi.SignalDBm != -55 {
		t.Fatalf("br0 Wi-Fi = %+v, want va's (robots, -55 dBm)", br.Wifi)
	}
	fake.Disconnect(va.Index, 3, false)
	ev = r.waitState(t, Down, ReasonWifiDisconnect)
	if ev.Iface != "br0" {
		t.Fatalf("outage on %q, want br0", ev.Iface)
	}
}

// TestIntegrationEventsAfterRun: a subscriber that calls Events only once
// the Monitor is running still gets a baseline first (the state then),
// and the events after it.
func TestIntegrationEventsAfterRun(t *testing.T) {
	t.Parallel()
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.214.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.214.0.2")
	m, err := New(Options{NetNS: a.Handle, Wifi: "off", DHCP: "off", SockErrors: "off"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	defer func() { cancel(); <-done }()
	g := m.Gate()
	deadline := time.After(10 * time.Second)
	for s := g.State(); !s.Open; s = g.State() {
		select {
		case <-s.Changed():
		case <-deadline:
			t.Fatal("the Monitor never opened its gate")
		}
	}
	evs := m.Events()
	defer func() {
		cancel()
		for range evs {
		}
	}()
	first := <-evs
	if first.Kind != EventBaseline || first.Status.State != Up {
		t.Fatalf("first event %+v, want a baseline saying up", first)
	}
	b.IP("link", "set", "vb", "down")
	deadline = time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-evs:
			if !ok {
				t.Fatal("events ended before the state line")
			}
			if ev.Kind == EventState && ev.Status.State == Down {
				return
			}
		case <-deadline:
			t.Fatal("no state line within 10s of the carrier loss")
		}
	}
}
