package main

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// memoryBound is the most bytes one epoch may take.
func memoryBound(e *epochs) int { return int(e.window)/8 + 16*e.maxHoles + 64 }

// TestWindowPropertyExact: a sender that keeps at most W messages
// unacknowledged, resends them in any order, any number of times, and loses
// acknowledgements at random. Every message is counted exactly once, a
// duplicate is only ever a message counted before (no false duplicate),
// nothing is unverified, and the epoch's memory stays bounded.
func TestWindowPropertyExact(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	for trial := range 300 {
		r := rand.New(rand.NewPCG(seed, uint64(trial)))
		w := 64 * (1 + r.IntN(8))
		e := newEpochs(w, w+r.IntN(w), time.Hour, 10)
		m := 1 + r.IntN(5000)
		inflight := 1 + r.IntN(w)
		pAck := 0.2 + 0.8*r.Float64()
		counted := make([]int, m+1)
		var out []uint64 // unacknowledged messages the sender (re)sends
		next, acked, sends, refused := uint64(1), 0, 0, 0
		for acked < m {
			for len(out) < inflight && next <= uint64(m) {
				out = append(out, next)
				next++
			}
			i := r.IntN(len(out))
			n := out[i]
			sends++
			if sends > 1000*m {
				t.Fatalf("trial %d: no end after %d sends (%d of %d acknowledged)", trial, sends, acked, m)
			}
			switch v := e.record(wire.Seq{ID: "r", Epoch: 1, N: n}, t0); v {
			case unique:
				if counted[n]++; counted[n] > 1 {
					t.Fatalf("trial %d: %d counted twice", trial, n)
				}
			case duplicate:
				if counted[n] == 0 {
					t.Fatalf("trial %d: %d called a duplicate before it was counted: it would be lost", trial, n)
				}
			case ahead:
				refused++
				continue // not acknowledged: stays in out
			default:
				t.Fatalf("trial %d: %d judged %v", trial, n, v)
			}
			if _, b := e.size(); b > memoryBound(e) {
				t.Fatalf("trial %d: %d bytes for one epoch, bound %d", trial, b, memoryBound(e))
			}
			if r.Float64() < pAck { // else the ACK is lost and n is sent again
				out[i] = out[len(out)-1]
				out = out[:len(out)-1]
				acked++
			}
		}
		for n := 1; n <= m; n++ {
			if counted[n] != 1 {
				t.Fatalf("trial %d: message %d counted %d times", trial, n, counted[n])
			}
		}
		if trial < 3 {
			t.Logf("trial %d: W %d, holes <= %d, %d messages, %d unacknowledged at most: %d sends, %d refused", trial, w, e.maxHoles, m, inflight, sends, refused)
		}
	}
}

// TestWindowPropertyAnyOrder: messages in a random permutation of the
// whole run, with duplicates, far beyond the window. A refused message is
// resent later. Every message ends acknowledged and counted, no message is
// called a duplicate before it was counted, memory stays bounded; and when
// the run fits in the holes, the count is exact.
func TestWindowPropertyAnyOrder(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var copies, refusals, exactTrials, unverifiedTrials int
	for trial := range 200 {
		r := rand.New(rand.NewPCG(seed, uint64(trial)))
		w := 64 * (1 + r.IntN(4))
		e := newEpochs(w, r.IntN(3*w), time.Hour, 10)
		m := 1 + r.IntN(4*w)
		counted := make([]int, m+1)
		var pool []uint64
		for n := 1; n <= m; n++ {
			pool = append(pool, uint64(n))
			for r.IntN(4) == 0 {
				pool = append(pool, uint64(n)) // a duplicate
			}
		}
		r.Shuffle(len(pool), func(i, j int) { pool[i], pool[j] = pool[j], pool[i] })
		first := pool[0]
		copies += len(pool)
		for rounds := 0; len(pool) > 0; rounds++ {
			if rounds > 100*m {
				t.Fatalf("trial %d: no end: %d copies still refused", trial, len(pool))
			}
			var later []uint64
			for _, n := range pool {
				switch v := e.record(wire.Seq{ID: "r", Epoch: 1, N: n}, t0); v {
				case unique, unverified:
					counted[n]++
				case duplicate:
					if counted[n] == 0 {
						t.Fatalf("trial %d: %d called a duplicate before it was counted", trial, n)
					}
				case ahead:
					later = append(later, n)
					refusals++
				}
				if _, b := e.size(); b > memoryBound(e) {
					t.Fatalf("trial %d: %d bytes for one epoch, bound %d", trial, b, memoryBound(e))
				}
			}
			r.Shuffle(len(later), func(i, j int) { later[i], later[j] = later[j], later[i] })
			pool = later
		}
		exact := first <= uint64(e.maxHoles)+1
		for n := 1; n <= m; n++ {
			if counted[n] == 0 || exact && counted[n] != 1 {
				t.Fatalf("trial %d (first %d, exact %v): message %d counted %d times", trial, first, exact, n, counted[n])
			}
		}
		if exact {
			exactTrials++
		} else {
			unverifiedTrials++
		}
	}
	t.Logf("200 runs, %d copies in random order: %d refusals (resent later); %d runs counted exactly, %d began beyond the holes (counted at least once)",
		copies, refusals, exactTrials, unverifiedTrials)
}

