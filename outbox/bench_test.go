package outbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// latencies records one duration per operation and reports the median
// and the 99th percentile.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	b.ReportMetric(float64(l[len(l)/2].Nanoseconds()), "p50-ns")
	b.ReportMetric(float64(l[len(l)*99/100].Nanoseconds()), "p99-ns")
}

var benchSizes = []int{100, 10 << 10}

// BenchmarkOutboxAppend appends messages of 100 B and 10 KiB, with an
// fsync per append and with a group commit every 10 ms; Acks keep the
// store from growing.
func BenchmarkOutboxAppend(b *testing.B) {
	for _, sync := range []time.Duration{0, 10 * time.Millisecond} {
		for _, size := range benchSizes {
			name := "fsync"
			if sync > 0 {
				name = "group=" + sync.String()
			}
			b.Run(fmt.Sprintf("%s/size=%d", name, size), func(b *testing.B) {
				o := openT(b, "", Config{SyncInterval: sync})
				m := Message{Stream: "bench", Payload: make([]byte, size)}
				ctx := context.Background()
				lat := make(latencies, 0, 1024)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					start := time.Now()
					n, err := o.Append(ctx, m)
					lat = append(lat, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
					if n%10000 == 0 {
						// Deliver the older ones, in one transaction.
						b.StopTimer()
						acks := make([]uint64, 0, 10000)
						for i := n - 10000 + 1; i <= n-5000; i++ {
							acks = append(acks, i)
						}
						o.wmu.Lock()
						err := o.removeLocked(acks)
						o.wmu.Unlock()
						if err != nil {
							b.Fatal(err)
						}
						b.StartTimer()
					}
				}
				lat.report(b)
			})
		}
	}
}

// BenchmarkFileWriteFsync is the floor under BenchmarkOutboxAppend with
// fsync: one write and one fdatasync of a bare os.File per message.
func BenchmarkFileWriteFsync(b *testing.B) {
	for _, size := range benchSizes {
		b.Run(fmt.Sprintf("size=%d", size), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "floor"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			p := make([]byte, size)
			lat := make(latencies, 0, 1024)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var off int64
			for b.Loop() {
				start := time.Now()
				if _, err := f.WriteAt(p, off); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				off = (off + int64(size)) % (64 << 20)
			}
			lat.report(b)
		})
	}
}

// fillPending makes an outbox in dir with n pending messages of 100
// bytes, in commits of 10,000.
func fillPending(b *testing.B, dir string, n int) {
	b.Helper()
	o, err := Open(dir, Config{SyncInterval: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	m := Message{Stream: "bench", Payload: make([]byte, 100)}
	for i := 1; i <= n; i++ {
		if _, err := o.Append(context.Background(), m); err != nil {
			b.Fatal(err)
		}
		if i%10000 == 0 {
			o.flush()
		}
	}
	if err := o.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkOpen times recovery: Open (which reads and checks every
// pending record) and Close of an outbox with 100,000 and 1,000,000
// pending messages of 100 bytes, and reports the heap in use and the
// process's RSS with the outbox open.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			dir := b.TempDir()
			fillPending(b, dir, n)
			b.ReportAllocs()
			var heap, rss uint64
			for b.Loop() {
				o, err := Open(dir, Config{})
				if err != nil {
					b.Fatal(err)
				}
				if s := o.Stats(); s.Records != n {
					b.Fatalf("%d pending, want %d", s.Records, n)
				}
				b.StopTimer()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				heap, rss = max(heap, ms.HeapInuse), max(rss, vmRSS(b))
				b.StartTimer()
				if err := o.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(heap), "heap-bytes")
			b.ReportMetric(float64(rss), "rss-bytes")
		})
	}
}

// vmRSS returns the process's resident set size (which counts the pages
// of bbolt's memory map that were read), or 0 where /proc is missing.
func vmRSS(b *testing.B) uint64 {
	s, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(s)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
