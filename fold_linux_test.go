package netmon

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// These tests drive the Monitor's fold with constructed linkwatch events,
// so every rule of the state model is checked deterministically. The
// integration tests in monitor_linux_test.go drive the same rules through
// the real kernel.

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

func upLink(idx int, name string) linkwatch.Link {
	return linkwatch.Link{Index: idx, Name: name, AdminUp: true, Carrier: true, Oper: linkwatch.OperUp, MTU: 1500}
}

func globalAddr(idx int, name, p string) linkwatch.Addr {
	return linkwatch.Addr{Index: idx, Iface: name, Prefix: netip.MustParsePrefix(p), Valid: linkwatch.Forever,
		Preferred: linkwatch.Forever, Flags: unix.IFA_F_PERMANENT, Observed: t0}
}

func defRoute(idx int, name, gw string, metric int) linkwatch.Route {
	return linkwatch.Route{Index: idx, Iface: name, Dst: netip.MustParsePrefix("0.0.0.0/0"),
		Gateway: netip.MustParseAddr(gw), Metric: metric, Table: unix.RT_TABLE_MAIN}
}

// newTestMonitor returns a Monitor that is not running: the test feeds it
// events through apply.
func newTestMonitor(t *testing.T, o Options) *Monitor {
	t.Helper()
	o.Wifi, o.DHCP, o.SockErrors = "off", "off", "off"
	if o.Stabilize == 0 {
		o.Stabilize = -1
	}
	m, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	m.subscribed.Store(true)
	m.lookup = m.mainTableLookup
	t.Cleanup(m.gate.Shutdown)
	return m
}

// mainTableLookup stands in for the kernel's route lookup in tests that
// feed the Monitor constructed events. It reads the Monitor's own copy of
// the routes as the kernel reads its main table with no policy rules and
// ignore_routes_with_linkdown=0 (the default; fib_table_lookup in
// net/ipv4/fib_trie.c skips a linkdown next hop only when that sysctl is
// set): a destination inside an interface's address prefix is on-link
// there; else the default route of its family with the lowest metric
// wins, whether or not its link has carrier.
func (m *Monitor) mainTableLookup(dst netip.Addr, mark uint32) (linkwatch.Path, error) {
	p := linkwatch.Path{Dst: dst, Mark: mark}
	for _, i := range sortedIndexes(m.ifaces) {
		f := m.ifaces[i]
		for _, a := range f.addrs {
			if a.Prefix.Bits() < a.Prefix.Addr().BitLen() && a.Prefix.Masked().Contains(dst) && f.link.AdminUp {
				p.Index, p.Src, p.Table = i, a.Prefix.Addr(), unix.RT_TABLE_MAIN
				return p, nil
			}
		}
	}
	var best *linkwatch.Route
	for _, i := range sortedIndexes(m.ifaces) {
		for _, r := range m.ifaces[i].routes {
			if r.Dst.Addr().Is4() == dst.Is4() && (best == nil || r.Metric < best.Metric) {
				best = &r
			}
		}
	}
	if best == nil {
		p.Err = fmt.Errorf("%w: %s: %w", linkwatch.ErrNoPath, dst, unix.ENETUNREACH)
		return p, nil
	}
	p.Index, p.Gateway, p.Table = best.Index, best.Gateway, best.Table
	return p, nil
}

func (m *Monitor) apply(ev linkwatch.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applyLinkLocked(ev)
}

// drain returns the queued events and forgets them.
func (m *Monitor) drain() []Event {
	return m.queue.Drain()
}

func baselineUp() linkwatch.Baseline {
	return linkwatch.Baseline{At: t0, State: linkwatch.State{
		Links:  map[int]linkwatch.Link{2: upLink(2, "wlan0")},
		Addrs:  []linkwatch.Addr{globalAddr(2, "wlan0", "10.0.0.5/24")},
		Routes: []linkwatch.Route{defRoute(2, "wlan0", "10.0.0.1", 600)},
	}}
}

func wantStatus(t *testing.T, m *Monitor, state State, reason Reason) {
	t.Helper()
	s := m.Status()
	if s.State != state || s.Reason != reason {
		t.Fatalf("status = %v/%q, want %v/%q", s.State, s.Reason, state, reason)
	}
	if open := m.gate.State().Open; open != state.CanSend() {
		t.Fatalf("gate open = %v in state %v", open, state)
	}
}

