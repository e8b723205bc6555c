package gate

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
)

var lost = Reason{Code: "carrier-lost", Iface: "wlan0"}

// mustNew returns a gate made from cfg or fails the test.
func mustNew(t testing.TB, cfg Config) *Gate {
	t.Helper()
	g, err := New(cfg)
	if err != nil {
		t.Fatalf("New(%+v): %v", cfg, err)
	}
	return g
}

// result is what one waiter got, and when (in synctest's fake time).
type result struct {
	id  int
	err error
	at  time.Time
}

// startWaiters starts n waiters on wait, one after the other so that
// their arrival order is their id, and returns the channel of their
// results. It must run inside a synctest bubble.
func startWaiters(t *testing.T, n int, wait func(context.Context) error, ctx context.Context) <-chan result {
	t.Helper()
	out := make(chan result, n)
	for i := range n {
		go func() {
			err := wait(ctx)
			out <- result{id: i, err: err, at: time.Now()}
		}()
		synctest.Wait() // i is parked before i+1 starts
	}
	return out
}

func TestNewStartState(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want State
	}{
		{name: "zero config starts open", cfg: Config{}, want: State{Open: true}},
		{name: "StartClosed starts closed with its reason",
			cfg:  Config{StartClosed: Reason{Code: "unknown"}},
			want: State{Reason: Reason{Code: "unknown"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mustNew(t, tt.cfg).State()
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(State{}), ignoreSinceAndChan); diff != "" {
				t.Errorf("State() (-want +got):\n%s", diff)
			}
			if got.Since.IsZero() {
				t.Error("State().Since is zero, want the time New ran")
			}
		})
	}
}

// ignoreSinceAndChan compares States without their time and channel.
var ignoreSinceAndChan = cmp.FilterPath(func(p cmp.Path) bool {
	s := p.String()
	return s == "Since" || s == "changed"
}, cmp.Ignore())

func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name  string
		cfg   Config
		field string
	}{
		{"negative MaxHold", Config{Policy: Policy{MaxHold: -1}}, "Config.Policy.MaxHold"},
		{"negative MaxAttempts", Config{Policy: Policy{MaxAttempts: -1}}, "Config.Policy.MaxAttempts"},
		{"negative MaxHeld", Config{Policy: Policy{MaxHeld: -1}}, "Config.Policy.MaxHeld"},
		{"negative MaxHeldBytes", Config{Policy: Policy{MaxHeldBytes: -1}}, "Config.Policy.MaxHeldBytes"},
		{"unknown Overflow", Config{Policy: Policy{Overflow: DropOldest + 1}}, "Config.Policy.Overflow"},
		{"negative ProbeTimeout", Config{Release: Release{Probe: true, ProbeTimeout: -1}}, "Config.Release.ProbeTimeout"},
		{"negative Rate", Config{Release: Release{Rate: -1}}, "Config.Release.Rate"},
		{"infinite Rate", Config{Release: Release{Rate: float64Inf()}}, "Config.Release.Rate"},
		{"negative Spread", Config{Release: Release{Spread: -1}}, "Config.Release.Spread"},
		{"negative Initial", Config{Backoff: Backoff{Initial: -1}}, "Config.Backoff.Initial"},
		{"negative Max", Config{Backoff: Backoff{Max: -1}}, "Config.Backoff.Max"},
		{"Max below Initial", Config{Backoff: Backoff{Initial: 2 * time.Second, Max: time.Second}}, "Config.Backoff.Max"},
		{"Max below default Initial", Config{Backoff: Backoff{Max: time.Millisecond}}, "Config.Backoff.Max"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g, err := New(tt.cfg)
			if err == nil || g != nil {
				t.Fatalf("New(%+v) = %v, %v; want nil and an error", tt.cfg, g, err)
			}
			if !strings.HasPrefix(err.Error(), "gate: "+tt.field+": ") {
				t.Errorf("error %q does not name %s", err, tt.field)
			}
		})
	}
}

