package netmon

import (
	"net/netip"
	"testing"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// Fold tests of the path verdict, with mainTableLookup standing in for the
// kernel's lookup (no rules, no marks).

// TestMonitorTargetsOnTwoInterfacesNoSpuriousRebind: targets on eth0 and
// wlan0. eth0 losing its carrier costs only its own target; neither that
// nor its return moves the traffic of the target on wlan0, so there is no
// rebind. A target that moves to another interface is one.
func TestMonitorTargetsOnTwoInterfacesNoSpuriousRebind(t *testing.T) {
	m := newTestMonitor(t, Options{Targets: []string{"192.168.7.9", "10.0.0.9"}})
	b := baselineUp()
	b.State.Links[3] = upLink(3, "eth0")
	b.State.Addrs = append(b.State.Addrs, globalAddr(3, "eth0", "192.168.7.2/24"))
	m.apply(b)
	wantStatus(t, m, Up, ReasonNone)
	if s := m.Status(); s.Iface != "eth0" {
		t.Fatalf("status %+v, want the first target's interface eth0", s)
	}
	rebind := m.RebindC()
	down := linkwatch.Link{Index: 3, Name: "eth0", AdminUp: true, Oper: linkwatch.OperDown}
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged, Link: down, Prev: upLink(3, "eth0")})
	wantStatus(t, m, Degraded, ReasonTargetUnreachable)
	if s := m.Status(); s.Target != "192.168.7.9" || s.Iface != "wlan0" {
		t.Fatalf("status %+v, want degraded for 192.168.7.9, traffic on wlan0", s)
	}
	if m.GateFor("192.168.7.9").State().Open || !m.GateFor("10.0.0.9").State().Open {
		t.Fatal("eth0's target gate open, or wlan0's closed")
	}
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged, Link: upLink(3, "eth0"), Prev: down})
	wantStatus(t, m, Up, ReasonNone)
	select {
	case <-rebind:
		t.Fatalf("rebind %+v, but no target's traffic changed interface", m.LastRebind())
	default:
	}
	// 10.0.0.9 becomes reachable only through eth0 (a more specific
	// address there): its traffic moved.
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrAdded, Addr: globalAddr(3, "eth0", "10.0.0.7/28")})
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrRemoved, Addr: globalAddr(2, "wlan0", "10.0.0.5/24")})
	select {
	case <-rebind:
	default:
		t.Fatalf("no rebind when 10.0.0.9 moved to eth0; snapshot %+v", m.Snapshot().Targets)
	}
	if r := m.LastRebind(); r.Iface != "wlan0" {
		t.Fatalf("rebind %+v, want from wlan0", r)
	}
}

// TestMonitorIPv6OverIPv4Tunnel: a tunnel carries IPv6 over an IPv4-only
// underlay. The IPv6 path enters the tunnel and is judged by the
// underlay whatever its family.
func TestMonitorIPv6OverIPv4Tunnel(t *testing.T) {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	tun := upLink(4, "tun0")
	tun.Kind = "tun"
	b.State.Links[4] = tun
	b.State.Addrs = append(b.State.Addrs, globalAddr(4, "tun0", "2001:db8:4::2/64"))
	b.State.Routes = append(b.State.Routes, linkwatch.Route{Index: 4, Iface: "tun0", Dst: netip.MustParsePrefix("::/0"), Table: 254})
	m.apply(b)
	wantStatus(t, m, Up, ReasonNone)
	var v6 TargetSnapshot
	for _, ts := range m.Snapshot().Targets {
		if ts.Target == "internet-ipv6" {
			v6 = ts
		}
	}
	if !v6.Reachable || v6.Via != "tun0" || v6.Iface != "wlan0" {
		t.Fatalf("internet-ipv6 = %+v, want reachable via tun0 over wlan0", v6)
	}
	// The underlay goes: both families are lost.
	down := linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged, Link: down, Prev: upLink(2, "wlan0")})
	wantStatus(t, m, Down, ReasonCarrierLost)
	if s := m.Status(); s.Iface != "wlan0" {
		t.Fatalf("status %+v, want the underlay wlan0", s)
	}
}
