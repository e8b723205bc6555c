package neighprobe

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// outageLab is a GatewayLab with a UDP sender on the robot and its
// receiver beyond the gateway, for one family.
type outageLab struct {
	*netnstest.GatewayLab
	gw, src    netip.Addr
	send, recv *net.UDPConn
}

func newOutageLab(t *testing.T, v6 bool) *outageLab {
	l := &outageLab{GatewayLab: netnstest.NewGatewayLab(t)}
	l.gw, l.src = l.Gateway4, l.Src4
	if v6 {
		l.gw, l.src = l.Gateway6, l.Src6
	}
	l.send, l.recv = l.UDP(v6)
	return l
}

// outage leaves a datagram queued on the gateway's INCOMPLETE entry, and
// brings the link back.
func (l *outageLab) outage(t *testing.T) {
	t.Helper()
	l.OutageWithTraffic(l.send, l.gw)
	l.SetGatewayLink(true)
	l.WaitCarrier(true)
}

// TestProbeResolvesIncompleteEntry: after an outage with traffic, the
// gateway's entry is INCOMPLETE with a datagram queued on it. A probe makes
// the kernel take the gateway's answer into that entry (REACHABLE) and send
// the queued datagram; without the probe (and with NTF_USE, which the
// package doc rules out) the entry stays INCOMPLETE until the kernel's
// next solicitation, which retrans_time (set to 30 s) puts beyond the test.
func TestProbeResolvesIncompleteEntry(t *testing.T) {
	netnstest.RequirePrivileged(t)
	for _, fam := range []struct {
		name string
		v6   bool
	}{{"IPv4", false}, {"IPv6", true}} {
		t.Run(fam.name, func(t *testing.T) {
			t.Parallel()
			t.Run("probe", func(t *testing.T) {
				t.Parallel()
				l := newOutageLab(t, fam.v6)
				l.SetRetransTime(30 * time.Second)
				p, err := Open(l.Robot.Handle)
				if err != nil {
					t.Fatal(err)
				}
				defer p.Close()
				l.outage(t)
				if s, _ := l.NeighState(l.gw); s != netlink.NUD_INCOMPLETE {
					t.Fatalf("entry before the probe: state %#x, want INCOMPLETE", s)
				}
				src := l.src
				if fam.v6 {
					src = netip.Addr{} // the kernel's choice: the link-local address
				}
				if err := p.Probe(Request{Index: l.RobotIndex, MAC: l.RobotMAC, Src: src, Gateway: l.gw}); err != nil {
					t.Fatal(err)
				}
				l.WaitNeigh(l.gw, netlink.NUD_REACHABLE)
				_ = l.recv.SetReadDeadline(time.Now().Add(10 * time.Second))
				b := make([]byte, 100)
				n, err := l.recv.Read(b)
				if err != nil {
					t.Fatalf("the datagram queued during the outage did not arrive: %v", err)
				}
				t.Logf("arrived: %q", b[:n])
			})
			// Without a probe, and with what the kernel offers instead:
			// NTF_USE (`ip neigh replace ... use`) only queues on an
			// INCOMPLETE entry (__neigh_event_send), it sends nothing.
			for _, alt := range []struct {
				name string
				do   func(l *outageLab)
			}{
				{"kernel alone", func(*outageLab) {}},
				{"NTF_USE", func(l *outageLab) { l.Robot.IP("neigh", "replace", l.gw.String(), "dev", l.RobotIf, "use") }},
			} {
				t.Run(alt.name, func(t *testing.T) {
					t.Parallel()
					l := newOutageLab(t, fam.v6)
					l.SetRetransTime(30 * time.Second)
					l.outage(t)
					alt.do(l)
					_ = l.recv.SetReadDeadline(time.Now().Add(2 * time.Second))
					if _, err := l.recv.Read(make([]byte, 100)); !errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("without a probe a datagram arrived within 2 s of the return (err %v): the kernel resolved the gateway by itself", err)
					}
					if s, ok := l.NeighState(l.gw); !ok || s != netlink.NUD_INCOMPLETE {
						t.Fatalf("entry without a probe: state %#x (exists %v), want INCOMPLETE", s, ok)
					}
				})
			}
		})
	}
}

// TestOpenWithoutCapNetRaw: without CAP_NET_RAW, Open fails with an error
// that matches ErrUnavailable and EPERM.
func TestOpenWithoutCapNetRaw(t *testing.T) {
	netnstest.RequirePrivileged(t)
	err := netnstest.WithoutCaps([]int{unix.CAP_NET_RAW}, func() error {
		p, err := Open(0)
		if err == nil {
			p.Close()
			return errors.New("Open succeeded")
		}
		return err
	})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, unix.EPERM) {
		t.Fatalf("Open without CAP_NET_RAW: %v, want ErrUnavailable and EPERM", err)
	}
	t.Log(err)
}

// TestProbeAfterClose: a closed Prober refuses to probe.
func TestProbeAfterClose(t *testing.T) {
	netnstest.RequirePrivileged(t)
	p, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	err = p.Probe(Request{Index: 1, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Src: netip.MustParseAddr("127.0.0.1"), Gateway: netip.MustParseAddr("127.0.0.2")})
	if !errors.Is(err, os.ErrClosed) {
		t.Fatalf("Probe after Close: %v, want os.ErrClosed", err)
	}
}
