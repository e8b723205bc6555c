package netnstest

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// GatewayLab is a robot behind one gateway: namespace Robot's default routes
// (IPv4 and IPv6) lead through the veth RobotIf to Gateway's end GatewayIf;
// the far-side addresses (Far4, Far6) are on the gateway's far0. Taking GatewayIf down takes the robot's carrier
// with it, as an access point out of range does.
type GatewayLab struct {
	Robot, Gateway     *NS
	RobotIf, GatewayIf string
	RobotIndex         int
	RobotMAC           net.HardwareAddr
	Src4, Src6         netip.Addr // the robot's addresses on RobotIf
	Gateway4, Gateway6 netip.Addr // the default routes' next hops
	Far4, Far6         netip.Addr // beyond the gateway

	t  testing.TB
	rh *netlink.Handle
}

// NewGatewayLab builds the lab with every address usable (no DAD left
// running) and the gateways' neighbour entries not yet created.
func NewGatewayLab(t testing.TB) *GatewayLab {
	t.Helper()
	l := &GatewayLab{
		Robot: New(t), Gateway: New(t), RobotIf: "r0", GatewayIf: "g0",
		Src4: netip.MustParseAddr("192.0.2.2"), Src6: netip.MustParseAddr("2001:db8:1::2"),
		Gateway4: netip.MustParseAddr("192.0.2.1"), Gateway6: netip.MustParseAddr("2001:db8:1::1"),
		Far4: netip.MustParseAddr("198.51.100.1"), Far6: netip.MustParseAddr("2001:db8:ff::1"),
		t: t,
	}
	// DAD off before the links exist, so that the kernel's link-local
	// addresses are usable at once.
	for _, ns := range []*NS{l.Robot, l.Gateway} {
		ns.Sysctl("net/ipv6/conf/default/accept_dad", "0")
		ns.Sysctl("net/ipv6/conf/default/accept_ra", "0")
	}
	// The far side is a veth pair of its own (no dummy module in every
	// kernel), made before the robot's veth, so that
	// the veth ends' ifindexes differ: the kernel delays the operstate of
	// a device whose iflink is its own ifindex by up to a second
	// (linkwatch_urgent_event), which a real uplink does not see.
	l.Gateway.IP("link", "add", "far0", "type", "veth", "peer", "name", "far1")
	l.Gateway.IP("link", "set", "far0", "up")
	l.Gateway.IP("link", "set", "far1", "up")
	// The gateway's link goes down in an outage; its IPv6 addresses stay
	// as an access point's router keeps its own. An interface taken down
	// loses its link-local addresses whatever the setting, so Gateway6 is
	// a global one.
	l.Gateway.Sysctl("net/ipv6/conf/default/keep_addr_on_down", "1")
	r, _ := Veth(t, l.Robot, l.RobotIf, l.Gateway, l.GatewayIf)
	l.RobotIndex, l.RobotMAC = r.Attrs().Index, r.Attrs().HardwareAddr
	l.rh = l.Robot.NetlinkHandle()
	l.Gateway.IP("addr", "add", "192.0.2.1/24", "dev", l.GatewayIf)
	l.Gateway.IP("addr", "add", "2001:db8:1::1/64", "dev", l.GatewayIf, "nodad")
	l.Gateway.IP("addr", "add", l.Far4.String()+"/32", "dev", "far0")
	l.Gateway.IP("addr", "add", l.Far6.String()+"/128", "dev", "far0", "nodad")
	l.Robot.IP("addr", "add", l.Src4.String()+"/24", "dev", l.RobotIf)
	l.Robot.IP("addr", "add", l.Src6.String()+"/64", "dev", l.RobotIf, "nodad")
	l.Robot.IP("route", "add", "default", "via", l.Gateway4.String(), "dev", l.RobotIf)
	l.Robot.IP("-6", "route", "add", "default", "via", l.Gateway6.String(), "dev", l.RobotIf)
	l.WaitCarrier(true)
	// An address added while its link's carrier is not yet reported
	// stays tentative until it is, DAD off or not: a bind to it fails
	// (EADDRNOTAVAIL) on a loaded machine.
	l.wait("no tentative IPv6 address", func() bool {
		return strings.TrimSpace(l.Gateway.IP("-6", "addr", "show", "tentative")) == "" &&
			strings.TrimSpace(l.Robot.IP("-6", "addr", "show", "tentative")) == ""
	})
	return l
}

