// Package dropq is a bounded FIFO whose producer never waits: when it is
// full, a push drops the oldest item of the lowest rank present (or the
// pushed item itself, when it ranks below everything queued), and the
// consumer learns how many items it missed with the next item it takes.
// netmon feeds its event subscriber through one, and `netmon watch` its
// log writer.
package dropq

import "sync"

// Queue is a bounded FIFO of T. The zero value is not usable; use [New].
// Its methods are safe for concurrent use.
type Queue[T any] struct {
	size int
	rank func(T) int

	mu      sync.Mutex
	buf     []T // ring; grows up to size
	head, n int
	counts  []int  // queued items by rank
	missed  uint64 // dropped since the consumer last took an item
	dropped uint64 // dropped in all
	peak    int    // the most items ever queued
	held    bool   // Next and Drain hand out nothing until Release
	closed  bool
	wake    chan struct{} // 1-buffered: an item arrived, the queue closed or was released
}

// New returns a queue that holds at most size items (size >= 1). rank
// gives an item's rank, from 0 (dropped first) up (dropped last); ranks
// are small numbers.
func New[T any](size int, rank func(T) int) *Queue[T] {
	if size < 1 {
		panic("dropq: size must be positive")
	}
	return &Queue[T]{size: size, rank: rank, wake: make(chan struct{}, 1)}
}

// Push appends v, making room by the drop policy if the queue is full.
// It never blocks. A push after Close is ignored.
func (q *Queue[T]) Push(v T) { q.push(v, false) }

// PushFront puts v before every queued item (a baseline that must come
// first), by the same drop policy as Push.
func (q *Queue[T]) PushFront(v T) { q.push(v, true) }

func (q *Queue[T]) push(v T, front bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	r := q.rank(v)
	for r >= len(q.counts) {
		q.counts = append(q.counts, 0)
	}
	if q.n == q.size && !q.dropLocked(r) {
		return // v ranks below everything queued: v is the one dropped
	}
	if q.n == len(q.buf) {
		q.growLocked()
	}
	if front {
		q.head = (q.head - 1 + len(q.buf)) % len(q.buf)
		q.buf[q.head] = v
	} else {
		q.buf[(q.head+q.n)%len(q.buf)] = v
	}
	q.n++
	q.counts[r]++
	q.peak = max(q.peak, q.n)
	q.signal()
}

// dropLocked makes room for an item of rank r in a full queue: it drops
// the oldest queued item of the lowest rank present, unless r is lower
// still, in which case it drops nothing and reports false (the incoming
// item is the one lost). Either way one item is counted as dropped.
func (q *Queue[T]) dropLocked(r int) bool {
	q.dropped++
	q.missed++
	low := 0
	for low < len(q.counts) && q.counts[low] == 0 {
		low++
	}
	if r < low {
		return false
	}
	i := 0
	for q.rank(q.at(i)) != low {
		i++
	}
	// Shift the i items before it one place towards the tail.
	for j := i; j > 0; j-- {
		q.buf[(q.head+j)%len(q.buf)] = q.at(j - 1)
	}
	var zero T
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.counts[low]--
	return true
}

func (q *Queue[T]) at(i int) T { return q.buf[(q.head+i)%len(q.buf)] }

// growLocked doubles the ring, up to size, keeping the order.
func (q *Queue[T]) growLocked() {
	buf := make([]T, min(max(2*len(q.buf), 16), q.size))
	for i := range q.n {
		buf[i] = q.at(i)
	}
	q.buf, q.head = buf, 0
}

func (q *Queue[T]) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// popLocked takes the oldest item and the count of items dropped since the
// last take.
func (q *Queue[T]) popLocked() (v T, missed uint64, ok bool) {
	if q.n == 0 || q.held {
		return v, 0, false
	}
	v = q.buf[q.head]
	var zero T
	q.buf[q.head] = zero
	q.head = (q.head + 1) % len(q.buf)
	q.n--
	q.counts[q.rank(v)]--
	missed, q.missed = q.missed, 0
	return v, missed, true
}

// Next takes the oldest item and how many items were dropped since the
// previous take, waiting for one until stop is closed (a nil stop never
// is) or the queue is closed and empty; then ok is false, and missed
// counts the items dropped since the last take.
func (q *Queue[T]) Next(stop <-chan struct{}) (v T, missed uint64, ok bool) {
	for {
		q.mu.Lock()
		v, missed, ok = q.popLocked()
		closed := q.closed && (q.n == 0 || q.held)
		if !ok && closed {
			missed, q.missed = q.missed, 0
		}
		q.mu.Unlock()
		if ok || closed {
			return v, missed, ok
		}
		select {
		case <-q.wake:
		case <-stop:
			return v, 0, false
		}
	}
}

// Drain takes every queued item at once (none while held) and forgets
// the drop count since the last take.
func (q *Queue[T]) Drain() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []T
	for {
		v, _, ok := q.popLocked()
		if !ok {
			return out
		}
		out = append(out, v)
	}
}

// Hold makes Next and Drain hand out nothing until Release; pushes carry on.
func (q *Queue[T]) Hold() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = true
}

// Release ends a Hold.
func (q *Queue[T]) Release() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.held = false
	q.signal()
}

// Close ends the queue: later pushes are ignored, and Next returns
// ok=false once the queued items have been taken.
func (q *Queue[T]) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.signal()
}

// Clear forgets the queued items.
func (q *Queue[T]) Clear() {
	q.mu.Lock()
	defer q.mu.Unlock()
	clear(q.buf)
	clear(q.counts)
	q.head, q.n = 0, 0
}

// Stats returns the items queued now, the most ever queued and the items
// dropped in all.
func (q *Queue[T]) Stats() (n, peak int, dropped uint64) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n, q.peak, q.dropped
}
