package main

import (
	"container/list"
	"math"
	"slices"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
)

// verdict is what the server does with one message.
type verdict int

const (
	// unique: first copy; counted and acknowledged.
	unique verdict = iota
	// duplicate: seen before; acknowledged again (only the ACK stops a
	// resend), not counted as received.
	duplicate
	// unverified: below what the server remembers of a resumed epoch;
	// counted as received and acknowledged, since dropping it could lose
	// it (see epochs).
	unverified
	// ahead: too far ahead of the mark to remember; neither counted nor
	// acknowledged, so the sender resends it later.
	ahead
)

// epochs de-duplicates messages per (ID, EPOCH) in bounded memory. For each
// epoch it keeps:
//
//   - a mark: every N <= mark has been received, except the holes;
//   - a window of W bits for mark+1 .. mark+W, the messages received out
//     of order; the mark moves up as the gap above it fills;
//   - holes: at most maxHoles numbers below the mark that were never
//     received, because the window moved past them (see ahead).
//
// A message N of a known epoch is:
//
//   - at or below the mark: a duplicate, unless it is a hole, which it
//     then fills (unique);
//   - in the window: unique the first time, a duplicate after;
//   - above the window (ahead): the window moves up to end at N, and the
//     numbers it leaves behind unreceived become holes. If that would make
//     more than maxHoles holes, the message is refused: not recorded, not
//     acknowledged, so the sender resends it later, when the gap below it
//     has filled. It is never acknowledged and dropped.
//
// A sender that numbers every message and resends every unacknowledged
// one, oldest first, stays within the window: its messages above the mark
// are at most its unacknowledged ones.
//
// An epoch idle for forgetAfter is forgotten, and so is the least recently
// used one when more than maxEpochs are kept. The first message of an epoch
// the server does not know (a new one, a forgotten one, or one from before
// the server restarted) starts it, and nothing from before is remembered:
// with N <= maxHoles+1 the mark starts at 0, as for a new epoch, and the
// numbers below N become holes once the window moves past them (for a
// resumed epoch, holes that never fill: at most maxHoles). With a larger N
// the epoch must have been running before: the mark starts at N-1 and
// everything below it is unverified, counted and acknowledged, since the
// server cannot know whether it was received before. Forgetting is what
// bounds memory; choose forgetAfter longer than a sender keeps resending
// one message (its longest outage).
type epochs struct {
	window      uint64 // W, a multiple of 64
	maxHoles    int
	forgetAfter time.Duration
	maxEpochs   int

	m   map[epochKey]*epochState
	lru list.List // of *epochState, most recently used first
}

type epochKey struct {
	id    string
	epoch uint64
}

type epochState struct {
	key   epochKey
	floor uint64   // N <= floor is unverified (a resumed epoch); 0 for a new one
	mark  uint64   // every N in (floor, mark] was received, but the holes
	bits  []uint64 // the window: bit (N-1) % W is N, for mark < N <= mark+W
	holes []uint64 // ascending numbers <= mark never received
	last  time.Time
	elem  *list.Element
}

func newEpochs(window, maxHoles int, forgetAfter time.Duration, maxEpochs int) *epochs {
	w := (uint64(window) + 63) / 64 * 64
	return &epochs{window: w, maxHoles: maxHoles, forgetAfter: forgetAfter, maxEpochs: maxEpochs, m: map[epochKey]*epochState{}}
}

// record judges one message received at now.
func (e *epochs) record(s wire.Seq, now time.Time) verdict {
	e.forget(now)
	k := epochKey{s.ID, s.Epoch}
	st := e.m[k]
	if st == nil {
		st = &epochState{key: k, bits: make([]uint64, e.window/64)}
		if s.N > uint64(e.maxHoles)+1 {
			st.floor, st.mark = s.N-1, s.N-1
		}
		st.elem = e.lru.PushFront(st)
		e.m[k] = st
		for len(e.m) > e.maxEpochs {
			e.drop(e.lru.Back().Value.(*epochState))
		}
	} else {
		e.lru.MoveToFront(st.elem)
	}
	st.last = now
	return e.judge(st, s.N)
}

func (e *epochs) judge(st *epochState, n uint64) verdict {
	switch {
	case n <= st.floor:
		return unverified
	case n <= st.mark:
		if i, ok := slices.BinarySearch(st.holes, n); ok {
			st.holes = slices.Delete(st.holes, i, i+1)
			return unique
		}
		return duplicate
	case n-st.mark > e.window:
		if !e.slide(st, n-e.window) {
			return ahead
		}
	}
	if e.has(st, n) {
		return duplicate
	}
	e.set(st, n, true)
	for st.mark < math.MaxUint64 && e.has(st, st.mark+1) {
		e.set(st, st.mark+1, false)
		st.mark++
	}
	return unique
}

// slide moves the mark up to to, turning the unreceived numbers it passes
// into holes, unless that would make more than maxHoles.
func (e *epochs) slide(st *epochState, to uint64) bool {
	beyond := uint64(0) // numbers passed that lie above the window: none received
	if to-st.mark > e.window {
		beyond = to - st.mark - e.window
	}
	if beyond > uint64(e.maxHoles) {
		return false
	}
	missing := beyond
	inWindow := min(to-st.mark, e.window)
	for n := st.mark + 1; n <= st.mark+inWindow; n++ {
		if !e.has(st, n) {
			missing++
		}
	}
	if uint64(len(st.holes))+missing > uint64(e.maxHoles) {
		return false
	}
	for n := st.mark + 1; n <= to; n++ {
		if n <= st.mark+inWindow && e.has(st, n) {
			e.set(st, n, false)
			continue
		}
		st.holes = append(st.holes, n)
	}
	st.mark = to
	return true
}

func (e *epochs) has(st *epochState, n uint64) bool {
	i := (n - 1) % e.window
	return st.bits[i/64]&(1<<(i%64)) != 0
}

func (e *epochs) set(st *epochState, n uint64, v bool) {
	i := (n - 1) % e.window
	if v {
		st.bits[i/64] |= 1 << (i % 64)
	} else {
		st.bits[i/64] &^= 1 << (i % 64)
	}
}

// forget drops the epochs idle for forgetAfter at now.
func (e *epochs) forget(now time.Time) int {
	n := 0
	for b := e.lru.Back(); b != nil; b = e.lru.Back() {
		st := b.Value.(*epochState)
		if now.Sub(st.last) < e.forgetAfter {
			break
		}
		e.drop(st)
		n++
	}
	return n
}

func (e *epochs) drop(st *epochState) {
	e.lru.Remove(st.elem)
	delete(e.m, st.key)
}

// size returns the epochs kept and the bytes their windows and holes take.
func (e *epochs) size() (epochs int, bytes int) {
	for _, st := range e.m {
		bytes += 8*cap(st.bits) + 8*cap(st.holes)
	}
	return len(e.m), bytes
}
