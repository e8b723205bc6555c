package netmon

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/sockwatch"
	"golang.org/x/sys/unix"
)

func benchMonitor(b *testing.B) *Monitor {
	b.Helper()
	m, err := New(Options{Wifi: "off", DHCP: "off", SockErrors: "off", Stabilize: -1})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(m.gate.Shutdown)
	m.mu.Lock()
	m.applyLinkLocked(baselineUp())
	m.wifiInfo[2] = &WifiInfo{Associated: true, SSID: "robots", BSSID: "aa:bb:cc:00:00:01", SignalDBm: -70, Band: "fair"}
	m.evaluateLocked(time.Now())
	m.mu.Unlock()
	return m
}

// BenchmarkReport measures classify + correlate for one reported error:
// a refused connection while up (cause peer) and an unreachable network
// while down (cause link-down).
func BenchmarkReport(b *testing.B) {
	b.Run("refused-up", func(b *testing.B) {
		m := benchMonitor(b)
		err := fmt.Errorf("send: %w", refused())
		b.ReportAllocs()
		for b.Loop() {
			m.Report(err)
		}
	})
	b.Run("unreachable-down", func(b *testing.B) {
		m := benchMonitor(b)
		m.apply(linkwatch.RouteEvent{At: time.Now(), Op: linkwatch.RouteRemoved, Route: defRoute(2, "wlan0", "10.0.0.1", 600)})
		err := fmt.Errorf("send: %w", unreach())
		b.ReportAllocs()
		for b.Loop() {
			m.Report(err)
		}
	})
}

func BenchmarkSnapshot(b *testing.B) {
	m := benchMonitor(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Snapshot()
	}
}

// BenchmarkAnnotate annotates an error with an empty flap journal and with
// a full one (256 flaps, some in the last 5 minutes).
func BenchmarkAnnotate(b *testing.B) {
	for _, flaps := range []int{0, 256} {
		b.Run(fmt.Sprintf("flaps=%d", flaps), func(b *testing.B) {
			m := benchMonitor(b)
			now := time.Now()
			for i := range flaps {
				end := now.Add(-time.Duration(flaps-i) * 10 * time.Second)
				m.journal.add(Flap{Start: end.Add(-time.Second), End: end, Duration: time.Second, Cause: ReasonCarrierLost})
			}
			err := unreach()
			b.ReportAllocs()
			for b.Loop() {
				_ = m.Annotate(err).Error()
			}
		})
	}
}

// BenchmarkEvaluate measures one evaluation of the state (every target's
// path judged, the overall verdict) with 2, 16 and 64 interfaces and 1, 8
// and 32 targets spread over them; the lookups themselves are the kernel's
// (see BenchmarkLookup in linkwatch).
func BenchmarkEvaluate(b *testing.B) {
	for _, nIf := range []int{2, 16, 64} {
		for _, nT := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("ifaces=%d/targets=%d", nIf, nT), func(b *testing.B) {
				ifaces := map[int]*iface{}
				for i := 2; i < nIf+2; i++ {
					name := fmt.Sprintf("eth%d", i)
					ifaces[i] = &iface{link: upLink(i, name),
						addrs:  []linkwatch.Addr{globalAddr(i, name, fmt.Sprintf("10.%d.0.5/24", i))},
						routes: []linkwatch.Route{defRoute(i, name, fmt.Sprintf("10.%d.0.1", i), 100+i)}}
				}
				paths := make([]pathFacts, nT)
				for j := range paths {
					idx := 2 + j%nIf
					dst := netip.AddrFrom4([4]byte{10, byte(idx), 0, byte(10 + j)})
					paths[j] = pathFacts{t: Target{Spec: dst.String(), Addr: dst},
						path: linkwatch.Path{Dst: dst, Index: idx, Table: unix.RT_TABLE_MAIN}}
				}
				now := t0.Add(time.Second)
				f := facts{ifaces: ifaces, paths: paths, prevUplink: 2, recent: 10 * time.Second,
					leaseMargin: 30 * time.Second, out: make([]pathVerdict, 0, nT)}
				b.ReportAllocs()
				for b.Loop() {
					v, _ := judge(&f, now)
					if v.state != Up {
						b.Fatalf("verdict %+v, want up", v)
					}
				}
			})
		}
	}
}

// BenchmarkDoThroughMonitor measures a successful send through the
// Monitor's Gate while the state is up (OnSuccess is ReportSuccess: one
// atomic add and one load while the data-stall detector is idle), beside
// the same send through a bare Gate; and DoCall through the Monitor, with
// and without a Call.Dst (which ReportSuccessTo remembers with a clock
// read).
func BenchmarkDoThroughMonitor(b *testing.B) {
	send := func(context.Context) error { return nil }
	ctx := context.Background()
	b.Run("monitor", func(b *testing.B) {
		m := benchMonitor(b)
		if !m.Gate().State().Open {
			b.Fatal("gate closed")
		}
		b.ReportAllocs()
		for b.Loop() {
			if err := m.Gate().Do(ctx, send); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("monitor-docall-dst", func(b *testing.B) {
		// A call that names its destination: ReportSuccessTo remembers
		// it (a clock read, a pointer store at most every 100 ms).
		m := benchMonitor(b)
		c := gate.Call{Dst: netip.MustParseAddr("10.0.0.5")}
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Gate().DoCall(ctx, c, send); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("monitor-docall", func(b *testing.B) {
		// DoCall has no fast path: the baseline of the one below.
		m := benchMonitor(b)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := m.Gate().DoCall(ctx, gate.Call{}, send); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bare-gate", func(b *testing.B) {
		g, err := gate.New(gate.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer g.Shutdown()
		g.Open()
		b.ReportAllocs()
		for b.Loop() {
			if err := g.Sender().Do(ctx, send); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkApplySock measures the Monitor's fold of one failure eBPF
// observed (a refused connect while up): filters, classification, the
// route of its destination (cached), correlation, the pairing with
// reported failures (dedup.go, its list full of unpaired failures of the
// same process) and the per-process count; no subscriber.
func BenchmarkApplySock(b *testing.B) {
	m := benchMonitor(b)
	e := sockwatch.Event{PID: 4242, TID: 4242, Comm: "client", Errno: unix.ECONNREFUSED, Op: sockwatch.OpAsync,
		Protocol: unix.IPPROTO_TCP, Dst: netip.MustParseAddrPort("10.0.0.5:443")}
	b.ReportAllocs()
	for b.Loop() {
		e.Time = time.Now()
		m.applySock(e)
	}
}
