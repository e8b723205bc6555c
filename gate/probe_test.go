package gate

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"
)

// probeRig starts n Do calls, one after the other, on a closed gate with
// Release.Probe. Each call's send reports its id on sent and returns
// whatever the test sends on its reply channel.
type probeRig struct {
	g     *Gate
	sent  chan int
	reply []chan error
	done  chan result
}

func newProbeRig(t *testing.T, n int, ctxs []context.Context) *probeRig {
	t.Helper()
	r := &probeRig{
		g:     mustNew(t, Config{StartClosed: lost, Release: Release{Probe: true}, Backoff: Backoff{Initial: time.Second, Max: time.Second}}),
		sent:  make(chan int, 100),
		reply: make([]chan error, n),
		done:  make(chan result, n),
	}
	for i := range n {
		r.reply[i] = make(chan error, 100)
		ctx := context.Background()
		if ctxs != nil && ctxs[i] != nil {
			ctx = ctxs[i]
		}
		go func() {
			err := r.g.Sender().Do(ctx, func(context.Context) error {
				r.sent <- i
				return <-r.reply[i]
			})
			r.done <- result{id: i, err: err, at: time.Now()}
		}()
		synctest.Wait()
	}
	return r
}

// drainSent returns the ids of the sends started so far.
func (r *probeRig) drainSent() []int {
	synctest.Wait()
	var ids []int
	for len(r.sent) > 0 {
		ids = append(ids, <-r.sent)
	}
	return ids
}

func TestProbeOnlyTheOldestGoesFirstAndItsSuccessReleasesTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 4
		r := newProbeRig(t, n, nil)
		r.g.Open()
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after Open: %v, want only the oldest, [0]", ids)
		}
		if s := r.g.Stats(); s.HeldNow != n-1 {
			t.Errorf("HeldNow = %d while probing, want %d", s.HeldNow, n-1)
		}
		r.reply[0] <- nil // the probe gets through
		for i := 1; i < n; i++ {
			r.reply[i] <- nil
		}
		if ids := r.drainSent(); len(ids) != n-1 {
			t.Fatalf("sends after the probe succeeded: %v, want the other %d", ids, n-1)
		}
		for range n {
			if res := <-r.done; res.err != nil {
				t.Errorf("Do %d = %v", res.id, res.err)
			}
		}
	})
}

// TestProbeRolePassesOnAfterAFailedAttempt is issue 16's head-of-line
// case: the oldest held call goes to a dead destination. Its failure
// passes the probe role to the next oldest, whose success releases the
// rest, while the failed call backs off and retries on its own.
func TestProbeRolePassesOnAfterAFailedAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 5
		r := newProbeRig(t, n, nil)
		r.g.Open()
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after Open: %v, want only the oldest, [0]", ids)
		}
		r.reply[0] <- errRefused // the dead destination
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 1 {
			t.Fatalf("sends after the probe failed: %v, want the next oldest, [1], at once", ids)
		}
		r.reply[1] <- nil // a healthy destination: the rest go
		for i := 2; i < n; i++ {
			r.reply[i] <- nil
		}
		if ids := r.drainSent(); len(ids) != n-2 {
			t.Fatalf("sends after the second probe succeeded: %v, want the other %d", ids, n-2)
		}
		for range n - 1 {
			if res := <-r.done; res.err != nil || res.id == 0 {
				t.Errorf("Do %d = %v, want nil from the healthy calls first", res.id, res.err)
			}
		}
		time.Sleep(2 * time.Second) // past the failed call's backoff
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after the backoff: %v, want the first call's retry, [0]", ids)
		}
		r.reply[0] <- nil
		if res := <-r.done; res.err != nil {
			t.Errorf("Do 0 = %v", res.err)
		}
	})
}