func float64Inf() float64 { var zero float64; return 1 / zero }

func TestReasonString(t *testing.T) {
	tests := []struct {
		r    Reason
		want string
	}{
		{Reason{}, "no reason given"},
		{Reason{Code: "no-default-route"}, "no-default-route"},
		{Reason{Iface: "wlan0"}, "closed on wlan0"},
		{lost, "carrier-lost on wlan0"},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.want {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.want)
		}
	}
}

func TestGateWaitOnOpenGateReturnsNil(t *testing.T) {
	g := mustNew(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	// Even with a context that has ended: an open gate does not look at it.
	if err := g.Sender().Wait(ctx); err != nil {
		t.Fatalf("Wait on open gate = %v, want nil", err)
	}
	if s := g.Stats(); s.Holds != 0 || s.Canceled != 0 {
		t.Errorf("Stats after open wait = %+v, want no holds and no cancels", s)
	}
}

func TestGateWaitOnOpenGateDoesNotAllocate(t *testing.T) {
	g := mustNew(t, Config{})
	ctx := context.Background()
	if n := testing.AllocsPerRun(1000, func() { _ = g.Sender().Wait(ctx) }); n != 0 {
		t.Errorf("Wait on open gate: %v allocs, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() { _ = g.Sender().Do(ctx, nopSend) }); n != 0 {
		t.Errorf("Do on open gate: %v allocs, want 0", n)
	}
}

func nopSend(context.Context) error { return nil }

func TestGateHoldsWhileClosedAndReleasesAllOnOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{})
		g.Close(lost)
		const n = 50
		out := startWaiters(t, n, g.Sender().Wait, context.Background())

		time.Sleep(3 * time.Second) // fake time: the outage lasts 3 s
		synctest.Wait()
		if len(out) != 0 {
			t.Fatalf("%d waiters returned while the gate was closed", len(out))
		}
		s := g.Stats()
		if s.HeldNow != n || s.Holds != n || s.LongestHold != 3*time.Second {
			t.Errorf("Stats while closed: HeldNow %d Holds %d LongestHold %v; want %d, %d, 3s", s.HeldNow, s.Holds, s.LongestHold, n, n)
		}

		opened := time.Now()
		g.Open()
		synctest.Wait()
		if len(out) != n {
			t.Fatalf("%d of %d waiters returned after Open", len(out), n)
		}
		for range n {
			r := <-out
			if r.err != nil || !r.at.Equal(opened) {
				t.Errorf("waiter %d: err %v at +%v; want nil at once", r.id, r.err, r.at.Sub(opened))
			}
		}
		s = g.Stats()
		if s.HeldNow != 0 || s.Releases != n || s.LongestHold != 0 || s.Opens != 1 || s.Closes != 1 {
			t.Errorf("Stats after Open = %+v; want HeldNow 0, Releases %d, LongestHold 0, Opens 1, Closes 1", s, n)
		}
	})
}

func TestGateWaitErrorCarriesReasonAndHeldTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{})
		g.Close(lost)
		closedAt := time.Now()
		ctx, cancel := context.WithTimeout(context.Background(), 12400*time.Millisecond)
		defer cancel()
		err := g.Sender().Wait(ctx)

		const want = "gate: held 12.4s: carrier-lost on wlan0: context deadline exceeded"
		if err == nil || err.Error() != want {
			t.Fatalf("Wait = %v, want %q", err, want)
		}
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("errors.Is(%v, context.DeadlineExceeded) = false", err)
		}
		var we *WaitError
		if !errors.As(err, &we) {
			t.Fatalf("errors.As(%v, *WaitError) = false", err)
		}
		if we.Reason != lost || !we.Since.Equal(closedAt) || we.Held != 12400*time.Millisecond {
			t.Errorf("WaitError = %+v, want reason %v, since %v, held 12.4s", we, lost, closedAt)
		}
		if s := g.Stats(); s.Canceled != 1 || s.HeldNow != 0 {
			t.Errorf("Stats = %+v, want Canceled 1, HeldNow 0", s)
		}
	})
}

