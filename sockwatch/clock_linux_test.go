package sockwatch

import (
	"errors"
	"fmt"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// TestIntegrationClockStep steps the wall clock the Watcher reads by +90
// days between two real failures, as NTP does on a robot without a
// real-time clock at its first sync: the event after the step carries the
// new wall time, the one before it the old.
func TestIntegrationClockStep(t *testing.T) {
	t.Parallel()
	const step = 90 * 24 * time.Hour
	var stepped atomic.Bool
	h := attachWith(t, Config{SyscallTracing: true}, func(w *Watcher) {
		w.w.clock = func() (time.Time, time.Duration) {
			wall, mono := systemClock()
			if stepped.Load() {
				wall = wall.Add(step)
			}
			return wall, mono
		}
	})
	ns := netnstest.New(t)
	fail := func() Event {
		t.Helper()
		h.do(ns, func(int) error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 9}); !errors.Is(err, unix.ENETUNREACH) {
				return fmt.Errorf("udp sendto: %v, want ENETUNREACH", err)
			}
			return marker()
		})
		got := h.untilMarker(1)
		if len(got) != 1 || got[0].Errno != syscall.ENETUNREACH {
			t.Fatalf("got %v, want one ENETUNREACH", got)
		}
		return got[0]
	}
	near := func(what string, got, want time.Time) {
		t.Helper()
		if d := got.Sub(want); d < -time.Minute || d > time.Minute {
			t.Errorf("%s: event time %v, want about %v", what, got, want)
		}
	}

	before := fail()
	near("before the step", before.Time, time.Now())
	stepped.Store(true)
	after := fail()
	near("after the step", after.Time, time.Now().Add(step))
	if after.Mono <= before.Mono {
		t.Errorf("monotonic time went from %v to %v", before.Mono, after.Mono)
	}
}

// TestIntegrationClockStepInBatch steps the wall clock while the Watcher
// reads a backlog from the ring buffer that never empties between reads
// (a storm the reader trails): the records read after the step, beyond
// clockEvery of them, carry the new wall time.
func TestIntegrationClockStepInBatch(t *testing.T) {
	t.Parallel()
	const step = 90 * 24 * time.Hour
	const sends = 1000 // well beyond Events' buffer (64) and clockEvery
	var stepped atomic.Bool
	ns := netnstest.New(t)
	comm := uniqueComm()
	// The backlog is queued before Run starts, so that Run reads it as
	// one batch: it reads the clock at the first record, fills Events'
	// buffer and waits for us with the rest queued.
	h := attachWith(t, Config{SyscallTracing: true, RingBufferSize: 1 << 20, Comms: []string{comm}}, func(w *Watcher) {
		w.w.clock = func() (time.Time, time.Duration) {
			wall, mono := systemClock()
			if stepped.Load() {
				wall = wall.Add(step)
			}
			return wall, mono
		}
		err := asThread(ns, comm, func(int) error { return sendUnroutable(sends, nil) })
		if err != nil {
			t.Fatal(err)
		}
	})
	for deadline := time.Now().Add(waitTimeout); len(h.events) < cap(h.events); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("Events holds %d of %d within %v", len(h.events), cap(h.events), waitTimeout)
		}
	}
	stepped.Store(true)
	var last Event
	deadline := time.After(waitTimeout)
	for i := range sends {
		select {
		case last = <-h.events:
		case <-deadline:
			t.Fatalf("%d of %d events within %v", i, sends, waitTimeout)
		}
	}
	if d := last.Time.Sub(time.Now().Add(step)); d < -time.Minute || d > time.Minute {
		t.Errorf("the last event of the backlog: time %v, want about %v (the stepped clock)", last.Time, time.Now().Add(step))
	}
	if s := h.w.Stats(); s.Dropped != 0 {
		t.Errorf("Stats.Dropped = %d, want 0", s.Dropped)
	}
}