// TestEpochsForgetAndResume: an idle epoch is forgotten; its sender coming
// back with a small N is de-duplicated exactly again, one with a large N
// is taken from there and the numbers below are unverified, never dropped.
func TestEpochsForgetAndResume(t *testing.T) {
	e := newEpochs(64, 64, time.Minute, 3)
	rec := func(id string, n uint64, at time.Duration) verdict {
		return e.record(wire.Seq{ID: id, Epoch: 7, N: n}, t0.Add(at))
	}
	for n := uint64(1); n <= 50; n++ {
		rec("a", n, 0)
	}
	if v := rec("a", 50, 30*time.Second); v != duplicate {
		t.Fatalf("50 again within the minute: %v, want duplicate", v)
	}
	if n := e.forget(t0.Add(91 * time.Second)); n != 1 {
		t.Fatalf("forgot %d epochs after 61s idle, want 1", n)
	}
	// Resumed at 51: 51..200 are counted once each; 1..50 never come
	// again, and become holes as the window passes them.
	for n := uint64(51); n <= 200; n++ {
		if v := rec("a", n, 2*time.Minute); v != unique {
			t.Fatalf("resumed %d: %v, want unique", n, v)
		}
	}
	// A sender resumed far ahead: the mark starts below it.
	if v := rec("b", 100000, 2*time.Minute); v != unique {
		t.Fatalf("b 100000: %v", v)
	}
	if v := rec("b", 99999, 2*time.Minute); v != unverified {
		t.Fatalf("b 99999: %v, want unverified (counted, acknowledged)", v)
	}
	if v := rec("b", 100000, 2*time.Minute); v != duplicate {
		t.Fatalf("b 100000 again: %v, want duplicate", v)
	}
	// More epochs than --max-epochs: the least recently used goes.
	rec("c", 1, 2*time.Minute)
	rec("d", 1, 2*time.Minute)
	if n, _ := e.size(); n != 3 {
		t.Fatalf("%d epochs kept, want 3 (the most)", n)
	}
	if _, ok := e.m[epochKey{"a", 7}]; ok {
		t.Error("the least recently used epoch (a) was kept")
	}
	if n := e.forget(t0.Add(time.Hour)); n != 3 {
		t.Errorf("forgot %d after an hour, want 3", n)
	}
	if n, b := e.size(); n != 0 || b != 0 {
		t.Errorf("after forgetting: %d epochs, %d bytes", n, b)
	}
}

func BenchmarkRecordInOrder(b *testing.B) {
	e := newEpochs(4096, 4096, time.Hour, 10)
	s := wire.Seq{ID: "robot-1", Epoch: 1}
	b.ReportAllocs()
	for b.Loop() {
		s.N++
		e.record(s, t0)
	}
}