func TestGateWaitReturnsContextCause(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost})
		cause := errors.New("robot is shutting down")
		ctx, cancel := context.WithCancelCause(context.Background())
		out := startWaiters(t, 1, g.Sender().Wait, ctx)
		cancel(cause)
		r := <-out
		if !errors.Is(r.err, cause) {
			t.Errorf("Wait = %v, want it to wrap the context's cause", r.err)
		}
	})
}

func TestGateWaitWithEndedContextOnClosedGate(t *testing.T) {
	g := mustNew(t, Config{StartClosed: lost})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := g.Sender().Wait(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Wait = %v, want context.Canceled", err)
	}
	if want := "gate: not held: carrier-lost on wlan0: context canceled"; err.Error() != want {
		t.Errorf("Wait = %q, want %q", err, want)
	}
}

func TestGatePolicies(t *testing.T) {
	tests := []struct {
		name    string
		policy  Policy
		wantErr error
		wantFor time.Duration // how long the call is held before it fails
		stat    func(Stats) uint64
	}{
		{name: "fail fast", policy: Policy{FailFast: true}, wantErr: ErrDown,
			stat: func(s Stats) uint64 { return s.FailFasts }},
		{name: "fail fast wins over MaxHold", policy: Policy{FailFast: true, MaxHold: time.Minute}, wantErr: ErrDown,
			stat: func(s Stats) uint64 { return s.FailFasts }},
		{name: "max hold", policy: Policy{MaxHold: 5 * time.Second}, wantErr: ErrHoldExpired, wantFor: 5 * time.Second,
			stat: func(s Stats) uint64 { return s.Expired }},
	}
	for _, tt := range tests {
		for _, perGate := range []bool{true, false} {
			name := tt.name + "/per call"
			if perGate {
				name = tt.name + "/per gate"
			}
			t.Run(name, func(t *testing.T) {
				synctest.Test(t, func(t *testing.T) {
					cfg := Config{StartClosed: lost}
					var wait func(context.Context) error
					var g *Gate
					if perGate {
						cfg.Policy = tt.policy
						g = mustNew(t, cfg)
						wait = g.Sender().Wait
					} else {
						g = mustNew(t, cfg)
						wait = g.Sender().With(tt.policy).Wait
					}
					start := time.Now()
					err := wait(context.Background())
					if !errors.Is(err, tt.wantErr) {
						t.Fatalf("Wait = %v, want %v", err, tt.wantErr)
					}
					if got := time.Since(start); got != tt.wantFor {
						t.Errorf("Wait failed after %v, want %v", got, tt.wantFor)
					}
					if !strings.Contains(err.Error(), lost.String()) {
						t.Errorf("Wait = %q, want the close reason in it", err)
					}
					if got := tt.stat(g.Stats()); got != 1 {
						t.Errorf("counter = %d, want 1", got)
					}
				})
			})
		}
	}
}

func TestGateMaxHoldDoesNotFireWhenOpenedInTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Policy: Policy{MaxHold: 5 * time.Second}})
		out := startWaiters(t, 1, g.Sender().Wait, context.Background())
		time.Sleep(4 * time.Second)
		g.Open()
		if r := <-out; r.err != nil {
			t.Errorf("Wait = %v, want nil: the gate opened within MaxHold", r.err)
		}
	})
}

func TestGateShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost})
		out := startWaiters(t, 3, g.Sender().Wait, context.Background())
		before := g.State()
		g.Shutdown()
		synctest.Wait()
		if len(out) != 3 {
			t.Fatalf("%d of 3 held waiters returned after Shutdown", len(out))
		}
		for range 3 {
			if r := <-out; !errors.Is(r.err, ErrShutdown) {
				t.Errorf("held waiter %d: %v, want ErrShutdown", r.id, r.err)
			}
		}
		select {
		case <-before.Changed():
		default:
			t.Error("Changed of the state before Shutdown is not closed")
		}
		g.Open() // no effect after Shutdown
		g.Close(Reason{Code: "other"})
		g.Shutdown() // idempotent
		s := g.State()
		if s.Open || !s.Shutdown || s.Reason != lost || s.Seq != before.Seq+1 {
			t.Errorf("State after Shutdown, Open, Close, Shutdown = %+v; want shut down, reason %v, one change", s, lost)
		}
		for _, wait := range []func(context.Context) error{g.Sender().Wait, g.Sender().With(Policy{FailFast: true}).Wait} {
			if err := wait(context.Background()); !errors.Is(err, ErrShutdown) {
				t.Errorf("Wait after Shutdown = %v, want ErrShutdown", err)
			}
		}
	})
}

func TestGateShutdownOfOpenGateFailsLaterWaits(t *testing.T) {
	g := mustNew(t, Config{})
	g.Shutdown()
	if err := g.Sender().Wait(context.Background()); !errors.Is(err, ErrShutdown) {
		t.Errorf("Wait = %v, want ErrShutdown", err)
	}
	if err := g.Sender().Do(context.Background(), nopSend); !errors.Is(err, ErrShutdown) {
		t.Errorf("Do = %v, want ErrShutdown", err)
	}
}

func TestGateStateChanges(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{})
		s0 := g.State()
		steps := []struct {
			name      string
			do        func()
			wantEvent bool
			want      State
		}{
			{"open an open gate", g.Open, false, State{Open: true}},
			{"close", func() { g.Close(lost) }, true, State{Reason: lost, Seq: 1}},
			{"close again, same reason", func() { g.Close(lost) }, false, State{Reason: lost, Seq: 1}},
			{"close again, new reason", func() { g.Close(Reason{Code: "no-address", Iface: "wlan0"}) }, true,
				State{Reason: Reason{Code: "no-address", Iface: "wlan0"}, Seq: 2}},
			{"open", g.Open, true, State{Open: true, Seq: 3}},
		}
		prev := s0
		for _, st := range steps {
			time.Sleep(time.Second)
			st.do()
			select {
			case <-prev.Changed():
				if !st.wantEvent {
					t.Errorf("%s: Changed closed, want it open", st.name)
				}
			default:
				if st.wantEvent {
					t.Errorf("%s: Changed not closed", st.name)
				}
			}
			got := g.State()
			if diff := cmp.Diff(st.want, got, cmp.AllowUnexported(State{}), ignoreSinceAndChan); diff != "" {
				t.Errorf("%s: State (-want +got):\n%s", st.name, diff)
			}
			prev = got
		}
	})
}

func TestGateNewReasonKeepsOutageStartAndHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{})
		g.Close(lost)
		since := g.State().Since
		out := startWaiters(t, 2, g.Sender().Wait, context.Background())
		time.Sleep(time.Second)
		g.Close(Reason{Code: "lease-expired", Iface: "wlan0"})
		synctest.Wait()
		if len(out) != 0 {
			t.Fatal("a new reason released held waiters")
		}
		if got := g.State().Since; !got.Equal(since) {
			t.Errorf("Since moved from %v to %v on a new reason", since, got)
		}
		g.Open()
		for range 2 {
			if r := <-out; r.err != nil {
				t.Errorf("waiter %d: %v", r.id, r.err)
			}
		}
	})
}