func TestMonitorStartsUnknownWithGateClosed(t *testing.T) {
	m := newTestMonitor(t, Options{})
	wantStatus(t, m, Unknown, ReasonStarting)
}

func TestMonitorBaselineIsNotAnEdge(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	wantStatus(t, m, Up, ReasonNone)
	evs := m.drain()
	if len(evs) != 1 || evs[0].Kind != EventBaseline || evs[0].Status.State != Up {
		t.Fatalf("events = %+v, want exactly one baseline (up)", evs)
	}
}

func TestMonitorLossReasons(t *testing.T) {
	tests := []struct {
		name   string
		ev     linkwatch.Event
		reason Reason
	}{
		{"carrier lost", linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged,
			Link: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(2, "wlan0")}, ReasonCarrierLost},
		{"dormant", linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged,
			Link: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Carrier: true, Oper: linkwatch.OperDormant}, Prev: upLink(2, "wlan0")}, ReasonCarrierLost},
		{"admin down", linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged,
			Link: linkwatch.Link{Index: 2, Name: "wlan0", Oper: linkwatch.OperDown}, Prev: upLink(2, "wlan0")}, ReasonAdminDown},
		{"address removed", linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrRemoved, Addr: globalAddr(2, "wlan0", "10.0.0.5/24")}, ReasonNoAddress},
		{"default route removed", linkwatch.RouteEvent{At: t0, Op: linkwatch.RouteRemoved, Route: defRoute(2, "wlan0", "10.0.0.1", 600)}, ReasonNoDefaultRoute},
		{"link removed", linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkRemoved, Link: upLink(2, "wlan0")}, ReasonNoInterface},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newTestMonitor(t, Options{})
			m.apply(baselineUp())
			m.apply(tt.ev)
			wantStatus(t, m, Down, tt.reason)
		})
	}
}

// TestMonitorStaleLinkdownFlag: the kernel flags the default route
// linkdown when the carrier goes and clears the flag silently when it
// returns. Between the carrier-up event and linkwatch's re-read of the
// routes, the flag is stale; the state must go straight back to up, not
// pass through no-default-route.
func TestMonitorStaleLinkdownFlag(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	down := linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
	flagged := defRoute(2, "wlan0", "10.0.0.1", 600)
	flagged.LinkDown = true
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged, Link: down, Prev: upLink(2, "wlan0")})
	m.apply(linkwatch.RouteEvent{At: t0, Op: linkwatch.RouteChanged, Route: flagged, Prev: defRoute(2, "wlan0", "10.0.0.1", 600)})
	wantStatus(t, m, Down, ReasonCarrierLost)
	m.drain()
	m.apply(linkwatch.LinkEvent{At: t0.Add(time.Second), Op: linkwatch.LinkChanged, Link: upLink(2, "wlan0"), Prev: down})
	wantStatus(t, m, Up, ReasonNone)
	for _, ev := range m.drain() {
		if ev.Kind == EventState && ev.Status.Reason == ReasonNoDefaultRoute {
			t.Fatalf("state passed through no-default-route: %s", ev.Msg)
		}
	}
}

func TestMonitorTentativeAddressIsNotUsable(t *testing.T) {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	b.State.Addrs[0].Flags |= unix.IFA_F_TENTATIVE
	m.apply(b)
	wantStatus(t, m, Down, ReasonNoAddress)
	a := b.State.Addrs[0]
	a.Flags &^= unix.IFA_F_TENTATIVE
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrChanged, Addr: a})
	wantStatus(t, m, Up, ReasonNone)
}