// SetRetransTime sets the robot's neighbour retransmit time on RobotIf,
// IPv4 and IPv6: how long an INCOMPLETE entry waits for its next
// solicitation.
func (l *GatewayLab) SetRetransTime(d time.Duration) {
	ms := strconv.FormatInt(d.Milliseconds(), 10)
	l.Robot.Sysctl("net/ipv4/neigh/"+l.RobotIf+"/retrans_time_ms", ms)
	l.Robot.Sysctl("net/ipv6/neigh/"+l.RobotIf+"/retrans_time_ms", ms)
}

// SetGatewayLink takes the gateway's end of the veth down or up; the
// robot's carrier follows.
func (l *GatewayLab) SetGatewayLink(up bool) {
	l.t.Helper()
	if up {
		l.Gateway.IP("link", "set", l.GatewayIf, "up")
	} else {
		l.Gateway.IP("link", "set", l.GatewayIf, "down")
	}
}

// WaitCarrier waits (10 s at most) until RobotIf's carrier is gone, or up
// with the operational state up (the kernel's linkwatch has run).
func (l *GatewayLab) WaitCarrier(up bool) {
	l.t.Helper()
	l.wait("carrier "+strconv.FormatBool(up), func() bool {
		link, err := l.rh.LinkByIndex(l.RobotIndex)
		if err != nil {
			l.t.Fatal(err)
		}
		if !up {
			return link.Attrs().RawFlags&unix.IFF_LOWER_UP == 0
		}
		return link.Attrs().OperState == netlink.OperUp
	})
}

// NeighState returns the robot's neighbour entry state for ip on RobotIf
// (NUD_*), and whether the entry exists.
func (l *GatewayLab) NeighState(ip netip.Addr) (int, bool) {
	l.t.Helper()
	family := netlink.FAMILY_V4
	if ip.Is6() {
		family = netlink.FAMILY_V6
	}
	ns, err := l.rh.NeighList(l.RobotIndex, family)
	if err != nil {
		l.t.Fatal(err)
	}
	for _, n := range ns {
		if a, ok := netip.AddrFromSlice(n.IP); ok && a.Unmap() == ip {
			return n.State, true
		}
	}
	return 0, false
}

// WaitNeigh waits (10 s at most) until the entry for ip exists and its state
// has a bit of mask.
func (l *GatewayLab) WaitNeigh(ip netip.Addr, mask int) {
	l.t.Helper()
	l.wait("neighbour "+ip.String()+" state mask "+strconv.Itoa(mask), func() bool {
		s, ok := l.NeighState(ip)
		return ok && s&mask != 0
	})
}

// wait polls cond every 5 ms until it holds, failing the test after 10 s.
func (l *GatewayLab) wait(what string, cond func() bool) {
	l.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			l.t.Fatalf("netnstest: no %s within 10 s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// UDP returns a datagram socket in Gateway bound to the far side (Far6 when
// v6, else Far4) and one in Robot connected to it, both closed when the
// test ends.
func (l *GatewayLab) UDP(v6 bool) (send, recv *net.UDPConn) {
	l.t.Helper()
	far := l.Far4
	if v6 {
		far = l.Far6
	}
	if err := l.Gateway.Do(func() (err error) {
		recv, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(far, 0)))
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { recv.Close() })
	if err := l.Robot.Do(func() (err error) {
		send, err = net.DialUDP("udp", nil, recv.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() { send.Close() })
	return send, recv
}

// OutageWithTraffic takes the gateway's link down, writes one datagram on
// send while it is down, and waits until the kernel has queued it on an
// INCOMPLETE entry for gw: the state a sender that kept writing leaves at
// the return. The link stays down.
func (l *GatewayLab) OutageWithTraffic(send *net.UDPConn, gw netip.Addr) {
	l.t.Helper()
	l.SetGatewayLink(false)
	l.WaitCarrier(false)
	if _, err := send.Write([]byte("sent during the outage")); err != nil {
		l.t.Fatalf("netnstest: send during the outage: %v", err)
	}
	l.WaitNeigh(gw, netlink.NUD_INCOMPLETE)
}