func TestGatePacedRelease(t *testing.T) {
	tests := []struct {
		name    string
		release Release
		// check gets the release delay of each waiter, in arrival order.
		check func(t *testing.T, delays []time.Duration)
	}{
		{name: "rate 10/s releases oldest first, 100ms apart", release: Release{Rate: 10},
			check: func(t *testing.T, delays []time.Duration) {
				for i, d := range delays {
					if want := time.Duration(i) * 100 * time.Millisecond; d != want {
						t.Errorf("waiter %d released at +%v, want +%v", i, d, want)
					}
				}
			}},
		{name: "spread 2s releases within 2s", release: Release{Spread: 2 * time.Second},
			check: func(t *testing.T, delays []time.Duration) {
				distinct := map[time.Duration]bool{}
				for i, d := range delays {
					if d < 0 || d >= 2*time.Second {
						t.Errorf("waiter %d released at +%v, want within [0, 2s)", i, d)
					}
					distinct[d] = true
				}
				if len(distinct) < 2 {
					t.Errorf("all %d waiters released at the same moment %v: no jitter", len(delays), delays[0])
				}
			}},
		{name: "rate and spread add", release: Release{Rate: 1, Spread: time.Second},
			check: func(t *testing.T, delays []time.Duration) {
				for i, d := range delays {
					lo := time.Duration(i) * time.Second
					if d < lo || d >= lo+time.Second {
						t.Errorf("waiter %d released at +%v, want within [%v, %v)", i, d, lo, lo+time.Second)
					}
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				const n = 20
				g := mustNew(t, Config{StartClosed: lost, Release: tt.release})
				out := startWaiters(t, n, g.Sender().Wait, context.Background())
				opened := time.Now()
				g.Open()
				delays := make([]time.Duration, n)
				for range n {
					r := <-out
					if r.err != nil {
						t.Fatalf("waiter %d: %v", r.id, r.err)
					}
					delays[r.id] = r.at.Sub(opened)
				}
				tt.check(t, delays)
				if s := g.Stats(); s.Releases != n || s.HeldNow != 0 {
					t.Errorf("Stats = %+v, want Releases %d, HeldNow 0", s, n)
				}
			})
		})
	}
}

func TestGatePacedReleaseHoldsAgainWhenClosedMidway(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 10
		g := mustNew(t, Config{StartClosed: lost, Release: Release{Rate: 10}})
		out := startWaiters(t, n, g.Sender().Wait, context.Background())
		g.Open()
		// Waiters 0..4 go at +0, +100, ..., +400 ms; close at +450 ms.
		time.Sleep(450 * time.Millisecond)
		g.Close(lost)
		synctest.Wait()
		if len(out) != 5 {
			t.Fatalf("%d waiters released before the close at +450ms, want 5", len(out))
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if len(out) != 5 {
			t.Fatalf("%d waiters released while closed, want still 5", len(out))
		}
		if s := g.Stats(); s.HeldNow != 5 {
			t.Errorf("HeldNow = %d, want 5", s.HeldNow)
		}
		reopened := time.Now()
		g.Open()
		for range n {
			r := <-out
			if r.err != nil {
				t.Errorf("waiter %d: %v", r.id, r.err)
			}
			if r.id >= 5 {
				// Still oldest first, from the new Open.
				if want := time.Duration(r.id-5) * 100 * time.Millisecond; r.at.Sub(reopened) != want {
					t.Errorf("waiter %d released at +%v after reopening, want +%v", r.id, r.at.Sub(reopened), want)
				}
			}
		}
	})
}

func TestGatePacedWaiterCanGiveUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Release: Release{Rate: 1}})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		startWaiters(t, 1, g.Sender().Wait, context.Background()) // goes first
		out := startWaiters(t, 1, g.Sender().Wait, ctx)           // its turn is at +1s
		g.Open()
		time.Sleep(500 * time.Millisecond)
		cancel()
		r := <-out
		var we *WaitError
		if !errors.As(r.err, &we) || !errors.Is(r.err, context.Canceled) || we.Reason != lost {
			t.Errorf("Wait = %v, want a *WaitError for context.Canceled naming %v", r.err, lost)
		}
		if s := g.Stats(); s.HeldNow != 0 || s.Canceled != 1 || s.Releases != 1 {
			t.Errorf("Stats = %+v, want HeldNow 0, Canceled 1, Releases 1", s)
		}
	})
}