func TestMonitorFailoverPicksLowestMetricAndSignalsRebind(t *testing.T) {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	b.State.Links[3] = upLink(3, "eth0")
	b.State.Addrs = append(b.State.Addrs, globalAddr(3, "eth0", "192.168.7.2/24"))
	b.State.Routes = append(b.State.Routes, defRoute(3, "eth0", "192.168.7.1", 100))
	m.apply(b)
	if s := m.Status(); s.State != Up || s.Iface != "eth0" {
		t.Fatalf("status = %+v, want up on eth0 (metric 100 < 600)", s)
	}
	rebind := m.RebindC()
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged,
		Link: linkwatch.Link{Index: 3, Name: "eth0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(3, "eth0")})
	// The kernel keeps routing through eth0 (its route is only flagged
	// linkdown) until a network manager removes the route: down.
	wantStatus(t, m, Down, ReasonCarrierLost)
	m.apply(linkwatch.RouteEvent{At: t0, Op: linkwatch.RouteRemoved, Route: defRoute(3, "eth0", "192.168.7.1", 100)})
	if s := m.Status(); s.State != Up || s.Iface != "wlan0" {
		t.Fatalf("status = %+v, want up on wlan0 after eth0 lost carrier and its route", s)
	}
	select {
	case <-rebind:
	default:
		t.Fatal("uplink moved to another interface without a rebind signal")
	}
	if r := m.LastRebind(); r.Reason != "uplink-changed" || r.Iface != "eth0" {
		t.Fatalf("rebind = %+v", r)
	}
}

func TestMonitorAddressRemovalSignalsRebind(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	rebind := m.RebindC()
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrRemoved, Addr: globalAddr(2, "wlan0", "10.0.0.5/24")})
	select {
	case <-rebind:
	default:
		t.Fatal("no rebind signal after the address went away")
	}
	if r := m.LastRebind(); r.Addr != netip.MustParsePrefix("10.0.0.5/24") || r.Reason != "address-removed" {
		t.Fatalf("rebind = %+v", r)
	}
}

func TestMonitorFlapJournal(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.apply(linkwatch.LinkEvent{At: t0.Add(time.Second), Op: linkwatch.LinkChanged,
		Link: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(2, "wlan0")})
	m.apply(linkwatch.LinkEvent{At: t0.Add(3500 * time.Millisecond), Op: linkwatch.LinkChanged,
		Link: upLink(2, "wlan0"), Prev: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}})
	wantStatus(t, m, Up, ReasonNone)
	fl := m.Flaps()
	if len(fl) != 1 {
		t.Fatalf("flaps = %+v, want 1", fl)
	}
	if fl[0].Cause != ReasonCarrierLost || fl[0].Duration != 2500*time.Millisecond || fl[0].Iface != "wlan0" {
		t.Fatalf("flap = %+v, want carrier-lost on wlan0 for 2.5s", fl[0])
	}
	var kinds []string
	for _, e := range m.drain() {
		kinds = append(kinds, string(e.Kind))
	}
	if got, want := strings.Join(kinds, ","), "baseline,link,state,link,flap,state"; got != want {
		t.Fatalf("events = %s, want %s", got, want)
	}
}

// TestMonitorPrunesFactsOfRemovedLinks: a removed link's Wi-Fi and lease
// facts go with it, so that a link that gets its index next does not
// inherit an SSID or a lease.
func TestMonitorPrunesFactsOfRemovedLinks(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.mu.Lock()
	m.wifiInfo[2] = &WifiInfo{Associated: true, SSID: "robots"}
	m.dhcpInfo[2] = &DHCPInfo{Phase: "bound"}
	m.mu.Unlock()
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkRemoved, Link: upLink(2, "wlan0")})
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkAdded, Link: upLink(2, "eth9")})
	m.mu.Lock()
	defer m.mu.Unlock()
	if w, d := m.wifiInfo[2], m.dhcpInfo[2]; w != nil || d != nil {
		t.Fatalf("index 2 after its link went: wifi %+v, dhcp %+v; want none", w, d)
	}
}

