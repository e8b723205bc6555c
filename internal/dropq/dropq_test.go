package dropq

import (
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// item is a value and its rank: "b" items rank 2, "s" 1, "l" 0.
type item string

func rankOf(v item) int {
	switch v[0] {
	case 'b':
		return 2
	case 's':
		return 1
	}
	return 0
}

func take(t *testing.T, q *Queue[item]) (item, uint64) {
	t.Helper()
	v, missed, ok := q.Next(nil)
	if !ok {
		t.Fatal("Next: queue ended")
	}
	return v, missed
}

// TestDropPolicy: a full queue drops the oldest low-ranked item first,
// then drops incoming low items rather than queued high ones, and drops
// a high item only when nothing else is queued; the next take reports how
// many were missed.
func TestDropPolicy(t *testing.T) {
	t.Parallel()
	q := New(4, rankOf)
	for _, v := range []item{"s1", "l1", "l2", "s2"} {
		q.Push(v)
	}
	q.Push("l3") // full: l1 goes, the oldest low
	q.Push("s3") // l2 goes
	q.Push("l4") // only s and l3: l3 goes
	if got := q.Drain(); !slices.Equal(got, []item{"s1", "s2", "s3", "l4"}) {
		t.Fatalf("after drops: %v", got)
	}

	for _, v := range []item{"s1", "s2", "s3", "s4"} {
		q.Push(v)
	}
	q.Push("l1") // everything queued ranks higher: l1 itself is lost
	q.Push("s5") // nothing else queued: the oldest s goes
	if n, peak, dropped := q.Stats(); n != 4 || peak != 4 || dropped != 5 {
		t.Fatalf("stats = %d, %d, %d; want 4 queued, peak 4, 5 dropped", n, peak, dropped)
	}
	v, missed := take(t, q)
	if v != "s2" || missed != 2 {
		t.Fatalf("first take = %s, missed %d; want s2 after 2 missed", v, missed)
	}
	if v, missed = take(t, q); v != "s3" || missed != 0 {
		t.Fatalf("second take = %s, missed %d; want s3, none missed", v, missed)
	}
}

// TestHoldFront: items pushed while held wait behind an item pushed to
// the front, which a full queue never drops for a lower-ranked one.
func TestHoldFront(t *testing.T) {
	t.Parallel()
	q := New(3, rankOf)
	q.Hold()
	q.Push("l1")
	q.Push("s1")
	if got := q.Drain(); got != nil {
		t.Fatalf("drained %v while held", got)
	}
	q.PushFront("b")
	q.Push("s2") // full: l1 goes
	q.Push("s3") // only b and s: the oldest s goes, never b
	q.Release()
	if got := q.Drain(); !slices.Equal(got, []item{"b", "s2", "s3"}) {
		t.Fatalf("after release: %v", got)
	}
}

// TestNextWaits: Next waits for a push, returns at stop, and after Close
// hands out what is left, then reports the end with the missed count.
func TestNextWaits(t *testing.T) {
	t.Parallel()
	q := New(1, func(item) int { return 0 })
	got := make(chan item)
	go func() {
		v, _, _ := q.Next(nil)
		got <- v
	}()
	q.Push("l1")
	select {
	case v := <-got:
		if v != "l1" {
			t.Fatalf("Next = %s", v)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Next did not return after a push")
	}

	stop := make(chan struct{})
	close(stop)
	if _, _, ok := q.Next(stop); ok {
		t.Fatal("Next on an empty queue with stop closed returned an item")
	}

	q.Push("l2")
	q.Push("l3") // l2 goes
	q.Push("l4") // l3 goes
	q.Close()
	q.Push("l5") // ignored
	if v, missed := take(t, q); v != "l4" || missed != 2 {
		t.Fatalf("take = %s, missed %d; want l4 after 2", v, missed)
	}
	if _, missed, ok := q.Next(nil); ok || missed != 0 {
		t.Fatalf("after close: ok %v, missed %d", ok, missed)
	}
}

// TestBound: the queue never holds more than its size, however many
// items are pushed, and counts every one it dropped.
func TestBound(t *testing.T) {
	t.Parallel()
	q := New(100, rankOf)
	q.PushFront("b")
	for i := range 10000 {
		if i%100 == 0 {
			q.Push("s")
		} else {
			q.Push("l")
		}
	}
	n, peak, dropped := q.Stats()
	if n != 100 || peak != 100 || dropped != 10001-100 {
		t.Fatalf("n %d, peak %d, dropped %d", n, peak, dropped)
	}
	got := q.Drain()
	if got[0] != "b" {
		t.Fatalf("first = %s, want the front item kept", got[0])
	}
}
