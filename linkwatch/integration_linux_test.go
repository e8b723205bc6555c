package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// pair creates namespaces a (watched) and b (the peer) joined by veth
// va/vb, both up.
func pair(t *testing.T) (a, b *netnstest.NS) {
	t.Helper()
	a, b = netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	return a, b
}

// TestIntegrationLifecycle drives one interface through the changes a
// robot's Wi-Fi link goes through and checks, after each step, the events
// and that State equals what iproute2 reports.
func TestIntegrationLifecycle(t *testing.T) {
	t.Parallel()
	a, b := pair(t)
	r := watch(t, a, Config{})

	ev, before := r.waitFor("baseline", isBaseline)
	if len(before) != 0 {
		t.Fatalf("events before the baseline: %v", before)
	}
	if _, ok := ev.(Baseline).State.LinkByName("va"); !ok {
		t.Fatalf("baseline has no va: %+v", ev)
	}
	if _, ok := ev.(Baseline).State.LinkByName("lo"); ok {
		t.Fatal("baseline has lo; the default filter excludes loopback")
	}
	r.consistent()
	va, _ := r.w.State().LinkByName("va")

	t.Log("step: addresses and default routes")
	a.IP("addr", "add", "10.77.0.1/24", "dev", "va")
	r.waitFor("AddrAdded 10.77.0.1/24", addrEv(AddrAdded, "10.77.0.1/24"))
	a.IP("addr", "add", "fd77::1/64", "dev", "va", "nodad")
	r.waitFor("AddrAdded fd77::1/64", addrEv(AddrAdded, "fd77::1/64"))
	a.IP("route", "add", "default", "via", "10.77.0.2")
	r.waitFor("RouteAdded v4 default", routeEv(RouteAdded, func(rt, _ Route) bool {
		return rt.Gateway == netip.MustParseAddr("10.77.0.2") && rt.Iface == "va" && rt.Table == 254
	}))
	a.IP("-6", "route", "add", "default", "via", "fd77::2")
	r.waitFor("RouteAdded v6 default", routeEv(RouteAdded, func(rt, _ Route) bool {
		return rt.Gateway == netip.MustParseAddr("fd77::2") && rt.Metric == 1024
	}))
	r.consistent()
	if !r.w.State().Usable(va.Index) {
		t.Fatalf("va not usable with carrier, address and default route: %+v", r.w.State())
	}

	t.Log("step: peer down = carrier loss; routes stay, flagged linkdown")
	b.IP("link", "set", "vb", "down")
	r.waitFor("carrier loss on va", linkEv(LinkChanged, "va", func(l, p Link) bool { return !l.Carrier && p.Carrier && l.AdminUp }))
	r.waitFor("v4 default marked linkdown", routeEv(RouteChanged, func(rt, p Route) bool { return rt.Dst.Addr().Is4() && rt.LinkDown && !p.LinkDown }))
	r.consistent()
	if r.w.State().Usable(va.Index) {
		t.Fatal("va usable without carrier")
	}

	t.Log("step: peer up = carrier back")
	b.IP("link", "set", "vb", "up")
	r.waitFor("carrier back on va", linkEv(LinkChanged, "va", func(l, p Link) bool { return l.Carrier && !p.Carrier }))
	r.waitFor("v4 default linkdown cleared", routeEv(RouteChanged, func(rt, p Route) bool { return rt.Dst.Addr().Is4() && !rt.LinkDown && p.LinkDown }))
	r.consistent()
	// iproute2 does not print the carrier counter; sysfs (remounted for
	// the namespace by `ip netns exec`) does.
	out, err := a.Command(context.Background(), "cat", "/sys/class/net/va/carrier_changes").Output()
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := r.w.State().LinkByName("va"); strings.TrimSpace(string(out)) != fmt.Sprint(l.CarrierChanges) {
		t.Errorf("CarrierChanges = %d, sysfs says %s", l.CarrierChanges, out)
	}

	t.Log("step: a DHCP-like address: lifetimes, renewal, removal")
	a.IP("addr", "add", "10.78.0.5/24", "dev", "va", "valid_lft", "100", "preferred_lft", "50")
	ev, _ = r.waitFor("AddrAdded 10.78.0.5/24", addrEv(AddrAdded, "10.78.0.5/24"))
	if ad := ev.(AddrEvent).Addr; ad.Permanent() || ad.Valid != 100*time.Second || ad.Preferred != 50*time.Second {
		t.Errorf("dynamic address read as %+v, want valid 100s preferred 50s, not permanent", ad)
	}
	a.IP("addr", "change", "10.78.0.5/24", "dev", "va", "valid_lft", "300", "preferred_lft", "200")
	ev, _ = r.waitFor("AddrRefreshed 10.78.0.5/24", addrEv(AddrRefreshed, "10.78.0.5/24"))
	if e := ev.(AddrEvent); e.Addr.Valid != 300*time.Second || e.Prev.Valid != 100*time.Second {
		t.Errorf("refresh %+v, want valid 100s -> 300s", e)
	}
	r.consistent()
	a.IP("addr", "del", "10.78.0.5/24", "dev", "va")
	r.waitFor("AddrRemoved 10.78.0.5/24", addrEv(AddrRemoved, "10.78.0.5/24"))

	t.Log("step: replace the default route (no RTM_DELROUTE for the old one)")
	a.IP("route", "replace", "default", "via", "10.77.0.3")
	r.waitFor("RouteChanged to 10.77.0.3", routeEv(RouteChanged, func(rt, p Route) bool {
		return rt.Gateway == netip.MustParseAddr("10.77.0.3") && p.Gateway == netip.MustParseAddr("10.77.0.2")
	}))
	r.consistent()

	t.Log("step: remove and re-add the v6 default")
	a.IP("-6", "route", "del", "default", "via", "fd77::2")
	r.waitFor("RouteRemoved v6", routeEv(RouteRemoved, func(rt, _ Route) bool { return rt.Dst.Addr().Is6() }))
	r.consistent()
	a.IP("addr", "del", "fd77::1/64", "dev", "va")
	r.waitFor("AddrRemoved fd77::1/64", addrEv(AddrRemoved, "fd77::1/64"))
	r.consistent()

	t.Log("step: admin down removes IPv4 routes without RTM_DELROUTE")
	a.IP("link", "set", "va", "down")
	r.waitFor("va admin down", linkEv(LinkChanged, "va", func(l, p Link) bool { return !l.AdminUp && p.AdminUp }))
	r.waitFor("RouteRemoved v4 default", routeEv(RouteRemoved, func(rt, _ Route) bool { return rt.Dst.Addr().Is4() }))
	r.consistent()

	t.Log("step: rename while down, then up")
	a.IP("link", "set", "va", "name", "wl0")
	r.waitFor("rename va -> wl0", linkEv(LinkChanged, "wl0", func(l, p Link) bool { return p.Name == "va" }))
	a.IP("link", "set", "wl0", "up")
	r.waitFor("wl0 up", linkEv(LinkChanged, "wl0", func(l, p Link) bool { return l.AdminUp && l.Carrier }))
	r.consistent()
	for _, ad := range r.w.State().Addrs {
		if ad.Index == va.Index && ad.Iface != "wl0" {
			t.Errorf("address %v still carries the old name %q", ad.Prefix, ad.Iface)
		}
	}

	t.Log("step: remove the v4 address")
	a.IP("addr", "del", "10.77.0.1/24", "dev", "wl0")
	r.waitFor("AddrRemoved 10.77.0.1/24", addrEv(AddrRemoved, "10.77.0.1/24"))
	r.consistent()

	t.Log("step: delete the link")
	a.IP("link", "del", "wl0")
	r.waitFor("LinkRemoved wl0", linkEv(LinkRemoved, "wl0", nil))
	r.consistent()
	if len(r.w.State().Links) != 0 {
		t.Fatalf("links left after delete: %+v", r.w.State().Links)
	}
}

