package gate

import (
	"testing"
	"time"
)

// The package parses no input, so the fuzz targets check the two places
// where arbitrary numbers come in: Config (from flags) and the backoff
// arithmetic, which must neither panic nor overflow for any Config that
// New accepts.

// FuzzNew checks that New never panics and returns exactly one of a gate
// and an error, and that an accepted config yields a working gate.
func FuzzNew(f *testing.F) {
	f.Add(int64(0), 0, 0.0, int64(0), int64(0), int64(0), 0, int64(0), uint8(0), int64(0))
	f.Add(int64(time.Second), 3, 10.0, int64(time.Second), int64(time.Millisecond), int64(time.Second), 1000, int64(1<<20), uint8(DropOldest), int64(time.Second))
	f.Add(int64(-1), -1, -1.0, int64(-1), int64(-1), int64(-1), -1, int64(-1), uint8(9), int64(-1))
	f.Add(int64(0), 0, 1e308, int64(1<<62), int64(1<<62), int64(1<<63-1), 1<<62, int64(1<<63-1), uint8(DropLower), int64(1<<63-1))
	f.Fuzz(func(t *testing.T, maxHold int64, maxAttempts int, rate float64, spread, initial, maxB int64, maxHeld int, maxHeldBytes int64, overflow uint8, probeTimeout int64) {
		cfg := Config{
			Policy: Policy{MaxHold: time.Duration(maxHold), MaxAttempts: maxAttempts,
				MaxHeld: maxHeld, MaxHeldBytes: maxHeldBytes, Overflow: Overflow(overflow)},
			Release: Release{Rate: rate, Spread: time.Duration(spread), Probe: probeTimeout != 0, ProbeTimeout: time.Duration(probeTimeout)},
			Backoff: Backoff{Initial: time.Duration(initial), Max: time.Duration(maxB)},
		}
		g, err := New(cfg)
		if (g == nil) == (err == nil) {
			t.Fatalf("New(%+v) = %v, %v; want exactly one of them", cfg, g, err)
		}
		if err != nil {
			return
		}
		if !g.State().Open {
			t.Fatal("a gate from a Config without StartClosed is closed")
		}
	})
}

// FuzzDelay checks that every backoff delay lies in [0, Max] and below
// Initial*2^retry, for any accepted Backoff and retry count.
func FuzzDelay(f *testing.F) {
	f.Add(int64(0), int64(0), 0)
	f.Add(int64(time.Second), int64(time.Minute), 5)
	f.Add(int64(1), int64(1<<63-1), 200)
	f.Add(int64(1<<62), int64(1<<63-1), 3)
	f.Fuzz(func(t *testing.T, initial, maxB int64, retry int) {
		if retry < 0 || retry > 1<<16 {
			return
		}
		g, err := New(Config{Backoff: Backoff{Initial: time.Duration(initial), Max: time.Duration(maxB)}})
		if err != nil {
			return
		}
		b := g.backoff
		d := g.delay(retry)
		if d < 0 || d > b.Max {
			t.Fatalf("delay(%d) with %+v = %v, want within [0, Max]", retry, b, d)
		}
		if retry < 62 && b.Initial <= b.Max>>retry && d >= b.Initial<<retry {
			t.Fatalf("delay(%d) with %+v = %v, want below Initial*2^%d", retry, b, d, retry)
		}
	})
}
