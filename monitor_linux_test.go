package netmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest"
	"golang.org/x/sys/unix"
)

// rig is a Monitor watching namespace a, whose veth va is joined to vb in
// namespace b: a robot (a) and its access point (b).
type rig struct {
	a, b   *netnstest.NS
	m      *Monitor
	events <-chan Event
	cancel context.CancelFunc
	done   chan error
}

func newRig(t *testing.T, o Options) *rig { return newRigSetup(t, o, nil, nil) }

// newRigWifi is newRig with a fake nl80211 whose interfaces the test sets
// up with the real ifindex of va.
func newRigWifi(t *testing.T, o Options, fake *wifiwatchtest.Fake) *rig {
	return newRigSetup(t, o, fake, nil)
}

// newRigSetup is newRigWifi with setup run on the two namespaces before
// the Monitor starts (nil: none).
func newRigSetup(t *testing.T, o Options, fake *wifiwatchtest.Fake, setup func(a, b *netnstest.NS), prep ...func(*Monitor)) *rig {
	t.Helper()
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.210.0.1/24", "dev", "va")
	b.IP("addr", "add", "10.210.0.2/24", "dev", "vb")
	a.IP("route", "add", "default", "via", "10.210.0.2", "dev", "va")
	if setup != nil {
		setup(a, b)
	}
	o.NetNS = a.Handle
	o.Wifi = "off"
	if o.SockErrors == "" {
		o.SockErrors = "off"
	}
	if o.DHCP == "" {
		o.DHCP = "off"
	}
	if fake != nil {
		o.Wifi = "auto"
		idx := a.NetlinkHandle()
		l, err := idx.LinkByName("va")
		if err != nil {
			t.Fatal(err)
		}
		fake.SetInterface(wifiwatchtest.Interface{Index: l.Attrs().Index, Name: "va", MAC: l.Attrs().HardwareAddr})
		fake.Associate(l.Attrs().Index, "robots", net.HardwareAddr{0xaa, 0xbb, 0xcc, 0, 0, 1}, 5180, -55)
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	if fake != nil {
		m.wifiDial = fake.Dial
	}
	for _, f := range prep {
		f(m)
	}
	r := &rig{a: a, b: b, m: m, events: m.Events(), done: make(chan error, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	go func() { r.done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range r.events {
		}
		if err := <-r.done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	})
	return r
}

// waitState reads events until a baseline or state event with the wanted
// state and reason arrives, under one deadline for the whole wait.
func (r *rig) waitState(t *testing.T, state State, reason Reason) Event {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				t.Fatalf("events closed while waiting for %v/%s", state, reason)
			}
			t.Logf("event %s %s %s %v/%s", ev.Kind, ev.Iface, ev.Msg, ev.Status.State, ev.Status.Reason)
			if (ev.Kind == EventBaseline || ev.Kind == EventState) && ev.Status.State == state && ev.Status.Reason == reason {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no %v/%s state within 20s; status %+v", state, reason, r.m.Status())
		}
	}
}