// TestIntegrationLinkAppearsLater checks that an interface created after
// the watcher started is picked up, with the filter applied.
func TestIntegrationLinkAppearsLater(t *testing.T) {
	t.Parallel()
	a, b := netnstest.New(t), netnstest.New(t)
	r := watch(t, a, Config{Include: []string{"wl*"}})
	r.waitFor("baseline", isBaseline)
	netnstest.Veth(t, a, "eth9", b, "vb")
	a.IP("link", "add", "wl7", "type", "veth", "peer", "name", "px7")
	ev, seen := r.waitFor("LinkAdded wl7", linkEv(LinkAdded, "wl7", nil))
	for _, e := range seen {
		if le, ok := e.(LinkEvent); ok && le.Link.Name == "eth9" {
			t.Fatalf("eth9 reported although Include is wl*: %+v", le)
		}
	}
	if k := ev.(LinkEvent).Link.Kind; k != "veth" {
		t.Errorf("Kind = %q, want veth", k)
	}
	if _, ok := r.w.State().LinkByName("eth9"); ok {
		t.Error("State has eth9 although Include is wl*")
	}
	// Renamed into the filter: it appears, with its address.
	a.IP("addr", "add", "10.5.0.1/24", "dev", "eth9")
	a.IP("link", "set", "eth9", "down")
	a.IP("link", "set", "eth9", "name", "wl9")
	r.waitFor("wl9 appears after rename", linkEv(LinkAdded, "wl9", nil))
	r.waitFor("its address appears", addrEv(AddrAdded, "10.5.0.1/24"))
}