func TestJournalKeepsLastN(t *testing.T) {
	j := newJournal(3)
	for i := range 5 {
		j.add(Flap{Start: t0.Add(time.Duration(i) * time.Minute), End: t0.Add(time.Duration(i)*time.Minute + time.Second), Duration: time.Second})
	}
	l := j.list()
	if len(l) != 3 || !l[0].Start.Equal(t0.Add(2*time.Minute)) || !l[2].Start.Equal(t0.Add(4*time.Minute)) {
		t.Fatalf("list = %+v, want flaps 2..4 oldest first", l)
	}
	if j.total != 5 || j.down != 5*time.Second {
		t.Fatalf("total %d down %v", j.total, j.down)
	}
	if n := j.since(t0.Add(3 * time.Minute)); n != 2 {
		t.Fatalf("since = %d, want 2", n)
	}
	// Every count, across the ring's wrap, against a plain count of the
	// list; and before the ring is full.
	for k := range 7 {
		from := t0.Add(time.Duration(k) * time.Minute)
		want := 0
		for _, f := range j.list() {
			if !f.End.Before(from) {
				want++
			}
		}
		if n := j.since(from); n != want {
			t.Errorf("since(minute %d) = %d, want %d", k, n, want)
		}
	}
	j2 := newJournal(3)
	j2.add(Flap{End: t0})
	if n := j2.since(t0.Add(-time.Second)); n != 1 {
		t.Errorf("one flap kept: since = %d, want 1", n)
	}
	if n := newJournal(0); n.since(t0) != 0 {
		t.Error("an empty journal counted a flap")
	}
}

// unreachN counts unreach calls, so that they alternate between two
// destinations: a stall, not one dead peer (see stall.go).
var unreachN atomic.Int32

// unreach is a connect that failed with ENETUNREACH, towards 198.51.100.1
// and 198.51.100.2 in turn.
func unreach() error {
	ip := net.IPv4(198, 51, 100, byte(1+unreachN.Add(1)%2))
	return unreachTo(ip)
}

// unreachTo is a connect towards ip that failed with ENETUNREACH.
func unreachTo(ip net.IP) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: ip, Port: 443},
		Err: os.NewSyscallError("connect", syscall.ENETUNREACH)}
}

func refused() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
}

func TestMonitorSendErrorsCloseTheGateUntilSuccess(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 5})
	m.apply(baselineUp())
	for i := range 4 {
		ex := m.Report(unreach())
		if ex.Cause != CauseUnexplained || ex.Class != classify.Network {
			t.Fatalf("report %d = %+v, want unexplained network", i, ex)
		}
	}
	wantStatus(t, m, Degraded, ReasonSendErrors)
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	m.ReportSuccess()
	wantStatus(t, m, Up, ReasonNone)
}

func TestMonitorSendErrorsEndOnKernelChange(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	m.apply(baselineUp())
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrAdded, Addr: globalAddr(2, "wlan0", "10.0.0.6/24")})
	wantStatus(t, m, Up, ReasonNone)
}

func TestMonitorRefusedNeverClosesTheGate(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	m.apply(baselineUp())
	for range 50 {
		ex := m.Report(refused())
		if ex.Cause != CausePeer {
			t.Fatalf("cause = %v, want peer", ex.Cause)
		}
		if s := ex.String(); s != "ECONNREFUSED from the peer while wlan0 was up" {
			t.Fatalf("explanation = %q", s)
		}
	}
	wantStatus(t, m, Up, ReasonNone)
}

func TestMonitorReportWhileDownExplainsOutage(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.apply(linkwatch.RouteEvent{At: time.Now(), Op: linkwatch.RouteRemoved, Route: defRoute(2, "wlan0", "10.0.0.1", 600)})
	ex := m.Report(fmt.Errorf("send telemetry: %w", unreach()))
	if ex.Cause != CauseLinkDown || ex.Status.Reason != ReasonNoDefaultRoute {
		t.Fatalf("explanation = %+v", ex)
	}
	if s := ex.String(); !strings.HasPrefix(s, "ENETUNREACH ") || !strings.Contains(s, "into an outage of wlan0 (no-default-route)") {
		t.Fatalf("explanation text = %q", s)
	}
	// Counted by class and cause.
	if n := m.Stats().Reports[classify.Network][CauseLinkDown]; n != 1 {
		t.Fatalf("count = %d", n)
	}
}

