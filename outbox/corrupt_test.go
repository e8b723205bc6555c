package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fillT makes an outbox in a new directory with n pending messages of
// 100 bytes, closes it and returns the directory.
func fillT(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	o, err := Open(dir, Config{SyncInterval: time.Hour}) // one commit, at Close
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		appendT(t, o, fmt.Sprint("s", i%3), Class(i%2), string(bytes.Repeat([]byte{'x'}, 100)))
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestCorruptStoreIsMovedAsideAndAFreshOneStarted(t *testing.T) {
	for _, tc := range []struct {
		name  string
		spoil func(t *testing.T, path string)
		// moved: the store must be moved aside (else it may instead be
		// read with its bad records removed).
		moved bool
	}{
		// bbolt makes a new store in an empty file (as it finds one
		// after a crash between creating and writing it); the fresh
		// epoch keeps receivers apart.
		{"empty file", func(t *testing.T, p string) { truncate(t, p, 0) }, false},
		{"truncated to one page", func(t *testing.T, p string) { truncate(t, p, 4096) }, true},
		{"truncated to half", func(t *testing.T, p string) { truncate(t, p, size(t, p)/2) }, false},
		{"not a bbolt file", func(t *testing.T, p string) {
			if err := os.WriteFile(p, bytes.Repeat([]byte("not a database "), 2000), 0o600); err != nil {
				t.Fatal(err)
			}
		}, true},
		{"both meta pages flipped", func(t *testing.T, p string) { flip(t, p, 0, 2*4096, 64, 1) }, true},
		{"data pages flipped", func(t *testing.T, p string) { flip(t, p, 4*4096, size(t, p), 200, 2) }, false},
		{"data pages flipped, other bytes", func(t *testing.T, p string) { flip(t, p, 4*4096, size(t, p), 200, 3) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := fillT(t, 2000)
			path := filepath.Join(dir, FileName)
			tc.spoil(t, path)
			o := openT(t, dir, Config{})
			ce := o.MovedAside()
			s := o.Stats()
			t.Logf("moved aside: %v; stats %+v", ce, s)
			if tc.moved && ce == nil {
				t.Fatalf("Open of a spoiled store did not move it aside; stats %+v", s)
			}
			if ce != nil {
				if !errors.Is(ce, ErrCorrupt) || ce.Path != path {
					t.Errorf("MovedAside = %#v, want a CorruptError for %s wrapping ErrCorrupt", ce, path)
				}
				if _, err := os.Stat(ce.MovedTo); err != nil {
					t.Errorf("the store moved aside is not at %s: %v", ce.MovedTo, err)
				}
				if s.Records != 0 || s.MovedAside != 1 {
					t.Errorf("fresh store: %+v, want empty and one moved aside", s)
				}
			}
			if ce == nil && s.Corrupt == 0 && s.Records == 2000 && !tc.moved {
				t.Logf("the spoiled bytes hit no record")
			}
			// The outbox keeps working: append, read back, acknowledge.
			n := appendT(t, o, "after", Important, "works")
			ps := pending(t, o)
			if len(ps) == 0 || ps[len(ps)-1] != "works" {
				t.Fatalf("pending after the Append ends with %q, want \"works\"", ps[max(len(ps)-1, 0):])
			}
			if err := o.Ack(n); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRecordFailingItsCRCIsRemovedAndCounted(t *testing.T) {
	dir := fillT(t, 100)
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(b, bytes.Repeat([]byte{'x'}, 100)) // a payload
	if i < 0 {
		t.Fatal("no payload found in the store")
	}
	b[i+50] = 'y'
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	o := openT(t, dir, Config{})
	if s := o.Stats(); s.Corrupt != 1 || s.Records != 99 || s.MovedAside != 0 {
		t.Errorf("Stats %+v; want 1 corrupt record removed, 99 pending, nothing moved aside", s)
	}
}

func truncate(t *testing.T, p string, n int64) {
	t.Helper()
	if err := os.Truncate(p, n); err != nil {
		t.Fatal(err)
	}
}

func size(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// flip inverts n bytes of the file at p, chosen in [from, to) with seed.
func flip(t *testing.T, p string, from, to int64, n int, seed uint64) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(seed, seed))
	for range n {
		i := from + r.Int64N(min(to, int64(len(b)))-from)
		b[i] ^= 0xff
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestOpenDoesNotMoveALockedStoreAside(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir, Config{}) // holds bbolt's lock
	_, err := Open(dir, Config{})
	if err == nil {
		t.Fatal("a second Open of the same directory succeeded")
	}
	if m, _ := filepath.Glob(filepath.Join(dir, FileName+".corrupt-*")); len(m) > 0 {
		t.Errorf("a locked store was moved aside: %v (Open: %v)", m, err)
	}
	t.Logf("second Open: %v", err)
}

func TestPageOverflowingTheStoreIsMovedAside(t *testing.T) {
	// bbolt frees a page with all its overflow pages, one by one: a
	// leaf whose overflow count reads 4 billion made the next write
	// spin for ever. Open must catch it.
	dir := fillT(t, 300)
	path := filepath.Join(dir, FileName)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const pageSize = 4096 // bbolt's page header: id u64, flags u16, count u16, overflow u32
	spoiled := false
	for off := 2 * pageSize; off+pageSize <= len(b); off += pageSize {
		if binary.LittleEndian.Uint16(b[off+8:]) == 0x02 { // a leaf
			binary.LittleEndian.PutUint32(b[off+12:], 0xfffffff0)
			spoiled = true
			break
		}
	}
	if !spoiled {
		t.Fatal("no leaf page found")
	}
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	o := openT(t, dir, Config{})
	if ce := o.MovedAside(); ce == nil || !strings.Contains(ce.Error(), "overflows") {
		t.Fatalf("MovedAside = %v, want the overflowing page named", ce)
	}
	appendT(t, o, "s", Important, "works")
}

func TestOpenSurvivesFlippedBytesAnywhere(t *testing.T) {
	t.Parallel()
	dir := fillT(t, 300)
	orig, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		t.Fatal(err)
	}
	// Every 97th byte, each flipped alone: meta, freelist, branch and
	// leaf headers, keys, values.
	moved, corrupt := 0, 0
	for at := 0; at < len(orig); at += 97 {
		b := bytes.Clone(orig)
		b[at] ^= 0xff
		d := t.TempDir()
		if err := os.WriteFile(filepath.Join(d, FileName), b, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := Open(d, Config{})
		if err != nil {
			t.Fatalf("Open with byte %d flipped: %v", at, err)
		}
		if _, err := o.Append(context.Background(), Message{Payload: []byte("after")}); err != nil {
			t.Fatalf("Append with byte %d flipped: %v", at, err)
		}
		pendingMsgs(t, o) // reads every record: no panic, no endless loop
		s := o.Stats()
		moved += int(s.MovedAside)
		corrupt += int(s.Corrupt)
		if err := o.Close(); err != nil {
			t.Fatalf("Close with byte %d flipped: %v", at, err)
		}
	}
	t.Logf("%d single-byte flips: %d stores moved aside, %d records removed as corrupt", (len(orig)+96)/97, moved, corrupt)
}

// TestSalvageRecoversAStoreMovedAside does what the package doc tells a
// person to do with a store moved aside: Open would only move a copy of
// it aside again (bbolt cannot find its tree), so Salvage reads its
// messages page by page. Both meta pages spoiled; with 3 messages the
// buckets are inline in the root page, with 2000 they have pages of
// their own. Acknowledged messages may come back (old page copies), the
// pending ones must all come back, as written and under their epoch.
func TestSalvageRecoversAStoreMovedAside(t *testing.T) {
	for _, n := range []int{3, 2000} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			t.Parallel()
			dir := fillT(t, n)
			o := openT(t, dir, Config{})
			want := pendingMsgs(t, o)
			for _, m := range want[:n/3] {
				if err := o.Ack(m.N); err != nil {
					t.Fatal(err)
				}
			}
			want = want[n/3:]
			epoch := o.Epoch()
			if err := o.Close(); err != nil {
				t.Fatal(err)
			}
			flip(t, filepath.Join(dir, FileName), 0, 2*4096, 64, 1)
			o = openT(t, dir, Config{})
			ce := o.MovedAside()
			if ce == nil {
				t.Fatal("a store with both meta pages spoiled was not moved aside")
			}
			// Open on a copy, as the doc once said, only moves it
			// aside again.
			b, err := os.ReadFile(ce.MovedTo)
			if err != nil {
				t.Fatal(err)
			}
			cp := t.TempDir()
			if err := os.WriteFile(filepath.Join(cp, FileName), b, 0o600); err != nil {
				t.Fatal(err)
			}
			if c := openT(t, cp, Config{}); c.MovedAside() == nil || c.Stats().Records != 0 {
				t.Errorf("Open of a copy of the spoiled store read it: %+v", c.Stats())
			}
			gotEpoch, got, err := Salvage(ce.MovedTo)
			if err != nil {
				t.Fatalf("Salvage(%s): %v", ce.MovedTo, err)
			}
			t.Logf("salvaged %d messages (%d pending, %d acknowledged) of epoch %x", len(got), len(want), n/3, gotEpoch)
			if gotEpoch != epoch {
				t.Errorf("salvaged epoch %x, want the store's %x", gotEpoch, epoch)
			}
			byN := map[uint64]Message{}
			for i, m := range got {
				if i > 0 && m.N <= got[i-1].N {
					t.Fatalf("salvaged N %d after %d: want each once, in order", m.N, got[i-1].N)
				}
				byN[m.N] = m
			}
			for _, w := range want {
				g, ok := byN[w.N]
				if !ok {
					t.Errorf("pending message %d not salvaged", w.N)
					continue
				}
				if g.Epoch != epoch || g.Stream != w.Stream || g.Class != w.Class || !g.Created.Equal(w.Created) || !bytes.Equal(g.Payload, w.Payload) {
					t.Errorf("salvaged %+v, want %+v", g, w)
				}
			}
		})
	}
}

func TestSalvageOfNoStoreSaysWhy(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x")
	if _, _, err := Salvage(p); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Salvage of a missing file: %v, want an error wrapping ErrNotExist", err)
	}
	if err := os.WriteFile(p, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Salvage(p); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), p) {
		t.Errorf("Salvage of a 5-byte file: %v, want an error wrapping ErrCorrupt naming %s", err, p)
	}
}

