package main

import (
	"io"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// BenchmarkLogEvent measures writing one state line, the most common line
// with the most fields, in each output format.
func BenchmarkLogEvent(b *testing.B) {
	ev := netmon.Event{Kind: netmon.EventState, At: time.Now(), Iface: "wlan0", Msg: "up -> down",
		Status: netmon.Status{State: netmon.Down, Reason: netmon.ReasonCarrierLost, Iface: "wlan0"},
		Fields: []zap.Field{zap.Int("signal_dbm", -71), zap.String("bssid", "aa:bb:cc:dd:ee:ff"), zap.String("addrs", "10.0.0.5/24")}}
	for _, format := range []string{"json", "console"} {
		b.Run(format, func(b *testing.B) {
			log, err := newLogger(format, zapcore.InfoLevel, io.Discard)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				logEvent(log, ev)
			}
		})
	}
}

// BenchmarkMetricsCollect measures one scrape's collection from a Monitor
// with two interfaces (the Go and process collectors excluded).
func BenchmarkMetricsCollect(b *testing.B) {
	x := newMetrics(testSource())
	b.ReportAllocs()
	for b.Loop() {
		// Large enough that Collect never blocks: no goroutine needed.
		ch := make(chan prometheus.Metric, 64)
		x.Collect(ch)
	}
}

// BenchmarkSockAggAdd measures the log's aggregation of one repeated
// failure (the storm case: counted, not written), against writing its
// line in JSON (BenchmarkLogEvent's cost for a sockerr line).
func BenchmarkSockAggAdd(b *testing.B) {
	ev := sockEvent("client", 4242, unix.ECONNRESET, "10.9.0.2:443")
	b.Run("repeat", func(b *testing.B) {
		a := newSockAgg(defaultSockLogInterval, sockAggKeys)
		a.add(ev)
		b.ReportAllocs()
		for b.Loop() {
			a.add(ev)
		}
	})
	b.Run("line", func(b *testing.B) {
		log, err := newLogger("json", zapcore.InfoLevel, io.Discard)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			logEvent(log, ev)
		}
	})
}
