package netmon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/sockwatch"
)

// These tests check that Report decides by the error's class before the
// link's conditions (see Monitor.Report): an answer from the far end is
// the peer's, whatever the Wi-Fi or DHCP does.

// renewing puts interface idx into a DHCP renewal and re-evaluates.
func renewing(m *Monitor, idx int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	m.dhcpInfo[idx] = &DHCPInfo{Phase: "renewing", Expires: now.Add(time.Hour)}
	m.evaluateLocked(now)
}

func nxdomain() error {
	return &net.OpError{Op: "dial", Net: "tcp", Err: &net.DNSError{Err: "no such host", Name: "telemetry.invalid", IsNotFound: true}}
}

func sysErr(op string, n syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(op, n)}
}

func TestReportClassFirstDuringDHCPRenewal(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	m.apply(baselineUp())
	renewing(m, 2)
	wantStatus(t, m, Degraded, ReasonDHCPRenewing)
	tests := []struct {
		name string
		err  error
		want Cause
		text string
	}{
		{"refused", refused(), CausePeer, "ECONNREFUSED from the peer while wlan0 was degraded"},
		{"reset", sysErr("read", syscall.ECONNRESET), CausePeer, "ECONNRESET from the peer while wlan0 was degraded"},
		{"broken pipe", sysErr("write", syscall.EPIPE), CausePeer, "EPIPE from the peer while wlan0 was degraded"},
		{"certificate", fmt.Errorf("post: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}), CausePeer,
			"certificate error from the peer while wlan0 was degraded"},
		{"tls record", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, CausePeer,
			"tls error from the peer while wlan0 was degraded"},
		{"nxdomain", nxdomain(), CausePeer, "dns error from the peer while wlan0 was degraded"},
		{"unreachable", unreach(), CauseDHCPRenewing, "ENETUNREACH during a DHCP renewal of wlan0"},
		{"host unreachable", sysErr("connect", syscall.EHOSTUNREACH), CauseDHCPRenewing, "EHOSTUNREACH during a DHCP renewal of wlan0"},
		{"timeout", sysErr("read", syscall.ETIMEDOUT), CauseDHCPRenewing, "ETIMEDOUT during a DHCP renewal of wlan0"},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "telemetry.example", IsTimeout: true}, CauseDHCPRenewing,
			"dns error during a DHCP renewal of wlan0"},
	}
	for _, tt := range tests {
		ex := m.Report(tt.err)
		if ex.Cause != tt.want || ex.String() != tt.text {
			t.Errorf("%s: cause %v %q, want %v %q", tt.name, ex.Cause, ex.String(), tt.want, tt.text)
		}
	}
	// None of it was unexplained: the detector counted nothing.
	wantStatus(t, m, Degraded, ReasonDHCPRenewing)
	if n := m.Stats().Reports[classify.Connection][CausePeer]; n != 3 {
		t.Errorf("connection/peer count = %d, want 3", n)
	}
}

func TestReportClassFirstAtWeakSignal(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.mu.Lock()
	m.wifiInfo[2] = &WifiInfo{Associated: true, SSID: "robots", SignalDBm: -84, Band: "weak"}
	m.evaluateLocked(time.Now())
	m.mu.Unlock()
	wantStatus(t, m, Degraded, ReasonWeakSignal)
	if ex := m.Report(refused()); ex.Cause != CausePeer || ex.String() != "ECONNREFUSED from the peer while wlan0 was degraded at -84 dBm" {
		t.Errorf("refused: %v %q", ex.Cause, ex)
	}
	if ex := m.Report(nxdomain()); ex.Cause != CausePeer {
		t.Errorf("nxdomain: %v %q", ex.Cause, ex)
	}
	if ex := m.Report(unreach()); ex.Cause != CauseWeakSignal {
		t.Errorf("unreachable: %v %q", ex.Cause, ex)
	}
}

