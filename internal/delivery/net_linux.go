//go:build linux

package delivery

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netlink"
	"testing"
)

// The addresses of a run. The robot (robotDev) lives in 10.77.0.0/24 with
// its default route via one of two gateway addresses on the gateway
// namespace's end of the veth (gatewayDev); the server lives behind the
// gateway in 10.78.0.0/24, off-link for the robot.
const (
	robotDev   = "eth0"
	gatewayDev = "robot0"
	serverIP   = "10.78.0.2"
	serverPort = 7000
)

var (
	gatewayAddrs = [2]string{"10.77.0.1/24", "10.77.0.254/24"}
	// gatewayMACs are the two gateways' link-layer addresses: another
	// gateway is another host, which the robot must resolve, and the old
	// one's frames reach nobody.
	gatewayMACs = [2]net.HardwareAddr{{0x02, 0, 0x5e, 0, 0, 0x01}, {0x02, 0, 0x5e, 0, 0, 0xfe}}
)

// robotAddr is the robot's address after k changes: a new one each time,
// as from a DHCP server that gives another lease, so that a connection
// left on an old address never comes back to life.
func robotAddr(k int) string { return fmt.Sprintf("10.77.0.%d/24", 2+k%200) }

// Net is one run's three namespaces: the robot, the gateway (a router)
// and the server.
type Net struct {
	Robot, Gateway, Server *netnstest.NS

	rh, gh *netlink.Handle // netlink in the robot's and the gateway's namespaces
	rlink  netlink.Link    // the robot's end of the veth
	glink  netlink.Link    // the gateway's end of it
	addr   int             // the robot's address changes so far (see robotAddr)
	gway   int             // index into gatewayAddrs in use
}

// LinkwatchBatching keeps the kernel's batching of the robot's carrier
// changes (see NewNet).
var LinkwatchBatching bool

// NewNet builds the namespaces of a run; they go when t ends.
//
// The kernel reports a device's carrier loss through its linkwatch, which
// runs at most once a second for the whole machine unless the event is
// urgent (net/core/link_watch.c, linkwatch_urgent_event): a loss within a
// second of any other device's change, in any namespace, is reported up
// to a second late, and a drop shorter than that not at all. A veth end
// whose peer has the same ifindex (as each end of a pair made in fresh
// namespaces has: 2) is not urgent, like a wlan0; runs side by side then
// delay each other's notifications. Unless LinkwatchBatching is set, a
// placeholder veth pair in the gateway's namespace shifts its end's index,
// which makes the pair's events urgent: the robot learns of each drop at
// once, as on a quiet machine, whatever else runs.
func NewNet(t testing.TB) *Net {
	t.Helper()
	n := &Net{Robot: netnstest.New(t), Gateway: netnstest.New(t), Server: netnstest.New(t)}
	if !LinkwatchBatching {
		n.Gateway.IP("link", "add", "pad0", "type", "veth", "peer", "name", "pad1")
	}
	n.rlink, n.glink = netnstest.Veth(t, n.Robot, robotDev, n.Gateway, gatewayDev)
	netnstest.Veth(t, n.Gateway, "server0", n.Server, "eth0")
	n.rh, n.gh = n.Robot.NetlinkHandle(), n.Gateway.NetlinkHandle()
	n.Gateway.Sysctl("net/ipv4/ip_forward", "1")
	n.Gateway.IP("link", "set", gatewayDev, "address", gatewayMACs[0].String())
	n.Gateway.IP("addr", "add", gatewayAddrs[0], "dev", gatewayDev)
	n.Gateway.IP("addr", "add", "10.78.0.1/24", "dev", "server0")
	n.Server.IP("addr", "add", serverIP+"/24", "dev", "eth0")
	n.Server.IP("route", "add", "default", "via", "10.78.0.1")
	n.Robot.IP("addr", "add", robotAddr(0), "dev", robotDev)
	n.Robot.IP("route", "add", "default", "via", hostOf(gatewayAddrs[0]))
	return n
}

// hostOf returns the address of a prefix "A/N".
func hostOf(prefix string) string {
	ip, _, _ := net.ParseCIDR(prefix)
	return ip.String()
}

// Apply applies the steps of sc, each at start+At, and returns the
// outages as applied. It stops early when ctx ends.
func (n *Net) Apply(ctx context.Context, start time.Time, sc Schedule) ([]Interval, error) {
	var out []Interval
	for _, st := range sc.Steps {
		if err := sleepUntil(ctx, start.Add(st.At)); err != nil {
			return out, nil
		}
		iv, err := n.step(ctx, st)
		if err != nil {
			return out, fmt.Errorf("delivery: %v at %v: %w", st.Action, st.At, err)
		}
		out = append(out, iv)
	}
	return out, nil
}

// step applies one step and returns its outage: the time the path was
// surely away, from the return of the command that took it away (the
// kernel has applied it by then) to the call of the one that gave it
// back. A Gate open in that time, or a dial made in it, was the sender's
// doing, never the runner's slowness in noting the return.
func (n *Net) step(ctx context.Context, st Step) (Interval, error) {
	var iv Interval
	switch st.Action {
	case Drop:
		began := time.Now()
		if err := n.gh.LinkSetDown(n.glink); err != nil {
			return iv, err
		}
		iv.Down = time.Now()
		_ = sleepUntil(ctx, began.Add(st.Len))
		iv.Up = time.Now()
		if err := n.gh.LinkSetUp(n.glink); err != nil {
			return iv, err
		}
	case AddrChange:
		old, next := mustAddr(robotAddr(n.addr)), mustAddr(robotAddr(n.addr+1))
		if err := n.rh.AddrDel(n.rlink, old); err != nil {
			return iv, err
		}
		iv.Down = time.Now()
		if err := n.rh.AddrAdd(n.rlink, next); err != nil {
			return iv, err
		}
		iv.Up = time.Now()
		if err := n.defaultVia(gatewayAddrs[n.gway]); err != nil {
			return iv, err
		}
		n.addr++
	case GatewaySwitch:
		old, next := mustAddr(gatewayAddrs[n.gway]), mustAddr(gatewayAddrs[1-n.gway])
		began := time.Now()
		if err := n.gh.AddrDel(n.glink, old); err != nil {
			return iv, err
		}
		iv.Down = time.Now()
		if err := n.gh.LinkSetHardwareAddr(n.glink, gatewayMACs[1-n.gway]); err != nil {
			return iv, err
		}
		if err := n.gh.AddrAdd(n.glink, next); err != nil {
			return iv, err
		}
		_ = sleepUntil(ctx, began.Add(st.Len))
		iv.Up = time.Now()
		if err := n.defaultVia(gatewayAddrs[1-n.gway]); err != nil {
			return iv, err
		}
		n.gway = 1 - n.gway
	}
	return iv, nil
}

// defaultVia points the robot's default route at gateway (a prefix).
func (n *Net) defaultVia(gateway string) error {
	return n.rh.RouteReplace(&netlink.Route{
		LinkIndex: n.rlink.Attrs().Index,
		Dst:       &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)},
		Gw:        net.ParseIP(hostOf(gateway)),
	})
}

// mustAddr parses one of the constant prefixes above.
func mustAddr(prefix string) *netlink.Addr {
	a, err := netlink.ParseAddr(prefix)
	if err != nil {
		panic(err)
	}
	return a
}

// sleepUntil waits until t or until ctx ends (its error).
func sleepUntil(ctx context.Context, t time.Time) error {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