// TestStoreFoundCorruptWhileOpenKeepsTheGroupCommitQueue: a store that
// breaks while open (here two keys of a leaf page swapped, found by the
// next read) is replaced; the messages the group commit had queued for
// it are accepted, so they move to the fresh store, numbered from 1 in
// its epoch, ahead of later appends, counted in Stats, and kept across a
// reopen.
func TestStoreFoundCorruptWhileOpenKeepsTheGroupCommitQueue(t *testing.T) {
	dir := fillT(t, 200)
	path := filepath.Join(dir, FileName)
	o := openT(t, dir, Config{SyncInterval: time.Hour})
	for _, p := range []string{"q1", "q2", "q3"} {
		appendT(t, o, "q", Important, p)
	}
	// Swap the keys of two neighbouring records in one page, in place
	// (bbolt's map of the file sees it).
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	payload := bytes.Repeat([]byte{'x'}, 100)
	keyOf := func(i int) int { return i - crcLen - 2 - headerFixed - 8 } // stream "sN": 2 bytes
	i1 := bytes.Index(b, payload)
	i2 := i1 + 1 + bytes.Index(b[i1+1:], payload)
	if i1 < 0 || i2 <= i1 || i1/4096 != i2/4096 {
		t.Fatalf("no two records found in one page (%d, %d)", i1, i2)
	}
	k1, k2 := keyOf(i1), keyOf(i2)
	if b[k1+8] != recordVersion || b[k2+8] != recordVersion {
		t.Fatalf("no record headers at %d and %d", k1+8, k2+8)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err1 := f.WriteAt(b[k2:k2+8], int64(k1))
	_, err2 := f.WriteAt(b[k1:k1+8], int64(k2))
	if err := errors.Join(err1, err2, f.Close()); err != nil {
		t.Fatal(err)
	}
	pendingMsgs(t, o) // the read finds the tree out of order
	if o.MovedAside() == nil {
		t.Fatal("the store was not moved aside")
	}
	if s := o.Stats(); s.Records != 3 {
		t.Errorf("after the store was replaced: %d pending, want the 3 queued", s.Records)
	}
	if n := appendT(t, o, "q", Important, "q4"); n != 4 {
		t.Errorf("the Append after the replacement got N %d, want 4 (after the 3 queued)", n)
	}
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o2 := openT(t, dir, Config{})
	var got []string
	for _, m := range pendingMsgs(t, o2) {
		got = append(got, fmt.Sprintf("%d:%s", m.N, m.Payload))
	}
	if want := "1:q1 2:q2 3:q3 4:q4"; strings.Join(got, " ") != want || o2.Epoch() != epoch {
		t.Errorf("after reopen: pending %v in epoch %x; want %s in the fresh store's epoch %x", got, o2.Epoch(), want, epoch)
	}
}