// TestIntegrationNewUnknownInterface checks the constructor's error for an
// interface that does not exist.
func TestIntegrationNewUnknownInterface(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	_, err := New(Config{NetNS: a.Handle, Include: []string{"wlan0", "v*"}})
	if err == nil {
		t.Fatal("New accepted an interface that does not exist")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("error %v does not wrap os.ErrNotExist", err)
	}
	for _, want := range []string{`"wlan0"`, "lo", "va"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(Config{NetNS: a.Handle, Include: []string{"va"}}); err != nil {
		t.Errorf("New with an existing interface: %v", err)
	}
}

// TestIntegrationDAD checks that an IPv6 address under duplicate address
// detection is tentative and the interface not usable until DAD is done.
func TestIntegrationDAD(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	a.IP("-6", "route", "add", "default", "dev", "va")
	r.waitFor("RouteAdded on-link v6 default", routeEv(RouteAdded, nil))
	// Three probes a second apart: DAD lasts about 3 s, so the state read
	// right after the AddrAdded event still holds the tentative address.
	a.Sysctl("net/ipv6/conf/va/dad_transmits", "3")
	a.Sysctl("net/ipv6/neigh/va/retrans_time_ms", "1000")
	a.IP("addr", "add", "fd78::1/64", "dev", "va")
	ev, _ := r.waitFor("AddrAdded fd78::1/64", addrEv(AddrAdded, "fd78::1/64"))
	ad := ev.(AddrEvent).Addr
	if !ad.Tentative() || ad.Usable() {
		t.Fatalf("fresh address: Tentative %v Usable %v, want true false (flags %#x)", ad.Tentative(), ad.Usable(), ad.Flags)
	}
	s := r.w.State()
	va, _ := s.LinkByName("va")
	if s.hasUsableAddr(va.Index) || s.Usable(va.Index) {
		t.Fatalf("usable while the only global address is tentative: %+v", s)
	}
	ev, _ = r.waitFor("AddrChanged: DAD done", addrEv(AddrChanged, "fd78::1/64"))
	if e := ev.(AddrEvent); e.Addr.Tentative() || !e.Prev.Tentative() || !e.Addr.Usable() {
		t.Fatalf("after DAD: %+v", e)
	}
	if !r.w.State().Usable(va.Index) {
		t.Fatalf("not usable after DAD: %+v", r.w.State())
	}
	r.consistent()
}

// TestIntegrationForgedMessageIgnored unicasts a forged RTM_NEWLINK from a
// root process to the watcher's socket and checks that it changes nothing.
func TestIntegrationForgedMessageIgnored(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	forged := forgedLink(999, "spoofed0")
	err := a.Do(func() error {
		fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return err
		}
		return unix.Sendto(fd, forged, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Pid: r.w.subPID.Load()})
	})
	if err != nil {
		t.Fatalf("send forged message: %v", err)
	}
	// A real change sent after the forged message is queued behind it:
	// once its event arrives, the forged one has been read.
	a.IP("link", "set", "va", "mtu", "1400")
	_, seen := r.waitFor("MTU change", linkEv(LinkChanged, "va", func(l, _ Link) bool { return l.MTU == 1400 }))
	for _, ev := range seen {
		if le, ok := ev.(LinkEvent); ok && le.Link.Index == 999 {
			t.Fatalf("forged link reported: %+v", le)
		}
	}
	if _, ok := r.w.State().Links[999]; ok {
		t.Fatal("forged link in State")
	}
	if n := r.w.ignored.Load(); n != 1 {
		t.Fatalf("ignored %d messages, want 1 (the forged one)", n)
	}
}