// waitKind reads events until one of the kind arrives.
func (r *rig) waitKind(t *testing.T, kind EventKind) Event {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for {
		select {
		case ev, ok := <-r.events:
			if !ok {
				t.Fatalf("events closed while waiting for %s", kind)
			}
			t.Logf("event %s %s %s", ev.Kind, ev.Iface, ev.Msg)
			if ev.Kind == kind {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("no %s event within 10s", kind)
		}
	}
}

// waitSockOn reads events until the notice that the socket-error tracer,
// which loads after the baseline, is on.
func (r *rig) waitSockOn(t *testing.T) {
	t.Helper()
	for {
		ev := r.waitKind(t, EventNotice)
		if strings.HasPrefix(ev.Msg, "socket-error tracer on") {
			return
		}
		if strings.HasPrefix(ev.Msg, "socket errors not watched") {
			t.Fatalf("the tracer did not load: %s", ev.Msg)
		}
	}
}

func TestIntegrationMonitorCarrierLossClosesGate(t *testing.T) {
	t.Parallel()
	// A stabilisation window is an option (off by default): set, the
	// return waits it out.
	r := newRig(t, Options{Stabilize: 200 * time.Millisecond})
	r.waitState(t, Up, ReasonNone)
	if !r.m.Gate().State().Open {
		t.Fatal("gate closed while up")
	}
	r.b.IP("link", "set", "vb", "down")
	ev := r.waitState(t, Down, ReasonCarrierLost)
	if ev.Iface != "va" {
		t.Fatalf("iface = %q, want va", ev.Iface)
	}
	if gs := r.m.Gate().State(); gs.Open || gs.Reason.Code != string(ReasonCarrierLost) || gs.Reason.Iface != "va" {
		t.Fatalf("gate = %+v, want closed for carrier-lost on va", gs)
	}
	r.b.IP("link", "set", "vb", "up")
	var carrierUp time.Time
	for carrierUp.IsZero() {
		if ev := r.waitKind(t, EventLink); ev.Iface == "va" && ev.Msg == "carrier up" {
			carrierUp = ev.At
		}
	}
	up := r.waitState(t, Up, ReasonNone)
	if !r.m.Gate().State().Open {
		t.Fatal("gate still closed after the stabilisation window")
	}
	// The return waited out the stabilisation window (200 ms, as set)
	// after the carrier came back: event times, not a timed assertion.
	if d := up.At.Sub(carrierUp); d < 200*time.Millisecond {
		t.Fatalf("up %v after the carrier returned, want the 200ms stabilisation window first", d)
	}
	fl := r.m.Flaps()
	if len(fl) != 1 || fl[0].Cause != ReasonCarrierLost || fl[0].Duration <= 0 {
		t.Fatalf("flaps = %+v", fl)
	}
}

func TestIntegrationMonitorRouteAndAddressLoss(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	r.waitState(t, Up, ReasonNone)
	r.a.IP("route", "del", "default")
	r.waitState(t, Down, ReasonNoDefaultRoute)
	r.a.IP("route", "add", "default", "via", "10.210.0.2", "dev", "va")
	r.waitState(t, Up, ReasonNone)

	rebind := r.m.RebindC()
	r.a.IP("addr", "del", "10.210.0.1/24", "dev", "va")
	r.waitState(t, Down, ReasonNoAddress)
	select {
	case <-rebind:
	default:
		t.Fatal("address removal did not signal a rebind")
	}
	if rb := r.m.LastRebind(); rb.Addr.String() != "10.210.0.1/24" {
		t.Fatalf("rebind = %+v", rb)
	}
}

// liveServer listens on 10.210.0.2:7000 in the rig's peer namespace and
// accepts (and closes) connections until the test ends.
func (r *rig) liveServer(t *testing.T) {
	t.Helper()
	var ln net.Listener
	if err := r.b.Do(func() (err error) {
		ln, err = net.Listen("tcp", "10.210.0.2:7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	netnstest.Serve(t, ln, func(c net.Conn) { c.Close() })
}

// dial connects from the rig's namespace with a short timeout.
func (r *rig) dial(addr string) error {
	var dialErr error
	_ = r.a.Do(func() error {
		c, err := net.DialTimeout("tcp", addr, 300*time.Millisecond)
		if err == nil {
			c.Close()
		}
		dialErr = err
		return nil
	})
	return dialErr
}

// TestIntegrationMonitorDeadPeerHoldsNobody: one sender retries an on-link
// host that never answers ARP (EHOSTUNREACH from the kernel), another
// talks to a live server. The dead host's failures are its own: the live
// sender is never held.
func TestIntegrationMonitorDeadPeerHoldsNobody(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{SendErrorThreshold: 3})
	r.waitState(t, Up, ReasonNone)
	r.liveServer(t)
	// Give up on an unanswered neighbour after one probe of 100 ms.
	r.a.Sysctl("net/ipv4/neigh/va/mcast_solicit", "1")
	r.a.Sysctl("net/ipv4/neigh/va/retrans_time_ms", "100")
	for i := range 8 {
		err := r.dial("10.210.0.99:9")
		if !errors.Is(err, unix.EHOSTUNREACH) {
			t.Fatalf("dial of a host that never answers ARP: %v, want EHOSTUNREACH", err)
		}
		if ex := r.m.Report(err); ex.Cause != CauseUnexplained {
			t.Fatalf("failure %d explained as %v, want unexplained", i, ex.Cause)
		}
		// Report folds synchronously: a closed Gate would show now.
		if !r.m.Gate().State().Open {
			t.Fatalf("after %d failures towards one dead host the Gate closed: %+v", i+1, r.m.Status())
		}
		if err := r.m.Gate().Do(context.Background(), func(context.Context) error { return r.dial("10.210.0.2:7000") }); err != nil {
			t.Fatalf("live sender: %v", err)
		}
	}
	if s := r.m.Status(); s.State != Up {
		t.Fatalf("status %+v, want up: one dead peer is not a stall", s)
	}
}

// TestIntegrationMonitorStallAcrossDestinations: the uplink looks fine but
// nothing beyond the gateway answers (the peer namespace forwards
// nothing, so every packet to the internet is dropped silently): connects
// to two destinations time out, the state goes down with send-errors, and
// a send that succeeds brings it back.
func TestIntegrationMonitorStallAcrossDestinations(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{SendErrorThreshold: 4})
	r.waitState(t, Up, ReasonNone)
	r.liveServer(t)
	for i := range 4 {
		err := r.dial(fmt.Sprintf("198.51.100.%d:443", 1+i%2))
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("dial beyond a gateway that forwards nothing: %v, want a timeout", err)
		}
		r.m.Report(err)
	}
	r.waitState(t, Down, ReasonSendErrors)
	if r.m.Gate().State().Open {
		t.Fatal("gate open during a send-errors outage")
	}
	// A sender outside the Gate gets through: the path works.
	if err := r.dial("10.210.0.2:7000"); err != nil {
		t.Fatal(err)
	}
	r.m.ReportSuccess()
	r.waitState(t, Up, ReasonNone)
}

// TestIntegrationMonitorRefusedKeepsGateOpen: a peer that refuses
// connections (a real RST from the other namespace) concerns that peer,
// not the network: however many refusals senders report, the state stays
// up and the Gate open, while as many unexplained ENETUNREACH close it.
func TestIntegrationMonitorRefusedKeepsGateOpen(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{SendErrorThreshold: 3})
	r.waitState(t, Up, ReasonNone)
	var dialErr error
	if err := r.a.Do(func() error {
		c, err := net.DialTimeout("tcp", "10.210.0.2:1", 5*time.Second)
		if err == nil {
			c.Close()
		}
		dialErr = err
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(dialErr, unix.ECONNREFUSED) {
		t.Fatalf("dial = %v, want ECONNREFUSED from the peer namespace", dialErr)
	}
	for range 20 {
		if ex := r.m.Report(dialErr); ex.Cause != CausePeer {
			t.Fatalf("refused explained as %v, want peer", ex.Cause)
		}
	}
	// Report folds synchronously: a state change would be visible now.
	if s := r.m.Status(); s.State != Up || !r.m.Gate().State().Open {
		t.Fatalf("after 20 refusals: status %+v, gate open %v; want up and open", s, r.m.Gate().State().Open)
	}
	for i := range 3 {
		r.m.Report(&net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(198, 51, 100, byte(1+i%2)), Port: 443},
			Err: os.NewSyscallError("connect", unix.ENETUNREACH)})
	}
	r.waitState(t, Down, ReasonSendErrors)
}