// TestReportWhileDownAnswerProvesAPath: while the state is down a refused
// connection, a certificate or NXDOMAIN still came back from the far end,
// so the outage does not explain it; an unreachable network, a timeout or
// a broken pipe (raised locally) is the outage's.
func TestReportWhileDownAnswerProvesAPath(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	m.apply(linkwatch.RouteEvent{At: time.Now(), Op: linkwatch.RouteRemoved, Route: defRoute(2, "wlan0", "10.0.0.1", 600)})
	wantStatus(t, m, Down, ReasonNoDefaultRoute)
	for _, err := range []error{refused(), sysErr("read", syscall.ECONNRESET), nxdomain(),
		&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}} {
		if ex := m.Report(err); ex.Cause != CausePeer {
			t.Errorf("%v: cause %v %q, want peer", err, ex.Cause, ex)
		}
	}
	if ex := m.Report(refused()); ex.String() != "ECONNREFUSED from the peer while wlan0 was down" {
		t.Errorf("text %q", ex)
	}
	for _, err := range []error{unreach(), sysErr("read", syscall.ETIMEDOUT), sysErr("write", syscall.EPIPE),
		&net.DNSError{Err: "i/o timeout", IsTimeout: true}} {
		if ex := m.Report(err); ex.Cause != CauseLinkDown {
			t.Errorf("%v: cause %v %q, want link-down", err, ex.Cause, ex)
		}
	}
}

// twoUplinks is wlan0 (the uplink: the default route) and eth0 (a LAN,
// no default route), both up.
func twoUplinks() linkwatch.Baseline {
	return linkwatch.Baseline{At: t0, State: linkwatch.State{
		Links:  map[int]linkwatch.Link{2: upLink(2, "wlan0"), 3: upLink(3, "eth0")},
		Addrs:  []linkwatch.Addr{globalAddr(2, "wlan0", "10.0.0.5/24"), globalAddr(3, "eth0", "192.168.7.5/24")},
		Routes: []linkwatch.Route{defRoute(2, "wlan0", "10.0.0.1", 600)},
	}}
}

// sockExplanation feeds m one eBPF-observed failure and returns the
// explanation its sockerr event carries.
func sockExplanation(t *testing.T, m *Monitor, errno syscall.Errno, dst string) (Explanation, Event) {
	t.Helper()
	m.drain()
	e := sockwatch.Event{Time: time.Now(), PID: 4242, TID: 4242, Comm: "uploader", Errno: errno, Op: sockwatch.OpConnect}
	if dst != "" {
		e.Dst = netip.MustParseAddrPort(dst)
	}
	m.mu.Lock()
	m.applySockLocked(e)
	m.mu.Unlock()
	for _, ev := range m.drain() {
		if ev.Kind == EventSockErr && ev.Explanation != nil {
			return *ev.Explanation, ev
		}
	}
	t.Fatalf("no sockerr event for %v to %q", errno, dst)
	return Explanation{}, Event{}
}

// TestSockErrorExplainedByItsRoute: the uplink wlan0 renews its lease
// while eth0 is fine. A failure towards a host on eth0's LAN is explained
// against eth0 (peer, or unexplained), one towards the internet (via
// wlan0) by the renewal; one without a destination against the uplink.
func TestSockErrorExplainedByItsRoute(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(twoUplinks())
	renewing(m, 2)
	wantStatus(t, m, Degraded, ReasonDHCPRenewing)
	tests := []struct {
		errno syscall.Errno
		dst   string
		cause Cause
		iface string
		text  string
	}{
		{syscall.ECONNREFUSED, "192.168.7.20:443", CausePeer, "eth0", "ECONNREFUSED from the peer while wlan0 was degraded via eth0"},
		{syscall.ENETUNREACH, "192.168.7.20:443", CauseUnexplained, "eth0", "ENETUNREACH unexplained by link state of eth0"},
		// A timeout nothing explains may be the path's: unexplained, and
		// evidence for the data-stall detector (stall.go).
		{syscall.ETIMEDOUT, "192.168.7.20:443", CauseUnexplained, "eth0", "ETIMEDOUT unexplained by link state of eth0"},
		{syscall.ENETUNREACH, "203.0.113.9:443", CauseDHCPRenewing, "wlan0", "ENETUNREACH during a DHCP renewal of wlan0"},
		{syscall.ENETUNREACH, "10.0.0.9:443", CauseDHCPRenewing, "wlan0", "ENETUNREACH during a DHCP renewal of wlan0"},
		{syscall.ENETUNREACH, "[::ffff:203.0.113.9]:443", CauseDHCPRenewing, "wlan0", "ENETUNREACH during a DHCP renewal of wlan0"},
		{syscall.ECONNREFUSED, "203.0.113.9:443", CausePeer, "wlan0", "ECONNREFUSED from the peer while wlan0 was degraded"},
		{syscall.ENETUNREACH, "", CauseDHCPRenewing, "wlan0", "ENETUNREACH during a DHCP renewal of wlan0"},
	}
	for _, tt := range tests {
		ex, ev := sockExplanation(t, m, tt.errno, tt.dst)
		if ex.Cause != tt.cause || ex.Iface != tt.iface || ev.Iface != tt.iface || ex.String() != tt.text {
			t.Errorf("%v to %q: cause %v iface %q/%q %q, want %v %q %q", tt.errno, tt.dst, ex.Cause, ex.Iface, ev.Iface, ex.String(),
				tt.cause, tt.iface, tt.text)
		}
	}
	// Report has no destination: the uplink explains it.
	if ex := m.Report(unreach()); ex.Cause != CauseDHCPRenewing || ex.Iface != "wlan0" {
		t.Errorf("report: %v %q", ex.Cause, ex)
	}
}

