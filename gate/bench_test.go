package gate

import (
	"context"
	"runtime"
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
// 10,000 held waiters have returned, against a sync.Cond broadcast and a bare
// channel close doing the same. Parking the waiters is not timed.
func BenchmarkRelease(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		benchRelease(b, n)
	}
}

func benchRelease(b *testing.B, n int) {
	b.Run("gate/waiters="+strconv.Itoa(n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			g := mustNew(b, Config{StartClosed: Reason{Code: "bench"}})
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() { _ = g.Sender().Wait(context.Background()) })
			}
			for g.Stats().HeldNow < n {
				time.Sleep(100 * time.Microsecond)
			}
			runtime.GC() // keep the setup's garbage out of the timed part
			b.StartTimer()
			g.Open()
			wg.Wait()
		}
	})
	b.Run("baseline=cond/waiters="+strconv.Itoa(n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			var (
				mu     sync.Mutex
				cond   = sync.NewCond(&mu)
				open   bool
				parked int
				wg     sync.WaitGroup
			)
			for range n {
				wg.Go(func() {
					mu.Lock()
					parked++
					for !open {
						cond.Wait()
					}
					mu.Unlock()
				})
			}
			for {
				mu.Lock()
				p := parked
				mu.Unlock()
				if p == n {
					break // all are in cond.Wait: they counted under mu
				}
				time.Sleep(100 * time.Microsecond)
			}
			runtime.GC()
			b.StartTimer()
			mu.Lock()
			open = true
			cond.Broadcast()
			mu.Unlock()
			wg.Wait()
		}
	})
	b.Run("gate/ctx/waiters="+strconv.Itoa(n), func(b *testing.B) {
		// As "gate", with contexts that can end, as real senders have.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			g := mustNew(b, Config{StartClosed: Reason{Code: "bench"}})
			var wg sync.WaitGroup
			for range n {
				wg.Go(func() { _ = g.Sender().Wait(ctx) })
			}
			for g.Stats().HeldNow < n {
				time.Sleep(100 * time.Microsecond)
			}
			runtime.GC()
			b.StartTimer()
			g.Open()
			wg.Wait()
		}
	})
	b.Run("baseline=chan-select-ctx/waiters="+strconv.Itoa(n), func(b *testing.B) {
		// A bare channel that also honours a context, as the gate does.
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			ch := make(chan struct{})
			var wg, parked sync.WaitGroup
			parked.Add(n)
			for range n {
				wg.Go(func() {
					parked.Done()
					select {
					case <-ch:
					case <-ctx.Done():
					}
				})
			}
			parked.Wait()
			runtime.GC()
			b.StartTimer()
			close(ch)
			wg.Wait()
		}
	})
	b.Run("baseline=chan/waiters="+strconv.Itoa(n), func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			ch := make(chan struct{})
			var wg, parked sync.WaitGroup
			parked.Add(n)
			for range n {
				wg.Go(func() {
					parked.Done()
					<-ch
				})
			}
			parked.Wait()
			runtime.GC()
			b.StartTimer()
			close(ch)
			wg.Wait()
		}
	})
}

// BenchmarkDoOpen measures Do around a no-op send on an open gate: the
// overhead an important send pays when the network is fine.
func BenchmarkDoOpen(b *testing.B) {
	ctx := context.Background()
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
}