func TestMonitorWifiAndDHCPCauses(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	now := time.Now()
	m.mu.Lock()
	w := &WifiInfo{Associated: true, SSID: "robots", BSSID: "aa:bb:cc:00:00:01", SignalDBm: -81, Band: "weak"}
	d := &DHCPInfo{Phase: "renewing", Expires: now.Add(time.Hour)}
	m.wifiInfo[2], m.dhcpInfo[2] = w, d
	m.evaluateLocked(now)
	m.mu.Unlock()
	wantStatus(t, m, Degraded, ReasonDHCPRenewing)
	ex := m.Report(unreach())
	if ex.Cause != CauseDHCPRenewing || ex.Signal != -81 {
		t.Fatalf("explanation = %+v", ex)
	}
	if s := ex.String(); s != "ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm" {
		t.Fatalf("text = %q", s)
	}
	m.mu.Lock()
	d.Phase = "bound"
	m.evaluateLocked(now)
	m.mu.Unlock()
	wantStatus(t, m, Degraded, ReasonWeakSignal)
	m.mu.Lock()
	w.Disconnected = true
	m.evaluateLocked(now)
	m.mu.Unlock()
	wantStatus(t, m, Down, ReasonWifiDisconnect)
}

func TestAnnotateKeepsChain(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged,
		Link: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(2, "wlan0")})
	err := m.Annotate(fmt.Errorf("send telemetry: %w", unreach()))
	if !errors.Is(err, syscall.ENETUNREACH) {
		t.Fatal("errors.Is lost the errno")
	}
	var ae *AnnotatedError
	if !errors.As(err, &ae) || ae.Snapshot.State != Down {
		t.Fatalf("errors.As: %v", err)
	}
	msg := err.Error()
	if strings.Contains(msg, "\n") || !strings.Contains(msg, "[netmon: down carrier-lost wlan0 ") || !strings.HasSuffix(msg, " ago]") {
		t.Fatalf("message = %q", msg)
	}
	if m.Annotate(nil) != nil {
		t.Fatal("Annotate(nil) != nil")
	}
	joined := m.Annotate(errors.Join(errors.New("send a: broken pipe"), errors.New("send b: reset\r")))
	if msg := joined.Error(); !strings.HasPrefix(msg, "send a: broken pipe; send b: reset [netmon: down ") || strings.ContainsAny(msg, "\r\n") {
		t.Fatalf("joined message = %q, want one line", msg)
	}
}

// TestNextWakePassedDeadlinesAreDue: a stabilisation window or a
// send-errors hold that ends while the loop handles another event must be
// acted on at once, not after the loop's idle minute.
func TestNextWakePassedDeadlinesAreDue(t *testing.T) {
	m := newTestMonitor(t, Options{Stabilize: 2 * time.Second})
	down := linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
	m.apply(baselineUp())
	m.apply(linkwatch.LinkEvent{At: t0.Add(time.Second), Op: linkwatch.LinkChanged, Link: down, Prev: upLink(2, "wlan0")})
	m.apply(linkwatch.LinkEvent{At: t0.Add(2 * time.Second), Op: linkwatch.LinkChanged, Link: upLink(2, "wlan0"), Prev: down})
	wantStatus(t, m, Down, ReasonCarrierLost) // inside the window
	m.mu.Lock()
	early := m.nextWakeLocked(t0.Add(3 * time.Second))
	late := m.nextWakeLocked(t0.Add(5 * time.Second))
	m.mu.Unlock()
	if early != time.Second {
		t.Errorf("1 s before the window ends: wake in %v, want 1s", early)
	}
	if late > time.Millisecond {
		t.Errorf("1 s after the window ended: wake in %v, want at once", late)
	}

	m = newTestMonitor(t, Options{SendErrorThreshold: 2, SendErrorHold: time.Second})
	m.apply(baselineUp())
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	m.mu.Lock()
	late = m.nextWakeLocked(m.stall.downAt.Add(2 * time.Second))
	m.mu.Unlock()
	if late > time.Millisecond {
		t.Errorf("after the send-errors hold ended: wake in %v, want at once", late)
	}
}

