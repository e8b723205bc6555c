package netmon

import (
	"runtime"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
)

// waitGate follows the Gate through its changes until it is open (or
// closed, open false), under one deadline.
func waitGate(t *testing.T, g *gate.Sender, open bool) gate.State {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	for s := g.State(); ; s = g.State() {
		if s.Open == open && !s.Shutdown {
			return s
		}
		select {
		case <-s.Changed():
		case <-deadline.C:
			t.Fatalf("gate not open=%v within 20s: %+v", open, s)
		}
	}
}

// TestIntegrationMonitorStalledSubscriber: a subscriber that never reads
// slows nothing. Through storms of 20,000 address changes the queue stays
// within EventQueueSize and drops the excess, counted; a carrier loss
// right after still closes the Gate and its return opens it; and when the
// subscriber reads at last, the baseline comes first, then how many
// events it missed.
func TestIntegrationMonitorStalledSubscriber(t *testing.T) {
	t.Parallel()
	r := newRig(t, Options{}) // subscribes; nothing reads r.events until the end
	waitGate(t, r.m.Gate(), true)

	// The peak of the heap while the storm goes through (process-wide:
	// other tests run alongside, so it is reported, not asserted).
	stop, sampled := make(chan struct{}), make(chan uint64)
	go func() {
		var peak uint64
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-tick.C:
			case <-stop:
				sampled <- peak
				return
			}
		}
	}()
	// A storm overflows the queue unless the kernel's netlink socket
	// overflowed first (a loaded machine): the Monitor then re-reads the
	// state after a gap, and the storm's events shrink to a few. Storm
	// again until the queue has dropped some, within a bound.
	for round := 1; r.m.Stats().EventsDropped == 0; round++ {
		if round > 8 {
			t.Fatalf("8 storms of 20,000 address changes made the queue drop nothing: %+v", r.m.Stats())
		}
		r.a.AddrStorm("va", 10000)
	}
	r.b.IP("link", "set", "vb", "down")
	s := waitGate(t, r.m.Gate(), false)
	if s.Reason.Code != string(ReasonCarrierLost) {
		t.Errorf("gate closed for %+v, want carrier-lost", s.Reason)
	}
	close(stop)
	heapPeak := <-sampled
	r.b.IP("link", "set", "vb", "up")
	waitGate(t, r.m.Gate(), true)

	st := r.m.Stats()
	n, peak, dropped := r.m.queue.Stats() // the same count, or more as events go on
	t.Logf("queue: %d queued, peak %d of %d; %d dropped; heap in use peaked at %.1f MiB", n, peak, EventQueueSize, dropped, float64(heapPeak)/(1<<20))
	if peak > EventQueueSize || n > EventQueueSize {
		t.Errorf("queue held %d events at its peak (%d now), over its bound %d", peak, n, EventQueueSize)
	}
	if st.EventsDropped == 0 || st.EventsDropped > dropped {
		t.Errorf("Stats.EventsDropped = %d (queue says %d), want the storm's excess counted", st.EventsDropped, dropped)
	}

	ev := <-r.events
	if ev.Kind != EventBaseline {
		t.Fatalf("first event %s, want the baseline", ev.Kind)
	}
	ev = <-r.events
	if ev.Kind != EventDropped || ev.Dropped == 0 {
		t.Fatalf("second event %s (dropped %d), want a dropped event with the count", ev.Kind, ev.Dropped)
	}
	t.Logf("after the baseline: %s", ev.Msg)
}