// TestReportSuccessFastPath: ReportSuccess takes the lock only while the
// data-stall detector holds something, and the bit that says so follows
// the detector: set by a counted failure, cleared by a success, a kernel
// change or the end of the hold, never set by a refused connection.
func TestReportSuccessFastPath(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 2})
	flag := func() bool { return m.stallWord.Load()&stallBit != 0 }
	m.apply(baselineUp())
	m.ReportSuccess()
	if flag() {
		t.Fatal("stall bit set with no failure")
	}
	m.Report(unreach())
	if !flag() {
		t.Fatal("stall bit clear while a failure is counted")
	}
	m.ReportSuccess()
	if flag() || m.Status().Reason != ReasonNone {
		t.Fatalf("after success: bit %v, status %+v", flag(), m.Status())
	}
	m.Report(unreach())
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
	// A kernel change resets the detector, and the bit with it.
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrAdded, Addr: globalAddr(2, "wlan0", "10.0.0.6/24")})
	wantStatus(t, m, Up, ReasonNone)
	if flag() {
		t.Fatal("stall bit still set after a kernel change reset the detector")
	}
	// Refused connections never count.
	m.Report(refused())
	if flag() {
		t.Fatal("stall bit set by a refused connection")
	}
	if n := m.Stats().Successes; n != 1 {
		t.Fatalf("successes = %d, want 1: only the success that ended a count", n)
	}
}

// TestSockErrorRouteFollowsKernelChanges: the interface a destination
// routes through is remembered only until the kernel changes: once eth0
// loses its address, the LAN host routes via wlan0's default route and
// its failures read as wlan0's renewal.
func TestSockErrorRouteFollowsKernelChanges(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(twoUplinks())
	renewing(m, 2)
	if ex, _ := sockExplanation(t, m, syscall.ENETUNREACH, "192.168.7.20:443"); ex.Iface != "eth0" || ex.Cause != CauseUnexplained {
		t.Fatalf("before: %v %q", ex.Cause, ex)
	}
	lookups := m.Stats().RouteLookups
	if ex, _ := sockExplanation(t, m, syscall.ENETUNREACH, "192.168.7.20:443"); ex.Iface != "eth0" {
		t.Fatalf("again: %q", ex)
	}
	if n := m.Stats().RouteLookups - lookups; n != 0 {
		t.Errorf("the same destination again cost %d lookups, want 0 (cached)", n)
	}
	m.apply(linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrRemoved, Addr: globalAddr(3, "eth0", "192.168.7.5/24")})
	if ex, _ := sockExplanation(t, m, syscall.ENETUNREACH, "192.168.7.20:443"); ex.Iface != "wlan0" || ex.Cause != CauseDHCPRenewing {
		t.Fatalf("after eth0 lost its address: %v %q", ex.Cause, ex)
	}
}