// forgedLink builds an RTM_NEWLINK for a link that does not exist.
func forgedLink(index int32, name string) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	ne.PutUint32(body[4:], uint32(index))
	ne.PutUint32(body[8:], unix.IFF_UP|unix.IFF_LOWER_UP)
	body = appendAttr(body, unix.IFLA_IFNAME, append([]byte(name), 0))
	return nlmsg(unix.RTM_NEWLINK, 0, body)
}

// TestIntegrationOverflow floods address changes at a watcher with a tiny
// receive buffer until the kernel drops messages (ENOBUFS), and checks the
// gap is reported, the state re-read and watching continues.
func TestIntegrationOverflow(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	r := watch(t, a, Config{ReceiveBuffer: 4096})
	r.waitFor("baseline", isBaseline)
	var batch strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&batch, "addr add 10.%d.%d.1/32 dev va\n", 100+i/250, i%250)
	}
	for i := range 1500 {
		fmt.Fprintf(&batch, "addr del 10.%d.%d.1/32 dev va\n", 100+i/250, i%250)
	}
	file := filepath.Join(t.TempDir(), "flood")
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	a.IP("-batch", file)
	ev, _ := r.waitFor("GapEvent", isGap)
	gap := ev.(GapEvent)
	if !errors.Is(gap.Err, unix.ENOBUFS) {
		t.Errorf("gap error %v, want ENOBUFS", gap.Err)
	}
	if gap.State.Read.IsZero() || !gap.State.Read.Equal(gap.At) {
		t.Errorf("gap state read at %v, gap at %v: want the re-read time", gap.State.Read, gap.At)
	}
	r.consistent()
	if n := len(r.w.State().Addrs); n < 1500 {
		t.Fatalf("%d addresses in State, want at least the 1500 left", n)
	}
	// Still watching.
	a.IP("link", "set", "va", "mtu", "1300")
	r.waitFor("MTU change after the gap", linkEv(LinkChanged, "va", func(l, _ Link) bool { return l.MTU == 1300 }))
	r.consistent()
}

// TestIntegrationGatewayNeighbour checks that the neighbour entry of the
// default gateway is reported, and others are not.
func TestIntegrationGatewayNeighbour(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	a.IP("addr", "add", "10.66.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.66.0.2")
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	gw := netip.MustParseAddr("10.66.0.2")
	// Static entries stand in for ARP: one for another host, which
	// must stay silent, and one for the gateway.
	a.IP("neigh", "add", "10.66.0.9", "lladdr", "02:00:00:00:00:09", "dev", "va", "nud", "reachable")
	a.IP("neigh", "add", "10.66.0.2", "lladdr", "02:00:00:00:00:02", "dev", "va", "nud", "reachable")
	ev, seen := r.waitFor("NeighEvent for the gateway", func(ev Event) bool {
		e, ok := ev.(NeighEvent)
		return ok && e.Neigh.IP == gw
	})
	for _, e := range seen {
		if ne, ok := e.(NeighEvent); ok {
			t.Errorf("neighbour event for a non-gateway: %+v", ne)
		}
	}
	n := ev.(NeighEvent).Neigh
	if !n.Reachable() || n.MAC.String() != "02:00:00:00:00:02" || n.Iface != "va" {
		t.Errorf("gateway neighbour %+v, want reachable 02:00:00:00:00:02 on va", n)
	}
	if s := r.w.State(); len(s.Neighs) != 1 || s.Neighs[0].IP != gw {
		t.Errorf("State.Neighs = %+v, want only the gateway", s.Neighs)
	}
	a.IP("neigh", "del", "10.66.0.2", "dev", "va")
	r.waitFor("gateway neighbour removed", func(ev Event) bool {
		e, ok := ev.(NeighEvent)
		return ok && e.Neigh.IP == gw && e.Removed
	})
	if len(r.w.State().Neighs) != 0 {
		t.Errorf("State.Neighs after delete = %+v", r.w.State().Neighs)
	}
}

