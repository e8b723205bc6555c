package netmon

import (
	"fmt"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
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

func BenchmarkAnnotate(b *testing.B) {
	m := benchMonitor(b)
	err := unreach()
	b.ReportAllocs()
	for b.Loop() {
		_ = m.Annotate(err).Error()
	}
}
