package wifiwatch

import (
	"math"
	"math/rand/v2"
	"testing"
)

// jitteryTrace is a signal as a driver without SIGNAL_AVG reports it, one
// reading per poll: NL80211_STA_INFO_SIGNAL is the signal of the last frame
// received, so consecutive polls differ by a few dB even when the robot
// stands still. The trace is generated from a fixed seed, so that every run
// sees the same readings: an hour of polls at 2 s (1800 readings) parked
// where the mean sits on the good/fair edge (-67 dBm) with uniform jitter
// of ±3 dB, then a drive away from -60 to -90 dBm over 150 polls (5 minutes)
// with the same jitter.
func jitteryTrace() (parked, fade []int) {
	r := rand.New(rand.NewPCG(14, 2026))
	jitter := func() int { return r.IntN(7) - 3 }
	for range 1800 {
		parked = append(parked, -67+jitter())
	}
	for i := range 150 {
		fade = append(fade, -60-30*i/149+jitter())
	}
	return parked, fade
}

// classifier turns a series of readings into bands, one per reading.
type classifier func(readings []int) []Band

// deadband is what the watcher does: the symmetric deadband of
// Bands.Classify on each reading.
func deadband(b Bands, hyst int) classifier {
	return func(rs []int) []Band {
		out := make([]Band, len(rs))
		prev := BandUnknown
		for i, dbm := range rs {
			prev = b.Classify(dbm, prev, hyst)
			out[i] = prev
		}
		return out
	}
}

// downOnly is the hysteresis before issue 14: falling hyst dB below the
// edge, rising at the edge itself.
func downOnly(b Bands, hyst int) classifier {
	return func(rs []int) []Band {
		out := make([]Band, len(rs))
		prev := BandUnknown
		for i, dbm := range rs {
			now := b.raw(dbm)
			if prev != BandUnknown && now < prev && b.raw(dbm+hyst-1) >= prev {
				now = prev
			}
			prev = now
			out[i] = prev
		}
		return out
	}
}

// ewma smooths the readings with weight alpha (what mac80211 does for
// SIGNAL_AVG, in the watcher instead) and classifies the rounded average
// through then (a classifier: plain thresholds, or a deadband).
func ewma(alpha float64, then classifier) classifier {
	return func(rs []int) []Band {
		sm := make([]int, len(rs))
		avg := float64(rs[0])
		for i, dbm := range rs {
			avg += alpha * (float64(dbm) - avg)
			sm[i] = int(math.Round(avg))
		}
		return then(sm)
	}
}

// changes counts the SignalChanged events a series of bands would give.
func changes(bands []Band) int {
	n := 0
	for i := 1; i < len(bands); i++ {
		if bands[i] != bands[i-1] {
			n++
		}
	}
	return n
}

// lag is how many polls after the first reading of the fade whose mean is
// below the weak edge (-82 dBm) the classifier first says weak or worse; -1
// if never.
func lag(b Bands, fade []int, bands []Band) int {
	start := -1
	for i := range fade {
		if -60-30*i/149 < b.Weak {
			start = i
			break
		}
	}
	for i := start; i < len(bands); i++ {
		if bands[i] <= BandCritical {
			return i - start
		}
	}
	return -1
}

// TestSignalDeadbandVersusEWMA measures, on the jittery trace, how many
// SignalChanged events each way of damping the bands gives while parked on
// an edge, and how late it reports the critical band on the way out. The
// figures picked the symmetric deadband of 4 dB (see Bands.Classify): 1
// event in 1800 polls and critical 6 polls late, where a 3 dB deadband
// still gives 358 (the jitter reaches both triggers), an EWMA of weight 1/4
// alone 367, and an EWMA quiet enough (1/4 with a 3 dB deadband) reports
// critical 11 polls late, on top of SIGNAL_AVG's own average where a
// driver has one.
func TestSignalDeadbandVersusEWMA(t *testing.T) {
	b := DefaultBands()
	parked, fade := jitteryTrace()
	type result struct{ parked, fade, lag int }
	measure := func(c classifier) result {
		fb := c(fade)
		return result{changes(c(parked)), changes(fb), lag(b, fade, fb)}
	}
	res := map[string]result{}
	for _, m := range []struct {
		name string
		c    classifier
	}{
		{"none", deadband(b, 0)},
		{"down-only 3 dB (before)", downOnly(b, 3)},
		{"deadband 3 dB", deadband(b, 3)},
		{"deadband 4 dB (default)", deadband(b, DefaultHysteresis)},
		{"EWMA 1/4, plain", ewma(0.25, deadband(b, 0))},
		{"EWMA 1/8, plain", ewma(0.125, deadband(b, 0))},
		{"EWMA 1/4 + deadband 3 dB", ewma(0.25, deadband(b, 3))},
	} {
		r := measure(m.c)
		res[m.name] = r
		t.Logf("%-26s parked: %4d SignalChanged in 1800 polls; fade: %2d, critical %2d polls late", m.name, r.parked, r.fade, r.lag)
	}
	// The default must hold the storm (at most 1% of the polls give an
	// event), and report the critical band no later than the EWMA that is
	// as quiet.
	now, quietEWMA := res["deadband 4 dB (default)"], res["EWMA 1/4 + deadband 3 dB"]
	if now.parked > len(parked)/100 {
		t.Errorf("default deadband: %d SignalChanged parked on the edge, want at most %d", now.parked, len(parked)/100)
	}
	if now.fade > 3 {
		t.Errorf("default deadband: %d SignalChanged on the fade, want 3 (good, fair, weak, critical)", now.fade)
	}
	if now.lag < 0 || now.lag > quietEWMA.lag {
		t.Errorf("default deadband reports critical %d polls late, the EWMA as quiet %d", now.lag, quietEWMA.lag)
	}
}
