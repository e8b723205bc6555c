package main

import (
	"bytes"
	"testing"
	"time"
)

// BenchmarkRunLoopback sends 10,000 messages to an in-process server on
// loopback, without a Monitor and without outages: the cost of the
// protocol and the bookkeeping, reported as messages per second.
func BenchmarkRunLoopback(b *testing.B) {
	const n = 10000
	srv := newFakeServer(b, nil, func(int) (int, bool) { return 0, false })
	b.ReportAllocs()
	var total time.Duration
	for b.Loop() {
		var stdout, stderr bytes.Buffer
		start := time.Now()
		if code := run(b.Context(), []string{"--addr", srv.addr(), "--count", "10000", "--monitor=false", "--log-level", "error"}, &stdout, &stderr); code != 0 {
			b.Fatalf("exit %d: %s", code, stderr.String())
		}
		total += time.Since(start)
	}
	b.ReportMetric(float64(n*b.N)/total.Seconds(), "msgs/s")
}