// TestMonitorReturnOnAnotherInterfaceSignalsRebind: eth0 carried traffic,
// went down with nothing else up, and the path came back on wlan0; senders
// holding sockets bound to eth0 must be told to redial.
func TestMonitorReturnOnAnotherInterfaceSignalsRebind(t *testing.T) {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	b.State.Links[2] = linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
	b.State.Links[3] = upLink(3, "eth0")
	b.State.Addrs = append(b.State.Addrs, globalAddr(3, "eth0", "192.168.7.2/24"))
	b.State.Routes = []linkwatch.Route{defRoute(3, "eth0", "192.168.7.1", 100)}
	m.apply(b)
	if s := m.Status(); s.State != Up || s.Iface != "eth0" {
		t.Fatalf("status = %+v, want up on eth0", s)
	}
	m.apply(linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged,
		Link: linkwatch.Link{Index: 3, Name: "eth0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(3, "eth0")})
	wantStatus(t, m, Down, ReasonCarrierLost)
	// The network manager takes the dead link's route away.
	m.apply(linkwatch.RouteEvent{At: t0, Op: linkwatch.RouteRemoved, Route: defRoute(3, "eth0", "192.168.7.1", 100)})
	rebind := m.RebindC()
	m.apply(linkwatch.LinkEvent{At: t0.Add(time.Second), Op: linkwatch.LinkChanged, Link: upLink(2, "wlan0"),
		Prev: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}})
	m.apply(linkwatch.RouteEvent{At: t0.Add(time.Second), Op: linkwatch.RouteAdded, Route: defRoute(2, "wlan0", "10.0.0.1", 600)})
	if s := m.Status(); s.State != Up || s.Iface != "wlan0" {
		t.Fatalf("status = %+v, want up on wlan0", s)
	}
	select {
	case <-rebind:
	default:
		t.Fatal("the path came back on wlan0 after eth0 carried it, without a rebind signal")
	}
	if r := m.LastRebind(); r.Reason != "uplink-changed" || r.Iface != "eth0" {
		t.Fatalf("rebind = %+v, want uplink-changed from eth0", r)
	}
}

// TestMonitorSendErrorsSurviveIrrelevantKernelMessages: a lifetime refresh
// or a link message that changes nothing about the path is not "the
// kernel reports a change", so it must not end a data-stall verdict.
func TestMonitorSendErrorsSurviveIrrelevantKernelMessages(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	// A verdict that rests on the gateway not answering, which its
	// answering ends (stall.go: an upstream verdict does not end so).
	b := baselineUp()
	b.State.Neighs = append(b.State.Neighs, failedGateway())
	m.apply(b)
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	mtu := upLink(2, "wlan0")
	mtu.MTU = 1400
	for _, ev := range []linkwatch.Event{
		linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrRefreshed, Addr: globalAddr(2, "wlan0", "10.0.0.5/24")},
		linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrChanged, Addr: globalAddr(2, "wlan0", "10.0.0.5/24")},
		linkwatch.LinkEvent{At: t0, Op: linkwatch.LinkChanged, Link: mtu, Prev: upLink(2, "wlan0")},
		linkwatch.NeighEvent{At: t0, Neigh: linkwatch.Neigh{Index: 2, IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_STALE}},
	} {
		m.apply(ev)
		wantStatus(t, m, Down, ReasonSendErrors)
	}
	m.apply(linkwatch.NeighEvent{At: t0, Neigh: linkwatch.Neigh{Index: 2, IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_REACHABLE}})
	wantStatus(t, m, Up, ReasonNone)
}

// TestReportEventCarriesSockerrContract: a reported failure's sockerr line
// carries pid, comm, the errno's name (once) and the explanation, as the
// JSON-lines contract asks of sockerr lines.
func TestReportEventCarriesSockerrContract(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.drain()
	m.Report(unreach())
	var sockerr []Event
	for _, ev := range m.drain() {
		if ev.Kind == EventSockErr {
			sockerr = append(sockerr, ev)
		}
	}
	if len(sockerr) != 1 {
		t.Fatalf("sockerr events = %+v, want one", sockerr)
	}
	enc := zapcore.NewJSONEncoder(zapcore.EncoderConfig{})
	buf, err := enc.EncodeEntry(zapcore.Entry{}, []zap.Field{zap.Inline(sockerr[0])})
	if err != nil {
		t.Fatal(err)
	}
	line := buf.String()
	var obj map[string]any
	if err := json.Unmarshal([]byte(line), &obj); err != nil {
		t.Fatalf("not one JSON object: %v: %s", err, line)
	}
	if obj["pid"] != float64(os.Getpid()) || obj["comm"] == "" || obj["errno"] != "ENETUNREACH" || obj["cause"] == nil {
		t.Fatalf("line = %s, want pid, comm, errno ENETUNREACH and a cause", line)
	}
	if n := strings.Count(line, `"errno"`); n != 1 {
		t.Fatalf("errno appears %d times: %s", n, line)
	}
}

