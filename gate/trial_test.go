package gate

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"testing/synctest"
	"time"
)

// TestTrialLetsOneHeldCallThroughAClosedGate: Trial lets the oldest held
// Do call make one attempt while the gate stays closed; a failed trial is
// held again behind the others, so the next trial tries the next call;
// the owner opens the gate on a trial's success (as the Monitor does from
// OnSuccess), which releases the rest. The attempts carry the calls' Dst.
func TestTrialLetsOneHeldCallThroughAClosedGate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var (
			mu        sync.Mutex
			failDst   []netip.Addr
			successes []netip.Addr
			g         *Gate
		)
		g = mustNew(t, Config{StartClosed: lost, Release: Release{Probe: true, ProbeTimeout: 250 * time.Millisecond},
			Backoff: Backoff{Initial: time.Second, Max: time.Second},
			OnError: func(a Attempt) {
				mu.Lock()
				failDst = append(failDst, a.Dst)
				mu.Unlock()
			},
			OnSuccess: func(a Attempt) {
				mu.Lock()
				successes = append(successes, a.Dst)
				mu.Unlock()
				g.Open()
			}})
		if g.Trial() {
			t.Fatal("Trial with nothing held let something through")
		}
		dead, live := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2")
		sent := make(chan netip.Addr, 10)
		done := make(chan error, 3)
		start := func(dst netip.Addr, err error) {
			go func() {
				_, e := g.Sender().DoCall(context.Background(), Call{Dst: dst}, func(context.Context) error {
					sent <- dst
					return err
				})
				done <- e
			}()
			synctest.Wait()
		}
		start(dead, syscall.ETIMEDOUT)
		start(live, nil)
		start(live, nil)
		if len(sent) != 0 {
			t.Fatal("a send went through a closed gate before any trial")
		}
		if !g.Trial() {
			t.Fatal("Trial let nothing through with three calls held")
		}
		synctest.Wait()
		if got := <-sent; got != dead || len(sent) != 0 {
			t.Fatalf("trial sent to %v (+%d more), want only the oldest call's, to %v", got, len(sent), dead)
		}
		if s := g.State(); s.Open {
			t.Fatal("the gate opened on a failed trial")
		}
		if st := g.Stats(); st.HeldNow != 3 || st.Trials != 1 {
			t.Fatalf("stats %+v, want the failed trial held again (3 held) and 1 trial", st)
		}
		if !g.Trial() {
			t.Fatal("second Trial let nothing through")
		}
		synctest.Wait()
		if got := <-sent; got != live {
			t.Fatalf("second trial sent to %v, want the next call's, to %v", got, live)
		}
		// Its success opened the gate: the other live call goes (after
		// the probe round the Open began), the dead one fails again.
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if !g.State().Open {
			t.Fatal("the trial's success did not open the gate (OnSuccess)")
		}
		for range 2 {
			if err := <-done; err != nil {
				t.Fatalf("a live call failed: %v", err)
			}
		}
		if g.Trial() {
			t.Fatal("Trial on an open gate let something through")
		}
		mu.Lock()
		defer mu.Unlock()
		if len(successes) == 0 || successes[0] != live || len(failDst) == 0 || failDst[0] != dead {
			t.Fatalf("successes %v, failures %v: want the calls' Dst in the attempts", successes, failDst)
		}
		g.Shutdown()
		if err := <-done; !errors.Is(err, ErrShutdown) {
			t.Fatalf("dead call after shutdown: %v, want ErrShutdown", err)
		}
	})
}