// TestIntegrationLastIPv4AddressTakesRoutes: deleting a link's last IPv4
// address disables IPv4 on it, and the kernel flushes the default route
// through it without RTM_DELROUTE. linkwatch must still report the route
// gone, or a monitor would believe a path exists that does not.
func TestIntegrationLastIPv4AddressTakesRoutes(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	a.IP("addr", "add", "10.79.0.1/24", "dev", "va")
	r.waitFor("AddrAdded 10.79.0.1/24", addrEv(AddrAdded, "10.79.0.1/24"))
	a.IP("route", "add", "default", "via", "10.79.0.2")
	r.waitFor("RouteAdded v4 default", routeEv(RouteAdded, func(rt, _ Route) bool {
		return rt.Gateway == netip.MustParseAddr("10.79.0.2")
	}))
	a.IP("addr", "del", "10.79.0.1/24", "dev", "va")
	r.waitFor("AddrRemoved 10.79.0.1/24", addrEv(AddrRemoved, "10.79.0.1/24"))
	r.waitFor("RouteRemoved v4 default", routeEv(RouteRemoved, func(rt, _ Route) bool {
		return rt.Gateway == netip.MustParseAddr("10.79.0.2")
	}))
	r.consistent()
}

// failingDumps returns a failDump hook that fails the next n dumps after
// arm is called, and counts the failures.
func failingDumps() (hook func(uint16) error, arm func(n int32), failed *atomic.Int32) {
	var left, count atomic.Int32
	hook = func(uint16) error {
		if left.Add(-1) >= 0 {
			count.Add(1)
			return errors.New("injected dump failure")
		}
		return nil
	}
	return hook, func(n int32) { left.Store(n) }, &count
}

// TestIntegrationRereadRetries: a full re-read that fails is retried with
// backoff until it succeeds, and the state it yields is the kernel's. The
// re-read is triggered by renaming a link into the Include filter.
func TestIntegrationRereadRetries(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	hook, arm, failed := failingDumps()
	r := watchWith(t, a, Config{Include: []string{"wl*"}}, func(w *Watcher) { w.failDump = hook })
	r.waitFor("baseline", isBaseline)
	arm(2)
	a.IP("link", "set", "va", "down")
	a.IP("link", "set", "va", "name", "wl0")
	r.waitFor("wl0 appears after the re-read", linkEv(LinkAdded, "wl0", nil))
	if n := failed.Load(); n != 2 {
		t.Fatalf("%d dumps failed, want the 2 injected (a retry that never ran?)", n)
	}
	r.consistent()
}

// TestIntegrationRereadGivesUp: when every retry of a re-read fails, Run
// ends with an error that says so, instead of serving a state that may be
// wrong with nothing to correct it.
func TestIntegrationRereadGivesUp(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	w, err := New(Config{NetNS: a.Handle, Include: []string{"wl*"}})
	if err != nil {
		t.Fatal(err)
	}
	hook, arm, _ := failingDumps()
	w.failDump = hook
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(context.Background()) }()
	readBaseline(t, w)
	arm(1000)
	a.IP("link", "set", "va", "name", "wl0")
	go func() {
		for range w.Events() {
		}
	}()
	select {
	case err := <-runErr:
		if err == nil || !strings.Contains(err.Error(), "re-reading the kernel's state failed 6 times") {
			t.Fatalf("Run = %v, want the re-read failure", err)
		}
	case <-time.After(waitTime):
		t.Fatalf("Run still running %v after every re-read failed", waitTime)
	}
}

// TestIntegrationMaster: enslaving a veth to a bridge sets Link.Master to
// the bridge's index (IFLA_MASTER), releasing it sets 0, and both are
// path changes.
func TestIntegrationMaster(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	a.IP("link", "add", "br0", "type", "bridge")
	a.IP("link", "set", "br0", "up")
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	br, ok := r.w.State().LinkByName("br0")
	if !ok {
		t.Fatal("no br0 in the baseline")
	}
	a.IP("link", "set", "va", "master", "br0")
	ev, _ := r.waitFor("va enslaved to br0", linkEv(LinkChanged, "va", func(l, p Link) bool { return l.Master == br.Index }))
	if e := ev.(LinkEvent); e.Changes()&ChangedMaster == 0 || !e.PathChanged() || e.Prev.Master != 0 {
		t.Errorf("enslave event %+v: Changes %v PathChanged %v", e, e.Changes(), e.PathChanged())
	}
	r.consistent()
	a.IP("link", "set", "va", "nomaster")
	ev, _ = r.waitFor("va released", linkEv(LinkChanged, "va", func(l, p Link) bool { return l.Master == 0 && p.Master == br.Index }))
	if e := ev.(LinkEvent); e.Changes()&ChangedMaster == 0 || !e.PathChanged() {
		t.Errorf("release event %+v: Changes %v", e, e.Changes())
	}
	r.consistent()
}
