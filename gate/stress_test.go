package gate

import (
	"context"
	"errors"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestGateFlappingLosesNoWakeupAndReleasesNobodyWhileClosed flaps the gate
// thousands of times from many goroutines while hundreds of others wait and
// cancel. It checks, for every wait that returned nil after it found the
// gate closed, that some Open began during that wait: a waiter released
// while the gate stayed closed would break this. At the end the gate stays
// open and every waiter must finish: a lost wake-up would leave one held.
func TestGateFlappingLosesNoWakeupAndReleasesNobodyWhileClosed(t *testing.T) {
	tests := []struct {
		name    string
		release Release
		useDo   bool   // wait through Do with a send that succeeds
		policy  Policy // with MaxHeld, waits may also fail with ErrFull
	}{
		{"release all at once", Release{}, false, Policy{}},
		{"paced release", Release{Rate: 1e6, Spread: 50 * time.Microsecond}, false, Policy{}},
		{"probe, through Do", Release{Probe: true}, true, Policy{}},
		{"MaxHeld drops the oldest, through Do", Release{}, true, Policy{MaxHeld: 20, MaxHeldBytes: 100, Overflow: DropOldest}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			const (
				flappers   = 100
				flaps      = 100 // per flapper: 10,000 closes and opens in all
				waiters    = 300
				iterations = 200 // waits per waiter
			)
			g := mustNew(t, Config{StartClosed: lost, Release: tt.release, Policy: tt.policy})
			wait := g.Sender().Wait
			if tt.useDo {
				wait = func(ctx context.Context) error {
					_, err := g.Sender().DoCall(ctx, Call{Size: rand.Int64N(10)}, nopSend)
					return err
				}
			}
			var (
				opensBegun atomic.Uint64 // incremented before every Open
				opensDone  atomic.Uint64 // incremented after every Open
				violations atomic.Uint64
				released   atomic.Uint64 // waits that were closed and then returned nil
				canceled   atomic.Uint64
				full       atomic.Uint64 // rejected or dropped under MaxHeld
			)
			var flapWG, waitWG sync.WaitGroup
			for range flappers {
				flapWG.Go(func() {
					for range flaps {
						g.Close(lost)
						// Let waiters find the gate closed and park.
						runtime.Gosched()
						runtime.Gosched()
						opensBegun.Add(1)
						g.Open()
						opensDone.Add(1)
					}
				})
			}
			for range waiters {
				waitWG.Go(func() {
					for range iterations {
						ctx := context.Background()
						cancel := context.CancelFunc(func() {})
						if rand.IntN(4) == 0 {
							// A quarter of the waits give up quickly.
							ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(50))*time.Microsecond)
						}
						// If every Open begun so far has also ended, the gate
						// was closed at wasClosed's read, and no Open begins
						// before Wait returns, then the gate was closed for
						// the whole wait, and Wait must not return nil.
						begun := opensBegun.Load()
						quiet := opensDone.Load() >= begun
						st := g.State()
						wasClosed := !st.Open
						err := wait(ctx)
						cancel()
						switch {
						case err == nil && wasClosed:
							released.Add(1)
							if quiet && opensBegun.Load() == begun {
								violations.Add(1)
							}
							// The gate's own record: a release needs a
							// change after the closed state it started in.
							if g.State().Seq == st.Seq {
								violations.Add(1)
							}
						case err != nil && tt.policy.MaxHeld > 0 && errors.Is(err, ErrFull):
							full.Add(1)
						case err != nil && !errors.Is(err, context.DeadlineExceeded):
							t.Errorf("Wait = %v, want nil or DeadlineExceeded", err)
						case err != nil:
							canceled.Add(1)
						}
					}
				})
			}
			flapWG.Wait()
			// From here on the gate stays open (the last call of every
			// flapper was Open), so every held waiter must be released.
			g.Open()
			done := make(chan struct{})
			go func() { waitWG.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("lost wake-up: waiters still held a minute after the final Open; Stats %+v", g.Stats())
			}
			if v := violations.Load(); v != 0 {
				t.Errorf("%d waits returned nil although no Open began while they waited", v)
			}
			s := g.Stats()
			if s.HeldNow != 0 {
				t.Errorf("HeldNow = %d after all waiters returned, want 0", s.HeldNow)
			}
			if s.Holds != s.Releases+s.Canceled+s.Expired+s.Dropped {
				t.Errorf("Holds %d != Releases %d + Canceled %d + Expired %d + Dropped %d: a hold was neither released nor ended", s.Holds, s.Releases, s.Canceled, s.Expired, s.Dropped)
			}
			if s.HeldBytes != 0 || full.Load() != s.Rejected+s.Dropped {
				t.Errorf("HeldBytes %d after all returned, want 0; %d waits failed with ErrFull, want Rejected %d + Dropped %d", s.HeldBytes, full.Load(), s.Rejected, s.Dropped)
			}
			if tt.policy.MaxHeld > 0 && s.Dropped == 0 {
				t.Error("MaxHeld dropped nothing: the test did not exercise the bound")
			}
			t.Logf("flaps %d, waits that found the gate closed and were released %d, canceled %d, stats %+v",
				flappers*flaps, released.Load(), canceled.Load(), s)
			if released.Load() == 0 || s.Holds == 0 {
				t.Error("no wait was ever held: the test did not exercise the closed gate")
			}
		})
	}
}