// TestTrialLetsAHeldWaitThroughWhenNoDoIsHeld: with no Do call held, Trial
// lets the oldest held Wait caller through while the gate stays closed
// (its Wait returns nil); a held Do call goes before an older Wait; a
// waiter whose context ended is passed over; each trial counts in
// Stats.Trials.
func TestTrialLetsAHeldWaitThroughWhenNoDoIsHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Release: Release{Probe: true, ProbeTimeout: 250 * time.Millisecond}})
		t.Cleanup(g.Shutdown) // ends the held callers if the test fails
		waited := make(chan int, 3)
		wait := func(id int) {
			go func() {
				if err := g.Sender().Wait(context.Background()); err != nil && !errors.Is(err, ErrShutdown) {
					t.Errorf("Wait %d: %v", id, err)
				}
				waited <- id
			}()
			synctest.Wait()
		}

		wait(1)
		if !g.Trial() {
			t.Fatal("Trial let no held Wait through")
		}
		synctest.Wait()
		if len(waited) != 1 || <-waited != 1 {
			t.Fatal("the held Wait did not return after the trial")
		}
		if g.State().Open {
			t.Fatal("the gate opened on a trial")
		}
		if st := g.Stats(); st.Trials != 1 || st.HeldNow != 0 || st.Releases != 1 {
			t.Fatalf("stats %+v, want 1 trial, 1 release, none held", st)
		}
		if g.Trial() {
			t.Fatal("Trial with nothing held let something through")
		}

		// A Do call goes before an older Wait.
		wait(2)
		sent := make(chan struct{}, 1)
		doDone := make(chan error, 1)
		go func() {
			doDone <- g.Do(context.Background(), func(context.Context) error {
				sent <- struct{}{}
				return nil
			})
		}()
		synctest.Wait()
		if !g.Trial() {
			t.Fatal("Trial let nothing through with a Wait and a Do call held")
		}
		synctest.Wait()
		if len(sent) != 1 || len(waited) != 0 {
			t.Fatalf("trial: %d sends, %d waits returned; want the Do call's send, the older Wait still held", len(sent), len(waited))
		}
		if err := <-doDone; err != nil {
			t.Fatalf("trial Do: %v", err)
		}
		if !g.Trial() {
			t.Fatal("Trial let the held Wait through not once the Do call was gone")
		}
		synctest.Wait()
		if len(waited) != 1 || <-waited != 2 {
			t.Fatal("the held Wait did not return after the second trial")
		}

		// A waiter whose context ended, still in the list (its caller
		// not yet gone), is passed over for the next one.
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		stale := &waiter{start: time.Now(), ctx: ctx, wake: make(chan struct{})}
		g.mu.Lock()
		g.pushLocked(stale)
		g.mu.Unlock()
		wait(3)
		if !g.Trial() {
			t.Fatal("Trial let nothing through with a live Wait held")
		}
		synctest.Wait()
		if len(waited) != 1 || <-waited != 3 {
			t.Fatal("the trial did not go to the live Wait behind a gone one")
		}
		g.mu.Lock()
		if stale.outcome != held {
			t.Errorf("the gone waiter's outcome is %v, want still held", stale.outcome)
		}
		g.removeLocked(stale)
		g.mu.Unlock()
		if st := g.Stats(); st.Trials != 4 || st.HeldNow != 0 {
			t.Fatalf("stats %+v, want 4 trials, none held", st)
		}
		g.Shutdown()
	})
}

// TestTrialUnderFlappingKeepsTheWaiterList: Wait and Do callers (a
// quarter of them giving up quickly) are held, released by trials and
// Opens from many goroutines while others close the gate. Every caller
// returns once the gate stays open; no hold is lost (Holds = Releases +
// Canceled + Expired + Dropped, nothing held); and the waits that returned
// nil while no Open began during them are no more than the trials.
func TestTrialUnderFlappingKeepsTheWaiterList(t *testing.T) {
	for _, rel := range []Release{{}, {Probe: true}, {Rate: 1e6, Spread: 50 * time.Microsecond}} {
		t.Run(fmt.Sprintf("%+v", rel), func(t *testing.T) {
			g := mustNew(t, Config{StartClosed: lost, Release: rel})
			var opensBegun, opensDone, quietNil atomic.Uint64
			stop := make(chan struct{})
			var flapWG, trialWG, waitWG sync.WaitGroup
			for range 2 {
				flapWG.Go(func() {
					for range 300 {
						g.Close(lost)
						runtime.Gosched()
						runtime.Gosched()
						opensBegun.Add(1)
						g.Open()
						opensDone.Add(1)
					}
				})
			}
			for range 4 {
				trialWG.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						g.Trial()
						runtime.Gosched()
					}
				})
			}
			for i := range 100 {
				waitWG.Go(func() {
					for range 100 {
						ctx, cancel := context.Background(), context.CancelFunc(func() {})
						if rand.IntN(4) == 0 {
							ctx, cancel = context.WithTimeout(ctx, time.Duration(rand.IntN(50))*time.Microsecond)
						}
						begun := opensBegun.Load()
						quiet := opensDone.Load() >= begun && !g.State().Open
						var err error
						if i%2 == 0 {
							err = g.Sender().Wait(ctx)
						} else {
							err = g.Sender().Do(ctx, nopSend)
						}
						cancel()
						switch {
						case err == nil && quiet && opensBegun.Load() == begun:
							quietNil.Add(1) // only a trial can have let it through
						case err != nil && !errors.Is(err, context.DeadlineExceeded):
							t.Errorf("wait = %v, want nil or DeadlineExceeded", err)
						}
					}
				})
			}
			flapWG.Wait()
			close(stop)
			trialWG.Wait()
			g.Open()
			done := make(chan struct{})
			go func() { waitWG.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(time.Minute):
				t.Fatalf("callers still held a minute after the final Open: %+v", g.Stats())
			}
			s := g.Stats()
			if s.HeldNow != 0 || s.HeldBytes != 0 || s.Holds != s.Releases+s.Canceled+s.Expired+s.Dropped {
				t.Errorf("stats %+v: a hold was neither released nor ended", s)
			}
			if q := quietNil.Load(); q > s.Trials {
				t.Errorf("%d waits returned nil with the gate closed throughout, more than the %d trials", q, s.Trials)
			}
			if s.Trials == 0 || s.Holds == 0 {
				t.Errorf("stats %+v: the test let no trial through", s)
			}
			t.Logf("stats %+v; %d nil waits with the gate closed throughout", s, quietNil.Load())
		})
	}
}
