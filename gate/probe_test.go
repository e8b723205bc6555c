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
			err := r.g.Do(ctx, func(context.Context) error {
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
		const n = 5
		r := newProbeRig(t, n, nil)
		r.g.Open()
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after Open: %v, want only the oldest, [0]", ids)
		}
		// The probe fails with a connection error and retries; the others
		// keep waiting.
		r.reply[0] <- errRefused
		time.Sleep(2 * time.Second) // past the probe's backoff
		if ids := r.drainSent(); len(ids) != 1 || ids[0] != 0 {
			t.Fatalf("sends after the probe failed once: %v, want only the probe's retry", ids)
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
		waits := startWaiters(t, 3, r.g.Wait, context.Background())
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