func TestIntegrationMonitorGatewayFailed(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	r.waitState(t, Up, ReasonNone)
	// A gateway nobody owns, probed once 100 ms apart: its neighbour
	// entry goes FAILED quickly when a packet needs it.
	r.a.Sysctl("net/ipv4/neigh/va/mcast_solicit", "1")
	r.a.Sysctl("net/ipv4/neigh/va/ucast_solicit", "1")
	r.a.Sysctl("net/ipv4/neigh/va/retrans_time_ms", "100")
	r.a.IP("route", "replace", "default", "via", "10.210.0.9", "dev", "va")
	r.waitKind(t, EventRoute)
	_ = r.a.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		_ = unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 9})
		return nil
	})
	r.waitState(t, Degraded, ReasonGatewayFailed)
}

func TestIntegrationMonitorWifiDisconnectBeatsCarrier(t *testing.T) {
	t.Parallel()
	fake := wifiwatchtest.New()
	r := newRigWifi(t, Options{WifiPollInterval: time.Hour}, fake)
	r.waitState(t, Up, ReasonNone)
	// The Wi-Fi watcher joins the nl80211 multicast groups before its
	// first read, so its baseline proves a disconnect sent now is heard
	// (sent earlier, it would reach nobody, and with hourly polls it would
	// never be noticed: the failure CI once saw).
	for ev := r.waitKind(t, EventWifi); !strings.HasPrefix(ev.Msg, "Wi-Fi baseline"); ev = r.waitKind(t, EventWifi) {
	}
	idx := 0
	for _, is := range r.m.Snapshot().Interfaces {
		if is.Name == "va" {
			idx = is.Index
		}
	}
	// The radio reports the disconnect; the kernel's carrier is still up.
	fake.Disconnect(idx, 4, true)
	ev := r.waitState(t, Down, ReasonWifiDisconnect)
	if ev.Iface != "va" || r.m.Gate().State().Open {
		t.Fatalf("event %+v, gate %+v", ev, r.m.Gate().State())
	}
	// Back on the same network through another access point within the
	// roam window: a roam, so the state is degraded (roamed), not up.
	fake.Associate(idx, "robots", net.HardwareAddr{0xaa, 0xbb, 0xcc, 0, 0, 2}, 5180, -60)
	r.waitState(t, Degraded, ReasonRoamed)
	fl := r.m.Flaps()
	if len(fl) != 1 || fl[0].Cause != ReasonWifiDisconnect || fl[0].Detail != "802.11 reason 4" ||
		fl[0].SignalBefore != -55 || fl[0].BSSIDBefore != "aa:bb:cc:00:00:01" || fl[0].BSSIDAfter != "aa:bb:cc:00:00:02" {
		t.Fatalf("flaps = %+v", fl)
	}
}

