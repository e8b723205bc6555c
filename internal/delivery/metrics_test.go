package delivery

import (
	"slices"
	"strings"
	"testing"
	"time"
)

func TestFloorAndCompute(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	down := []Interval{{Down: at(1000), Up: at(2000)}, {Down: at(5000), Up: at(5500)}}
	for _, c := range []struct {
		created int
		want    time.Duration
	}{
		{0, 0}, {999, 0}, {1000, time.Second}, {1600, 400 * time.Millisecond}, {2000, 0}, {5499, time.Millisecond},
	} {
		if got := Floor(at(c.created), down); got != c.want {
			t.Errorf("Floor(%d ms) = %v, want %v", c.created, got, c.want)
		}
	}
	msgs := []Message{
		{Created: at(0), Arrived: at(10)},                 // 10 ms
		{Created: at(1500), Arrived: at(2100), Copies: 2}, // 600 ms, floor 500: 100 ms beyond
		{Created: at(3000), Arrived: at(3900)},            // 900 ms
		{Created: at(5100)},                               // lost
	}
	f := Compute(Sample{Msgs: msgs, Down: down, Dials: []time.Time{at(100), at(1200), at(5400)}})
	want := Figures{Messages: 4, Lost: 1, Dups: 2, P50: 100 * time.Millisecond, P95: 900 * time.Millisecond,
		Max: 900 * time.Millisecond, LatencyP95: 900 * time.Millisecond, LatencyMax: 900 * time.Millisecond,
		Dials: 3, DownDials: 2, DownTime: 1500 * time.Millisecond, UsableShare: -1}
	if f != want {
		t.Errorf("Compute = %+v\nwant      %+v", f, want)
	}
	// Pooled with a second run whose clock is elsewhere: each message is
	// judged against its own run's outages.
	t1 := t0.Add(time.Hour)
	other := Sample{Msgs: []Message{{Created: t1.Add(time.Second), Arrived: t1.Add(3 * time.Second)}},
		Down: []Interval{{Down: t1, Up: t1.Add(2 * time.Second)}}, Dials: []time.Time{t1}}
	if g := Compute(Sample{Msgs: msgs, Down: down, Dials: []time.Time{at(100), at(1200), at(5400)}}, other); g.Messages != 5 ||
		g.Max != time.Second || g.LatencyMax != 2*time.Second || g.Dials != 4 || g.DownDials != 3 {
		t.Errorf("pooled Compute = %+v", g)
	}
	if f := Compute(Sample{Msgs: msgs, Down: down}); f.Dials != -1 || f.DownDials != -1 {
		t.Errorf("Compute without dials: Dials %d, DownDials %d, want -1 (not measured)", f.Dials, f.DownDials)
	}
	tab := Table([]Row{{Schedule: "edge", Sender: "x", Figures: f}})
	if !strings.Contains(tab, "| edge | x | 100 ms | 900 ms |") {
		t.Errorf("Table:\n%s", tab)
	}
}

func TestGateFigures(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// 10 s run, down 2-3 s and 6-8 s (7 s up). The Gate opens at 0.5 s,
	// closes 5 ms into the first outage, opens 1 s after its end, closes
	// at the second outage's start and opens at its end.
	down := []Interval{{Down: at(2000), Up: at(3000)}, {Down: at(6000), Up: at(8000)}}
	changes := []GateChange{{at(0), false}, {at(500), true}, {at(2005), false}, {at(4000), true},
		{at(6000), false}, {at(8000), true}}
	share, openDown, upTime := GateFigures(changes, down, at(0), at(10000))
	if upTime != 7*time.Second {
		t.Errorf("up time %v, want 7s", upTime)
	}
	// open while up: 0.5-2 (1.5 s) + 4-6 (2 s) + 8-10 (2 s) = 5.5 of 7 s
	if want := 5.5 / 7; share < want-1e-9 || share > want+1e-9 {
		t.Errorf("share %v, want %v", share, want)
	}
	if openDown != 5*time.Millisecond {
		t.Errorf("open while down %v, want 5ms", openDown)
	}
}

func TestQuantileNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i))
	}
	orig := slices.Clone(ds)
	for q, want := range map[float64]time.Duration{0.5: 50, 0.95: 95, 1: 100, 0.01: 1} {
		if got := quantile(ds, q); got != want {
			t.Errorf("quantile(1..100, %v) = %v, want %v", q, got, want)
		}
	}
	if !slices.Equal(ds, orig) {
		t.Error("quantile sorted its argument")
	}
	if got := quantile(nil, 0.95); got != 0 {
		t.Errorf("quantile(nil) = %v", got)
	}
}

func TestScheduleSeeded(t *testing.T) {
	for _, name := range Schedules {
		for _, short := range []bool{false, true} {
			a, err := NewSchedule(name, 7, short)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := NewSchedule(name, 7, short)
			c, _ := NewSchedule(name, 8, short)
			if !slices.Equal(a.Steps, b.Steps) {
				t.Errorf("%s: the same seed gave different steps", name)
			}
			if len(a.Steps) > 1 && slices.Equal(a.Steps, c.Steps) {
				t.Errorf("%s: seeds 7 and 8 gave the same steps", name)
			}
			sh := shapes[name]
			if short {
				sh = shortShapes[name]
			}
			if len(a.Steps) != sh.n {
				t.Errorf("%s: %d steps, want %d", name, len(a.Steps), sh.n)
			}
			var end time.Duration
			for _, st := range a.Steps {
				gap := st.At - end
				if gap < sh.gap[0] || gap > sh.gap[1] || st.Len < sh.length[0] || st.Len > sh.length[1] {
					t.Errorf("%s: step %+v after %v: outside the shape %+v", name, st, end, sh)
				}
				end = st.At + st.Len
			}
			if a.Length != end+tail {
				t.Errorf("%s: length %v, want %v", name, a.Length, end+tail)
			}
		}
	}
	if _, err := NewSchedule("nope", 1, false); err == nil {
		t.Error("NewSchedule(nope) did not fail")
	}
}
