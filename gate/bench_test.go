package gate

import (
	"context"
	"runtime"
	"runtime/metrics"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkWaitOpen measures what every send pays on an open gate. The
// baseline is a receive from a closed channel, the cheapest channel-only
// gate.
func BenchmarkWaitOpen(b *testing.B) {
	ctx := context.Background()
	b.Run("open", func(b *testing.B) {
		g := mustNew(b, Config{})
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Sender().Wait(ctx)
		}
	})
	b.Run("open/parallel", func(b *testing.B) {
		g := mustNew(b, Config{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = g.Sender().Wait(ctx)
			}
		})
	})
	b.Run("baseline=atomic-load", func(b *testing.B) {
		var open atomic.Bool
		open.Store(true)
		b.ReportAllocs()
		for b.Loop() {
			_ = open.Load()
		}
	})
	b.Run("baseline=closed-chan", func(b *testing.B) {
		ch := make(chan struct{})
		close(ch)
		b.ReportAllocs()
		for b.Loop() {
			<-ch
		}
	})
	b.Run("baseline=mutex", func(b *testing.B) {
		var mu sync.Mutex
		open := true
		b.ReportAllocs()
		for b.Loop() {
			mu.Lock()
			_ = open
			mu.Unlock()
		}
	})
}

// BenchmarkRelease measures the time from Open until all of 1,000 or
// 10,000 held waiters have returned, against a sync.Cond broadcast and a
// bare channel close doing the same. Parking the waiters is not timed.
//
// Every variant parks its waiters and settles the same way (settle): each
// waiter counts itself just before it blocks, and the release begins only
// once all have counted and the scheduler reports them all waiting, with
// nothing runnable, and after a GC. (Before issue 16 each variant counted
// at another moment: the gate when a waiter joined its list, before it
// parked; the Cond under its mutex inside the wait; the channels before
// the receive, without waiting for it to park; so a channel's release
// could include waiters that were still on their way, and the ratios
// compared different things.)
func BenchmarkRelease(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		benchRelease(b, n)
	}
}

// releaseCase is one variant: make returns how a waiter parks and how all
// are released, fresh for each iteration.
type releaseCase struct {
	name string
	make func() (park, release func())
}

func benchRelease(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cases := []releaseCase{
		{"gate", func() (func(), func()) {
			g := mustNew(b, Config{StartClosed: Reason{Code: "bench"}})
			s := g.Sender()
			return func() { _ = s.Wait(context.Background()) }, g.Open
		}},
		{"baseline=cond", func() (func(), func()) {
			var (
				mu   sync.Mutex
				cond = sync.NewCond(&mu)
				open bool
			)
			park := func() {
				mu.Lock()
				for !open {
					cond.Wait()
				}
				mu.Unlock()
			}
			release := func() {
				mu.Lock()
				open = true
				cond.Broadcast()
				mu.Unlock()
			}
			return park, release
		}},
		{"gate/ctx", func() (func(), func()) {
			// As "gate", with a context that can end, as real senders have.
			g := mustNew(b, Config{StartClosed: Reason{Code: "bench"}})
			s := g.Sender()
			return func() { _ = s.Wait(ctx) }, g.Open
		}},
		{"baseline=chan-select-ctx", func() (func(), func()) {
			// A bare channel that also honours a context, as the gate does.
			ch := make(chan struct{})
			return func() {
				select {
				case <-ch:
				case <-ctx.Done():
				}
			}, func() { close(ch) }
		}},
		{"baseline=chan", func() (func(), func()) {
			ch := make(chan struct{})
			return func() { <-ch }, func() { close(ch) }
		}},
	}
	for _, c := range cases {
		b.Run(c.name+"/waiters="+strconv.Itoa(n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				b.StopTimer()
				park, release := c.make()
				base := schedWaiting()
				var arrived atomic.Int64
				var wg sync.WaitGroup
				for range n {
					wg.Go(func() {
						arrived.Add(1)
						park()
					})
				}
				settle(b, n, &arrived, base)
				b.StartTimer()
				release()
				wg.Wait()
			}
		})
	}
}

// settle returns once n waiters have counted themselves in arrived and the
// scheduler reports n more goroutines waiting than base and none runnable,
// then collects the setup's garbage, so that the timed part begins with
// every waiter parked, whatever it parks on.
func settle(b *testing.B, n int, arrived *atomic.Int64, base uint64) {
	b.Helper()
	deadline := time.Now().Add(time.Minute)
	for arrived.Load() < int64(n) || schedWaiting() < base+uint64(n) || schedRunnable() > 0 {
		if time.Now().After(deadline) {
			b.Fatalf("waiters did not park within a minute: %d arrived, %d waiting (base %d), %d runnable",
				arrived.Load(), schedWaiting(), base, schedRunnable())
		}
		time.Sleep(100 * time.Microsecond)
	}
	runtime.GC()
}

// schedWaiting and schedRunnable read the scheduler's goroutine counts.
func schedWaiting() uint64  { return schedMetric("/sched/goroutines/waiting:goroutines") }
func schedRunnable() uint64 { return schedMetric("/sched/goroutines/runnable:goroutines") }

func schedMetric(name string) uint64 {
	s := []metrics.Sample{{Name: name}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// BenchmarkDoOpen measures Do through the sender view around a no-op
// send on an open gate: the overhead an important send pays when the
// network is fine.
func BenchmarkDoOpen(b *testing.B) {
	ctx := context.Background()
	b.Run("open/cancelable-ctx", func(b *testing.B) {
		// A caller context that can end, as a real sender's does.
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		g := mustNew(b, Config{})
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Sender().Do(ctx, nopSend)
		}
	})
	b.Run("open", func(b *testing.B) {
		g := mustNew(b, Config{})
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Sender().Do(ctx, nopSend)
		}
	})
	b.Run("open/hooks", func(b *testing.B) {
		var n int
		g := mustNew(b, Config{OnSuccess: func(Attempt) { n++ }})
		b.ReportAllocs()
		for b.Loop() {
			_ = g.Sender().Do(ctx, nopSend)
		}
	})
	b.Run("open/parallel", func(b *testing.B) {
		g := mustNew(b, Config{})
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				_ = g.Sender().Do(ctx, nopSend)
			}
		})
	})
	// The floor a Do cannot go below: a Wait, then the call of send
	// through a func value that the compiler cannot inline.
	b.Run("baseline=wait-then-send", func(b *testing.B) {
		g := mustNew(b, Config{})
		s := g.Sender()
		b.ReportAllocs()
		for b.Loop() {
			if s.Wait(ctx) == nil {
				_ = benchSend(ctx)
			}
		}
	})
}

// benchSend is nopSend behind a variable, so that its call stays an
// indirect one, as send's is in Do.
var benchSend = nopSend