// TestOptionsDHCPTracker: an invalid tracker setting is an error naming
// the option; a valid one, with custom lease files, is accepted.
func TestOptionsDHCPTracker(t *testing.T) {
	_, err := New(Options{DHCPTracker: dhcpwatch.Config{BlipWindow: -time.Second}, Wifi: "off", SockErrors: "off"})
	if err == nil || !strings.Contains(err.Error(), "Options.DHCPTracker") || !strings.Contains(err.Error(), "BlipWindow") {
		t.Fatalf("New: %v, want an error naming Options.DHCPTracker and BlipWindow", err)
	}
	m, err := New(Options{DHCPTracker: dhcpwatch.Config{IPv6: true}, Wifi: "off", SockErrors: "off",
		LeaseFiles: []dhcpwatch.FilePattern{{Glob: t.TempDir() + "/*.leases", Kind: dhcpwatch.Dhclient}}})
	if err != nil {
		t.Fatalf("New with a valid tracker and lease files: %v", err)
	}
	m.gate.Shutdown()
}

// TestNextWakeDeadlinePassedSinceEvaluation: a deadline that passed after
// the last evaluation (the loop handled another event as it fell due) is
// due at once; one that passed before it was already acted on.
func TestNextWakeDeadlinePassedSinceEvaluation(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 5, Recent: 10 * time.Second})
	m.apply(baselineUp())
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Degraded, ReasonSendErrors)
	m.mu.Lock()
	end := m.stall.fails[len(m.stall.fails)-1].at.Add(10 * time.Second) // the send errors stop being recent
	late := m.nextWakeLocked(end.Add(time.Second))
	m.evaluateLocked(end.Add(2 * time.Second))
	after := m.nextWakeLocked(end.Add(3 * time.Second))
	m.mu.Unlock()
	if late > time.Millisecond {
		t.Errorf("recent window ended 1 s ago, not evaluated since: wake in %v, want at once", late)
	}
	wantStatus(t, m, Up, ReasonNone)
	if after <= time.Millisecond {
		t.Errorf("after the evaluation that acted on it, the passed deadline is still due (%v): the loop would spin", after)
	}
}

// TestMonitorNeighbourEventsThatDoNotEndAVerdict: a REACHABLE entry being
// deleted, or another interface's gateway answering, says nothing about
// the stalled uplink's path.
func TestMonitorNeighbourEventsThatDoNotEndAVerdict(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	b := baselineUp()
	b.State.Links[3] = upLink(3, "eth1")
	b.State.Addrs = append(b.State.Addrs, globalAddr(3, "eth1", "192.168.9.2/24"))
	b.State.Routes = append(b.State.Routes, defRoute(3, "eth1", "192.168.9.1", 900))
	// A verdict that rests on the gateway not answering (stall.go).
	b.State.Neighs = append(b.State.Neighs, failedGateway())
	m.apply(b)
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	gw := linkwatch.Neigh{Index: 2, IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_REACHABLE}
	other := linkwatch.Neigh{Index: 3, IP: netip.MustParseAddr("192.168.9.1"), State: unix.NUD_REACHABLE}
	m.apply(linkwatch.NeighEvent{At: t0, Neigh: gw, Removed: true})
	wantStatus(t, m, Down, ReasonSendErrors)
	m.apply(linkwatch.NeighEvent{At: t0, Neigh: other})
	wantStatus(t, m, Down, ReasonSendErrors)
	m.apply(linkwatch.NeighEvent{At: t0, Neigh: gw})
	wantStatus(t, m, Up, ReasonNone)
}

// TestMonitorEndedStaysShutdown: once Run has ended, nothing a sender
// reports changes the status back.
func TestMonitorEndedStaysShutdown(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	m.apply(baselineUp())
	m.Report(unreach())
	m.Report(unreach())
	m.mu.Lock()
	m.endLocked(time.Now())
	m.mu.Unlock()
	m.ReportSuccess()
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonShutdown)
}