// TestProbeTimeoutPassesTheRoleOn: a probe whose send hangs (no deadline,
// a destination that swallows packets) holds the others only for
// Release.ProbeTimeout.
func TestProbeTimeoutPassesTheRoleOn(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Release: Release{Probe: true, ProbeTimeout: 5 * time.Second}})
		hang := make(chan struct{})
		sent := make(chan int, 10)
		done := make(chan result, 3)
		for i := range 3 {
			go func() {
				err := g.Sender().Do(context.Background(), func(context.Context) error {
					sent <- i
					if i == 0 {
						<-hang
					}
					return nil
				})
				done <- result{id: i, err: err, at: time.Now()}
			}()
			synctest.Wait()
		}
		opened := time.Now()
		g.Open()
		synctest.Wait()
		if len(sent) != 1 {
			t.Fatalf("%d sends right after Open, want the probe's only", len(sent))
		}
		<-sent
		time.Sleep(5 * time.Second)
		synctest.Wait()
		// Call 1 became the probe at +5s and succeeded, releasing call 2.
		for range 2 {
			res := <-done
			if res.err != nil || res.at.Sub(opened) != 5*time.Second {
				t.Errorf("Do %d = %v at +%v, want nil at +5s", res.id, res.err, res.at.Sub(opened))
			}
		}
		close(hang)
		if res := <-done; res.id != 0 || res.err != nil {
			t.Errorf("Do %d = %v, want the hung probe to finish", res.id, res.err)
		}
	})
}

func TestProbeThatGivesUpHandsOverToTheNextOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx0, cancel0 := context.WithCancel(context.Background())
		defer cancel0()
		r := newProbeRig(t, 3, []context.Context{ctx0, nil, nil})
		r.g.Open()
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after Open: %v, want [0]", ids)
		}
		r.reply[0] <- errRefused
		synctest.Wait()
		cancel0() // the probe gives up during its backoff
		if res := <-r.done; res.id != 0 || !errors.Is(res.err, context.Canceled) {
			t.Fatalf("first Do to end: %d with %v, want 0 with context.Canceled", res.id, res.err)
		}
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 1 {
			t.Fatalf("sends after the probe gave up: %v, want the next oldest, [1]", ids)
		}
		r.reply[1] <- nil
		r.reply[2] <- nil
		for range 2 {
			if res := <-r.done; res.err != nil {
				t.Errorf("Do %d = %v", res.id, res.err)
			}
		}
	})
}

func TestProbeNonRetryableErrorHandsOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newProbeRig(t, 2, nil)
		r.g.Open()
		r.drainSent()
		r.reply[0] <- errBad // not a connection error: Do 0 ends at once
		if res := <-r.done; res.id != 0 || !errors.Is(res.err, errBad) {
			t.Fatalf("Do 0 = %v, want errBad", res.err)
		}
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 1 {
			t.Fatalf("sends after the probe ended: %v, want [1]", ids)
		}
		r.reply[1] <- nil
		if res := <-r.done; res.err != nil {
			t.Errorf("Do 1 = %v", res.err)
		}
	})
}

func TestProbeRoundEndsWhenTheGateClosesAgain(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newProbeRig(t, 3, nil)
		r.g.Open()
		r.drainSent()
		r.g.Close(lost)
		r.reply[0] <- errUnreach // fails; the gate is closed: Do 0 holds again
		synctest.Wait()
		if s := r.g.Stats(); s.HeldNow != 3 {
			t.Fatalf("HeldNow = %d after the gate closed under the probe, want 3", s.HeldNow)
		}
		r.g.Open() // a new round: the oldest held Do call (1) goes first
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 1 {
			t.Fatalf("sends after reopening: %v, want [1]", ids)
		}
		for i := range 3 {
			r.reply[i] <- nil
		}
		for range 3 {
			if res := <-r.done; res.err != nil {
				t.Errorf("Do %d = %v", res.id, res.err)
			}
		}
	})
}

func TestProbeLeavesWaitCallersAlone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r := newProbeRig(t, 2, nil)
		waits := startWaiters(t, 3, r.g.Sender().Wait, context.Background())
		r.g.Open()
		synctest.Wait()
		if len(waits) != 3 {
			t.Errorf("%d of 3 held Wait callers released while probing, want all", len(waits))
		}
		if ids := r.drainSent(); len(ids) != 1 {
			t.Errorf("sends while probing: %v, want one", ids)
		}
		r.reply[0] <- nil
		r.reply[1] <- nil
		for range 2 {
			if res := <-r.done; res.err != nil {
				t.Errorf("Do %d = %v", res.id, res.err)
			}
		}
	})
}