func TestIntegrationMonitorLeaseLifetimes(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{DHCP: "auto", LeaseMargin: time.Second})
	r.waitState(t, Up, ReasonNone)
	// The address a DHCP client installs: finite lifetimes, as Debian's
	// dhclient-script, networkd and NetworkManager do. With a 12 s lease
	// the tracker calls it renewing about 3 s (its slack) after T1 (6.9 s)
	// and it expires at 12 s.
	r.a.IP("addr", "del", "10.210.0.1/24", "dev", "va")
	r.waitState(t, Down, ReasonNoAddress)
	r.a.IP("addr", "add", "10.210.0.7/24", "dev", "va", "valid_lft", "12", "preferred_lft", "12")
	r.a.IP("route", "add", "default", "via", "10.210.0.2", "dev", "va")
	r.waitState(t, Degraded, ReasonDHCPRenewing)
	// The next state is the end of the lease, named as such.
	ev := r.waitKind(t, EventState)
	if ev.Status.State != Down || ev.Status.Reason != ReasonLeaseExpired {
		t.Fatalf("after renewing: %v/%s, want down/lease-expired", ev.Status.State, ev.Status.Reason)
	}
}

// TestIntegrationMonitorShutdown: when Run returns, a held sender gets
// gate.ErrShutdown, the status says down for shutdown, a Report after the
// end neither panics nor queues events, and Run refuses to start again.
func TestIntegrationMonitorShutdown(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{})
	r.waitState(t, Up, ReasonNone)
	r.b.IP("link", "set", "vb", "down")
	r.waitState(t, Down, ReasonCarrierLost)
	held := make(chan error, 1)
	go func() { held <- r.m.Gate().Wait(context.Background()) }()
	r.cancel()
	for range r.events {
	}
	if err := <-held; !errors.Is(err, gate.ErrShutdown) {
		t.Fatalf("held sender got %v, want gate.ErrShutdown", err)
	}
	if s := r.m.Status(); s.State != Down || s.Reason != ReasonShutdown {
		t.Fatalf("status after Run = %+v, want down/shutdown", s)
	}
	r.m.Report(&net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", unix.ENETUNREACH)})
	if pending, _, _ := r.m.queue.Stats(); pending != 0 {
		t.Fatalf("%d events queued after the Events channel closed", pending)
	}
	if err := r.m.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Run = %v, want ErrClosed", err)
	}
}
