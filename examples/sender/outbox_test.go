package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/outbox"
)

var outboxLineRE = regexp.MustCompile(`(?m)^outbox (\S+): (\d+) pending, next (\d+)$`)

// outboxSummary splits --outbox's output into the outbox line (pending,
// next) and the usual first line and summary.
func outboxSummary(t *testing.T, out string) (pending, next, sent, acked, resent int) {
	t.Helper()
	m := outboxLineRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("output %q lacks the outbox line", out)
	}
	pending, _ = strconv.Atoi(m[2])
	next, _ = strconv.Atoi(m[3])
	sent, acked, resent, _ = summaryOf(t, strings.Replace(out, m[0]+"\n", "", 1))
	return pending, next, sent, acked, resent
}

// TestOutboxResendsAfterServerResets is TestRunResendsAfterServerResets
// with --outbox: messages go through outbox.Drain, and every reset makes
// Drain send again from the oldest unacknowledged message.
func TestOutboxResendsAfterServerResets(t *testing.T) {
	srv := newFakeServer(t, nil, func(i int) (int, bool) {
		if i == 4 {
			return 0, false
		}
		return 300, false
	})
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "2000", "--window", "64", "--monitor=false",
		"--log-level", "warn", "--outbox", t.TempDir()}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	pending, next, sent, acked, resent := outboxSummary(t, stdout.String())
	unique, dups, conns := srv.counts()
	if pending != 0 || next != 1 {
		t.Errorf("a new outbox says %d pending, next %d; want 0 and 1", pending, next)
	}
	if sent != 2000 || acked != 2000 || unique != 2000 {
		t.Errorf("sent %d, acked %d, server has %d unique; want 2000 each", sent, acked, unique)
	}
	if conns < 5 || resent < conns-1 || dups > resent {
		t.Errorf("resent %d, server duplicates %d, connections %d: want connections >= 5, resent >= connections-1, duplicates <= resent", resent, dups, conns)
	}
}

// TestOutboxRedialsWhenAcknowledgementsStall: a connection that swallows
// everything is given up after --ack-timeout, in --outbox mode too.
func TestOutboxRedialsWhenAcknowledgementsStall(t *testing.T) {
	srv := newFakeServer(t, nil, func(i int) (int, bool) { return 0, i == 0 })
	var stdout, stderr bytes.Buffer
	code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "100", "--monitor=false", "--ack-timeout", "100ms",
		"--log-level", "warn", "--outbox", t.TempDir()}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d, want 0; stderr:\n%s", code, stderr.String())
	}
	_, _, _, acked, resent := outboxSummary(t, stdout.String())
	if unique, _, conns := srv.counts(); acked != 100 || unique != 100 || conns < 2 {
		t.Errorf("acked %d, server unique %d, connections %d; want 100, 100, >= 2", acked, unique, conns)
	}
	if resent == 0 {
		t.Error("resent 0: the stalled connection's messages were not written again")
	}
}

// TestOutboxResumesWithTheSameSeq stops a run whose server acknowledges
// nothing, then runs again with the same --outbox: the second run says
// what is pending, sends those messages again under their original
// ID:EPOCH:N, numbers the rest after them, and ends when all are
// acknowledged.
func TestOutboxResumesWithTheSameSeq(t *testing.T) {
	dir := t.TempDir()
	silent := newFakeServer(t, nil, func(int) (int, bool) { return 0, true })
	ctx, cancel := context.WithCancel(t.Context())
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--addr", silent.addr(), "--count", "500", "--rate", "2000", "--monitor=false",
			"--ack-timeout", "1h", "--log-level", "warn", "--outbox", dir, "--id", "r1"}, &stdout, &stderr)
	}()
	// Stop it once the server has seen some messages but not all.
	waitSeen(t, silent, 50, func() { cancel(); <-done }, &stderr)
	cancel()
	if code := <-done; code != 1 {
		t.Fatalf("interrupted run exited %d, want 1", code)
	}
	silent.mu.Lock()
	first := map[wire.Seq]bool{}
	for s := range silent.seen {
		first[s] = true
	}
	silent.mu.Unlock()

	srv := newFakeServer(t, nil, func(int) (int, bool) { return 0, false })
	stdout.Reset()
	code := run(t.Context(), []string{"--addr", srv.addr(), "--count", "500", "--monitor=false",
		"--log-level", "warn", "--outbox", dir, "--id", "r1"}, &stdout, &stderr)
	if code != 0 {
		t.Fatalf("second run exited %d, want 0; stderr:\n%s", code, stderr.String())
	}
	pending, next, _, acked, _ := outboxSummary(t, stdout.String())
	if pending == 0 || next < 51 {
		t.Fatalf("second run found %d pending, next %d; want the first run's unacknowledged messages and N after them", pending, next)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	var epoch uint64
	for s := range first {
		epoch = s.Epoch
		if !srv.seen[s] {
			t.Errorf("%s was sent (never acknowledged) before the restart but not sent again after it", s)
		}
	}
	for n := uint64(1); n <= 500; n++ {
		if s := (wire.Seq{ID: "r1", Epoch: epoch, N: n}); !srv.seen[s] {
			t.Errorf("%s never reached the server after the restart", s)
		}
	}
	if len(srv.seen) != 500 || acked != 500 {
		t.Errorf("server has %d distinct SEQs, the run acked %d; want 500 each (one epoch across the restart)", len(srv.seen), acked)
	}
}

// TestOutboxStoreReplacedMidRunIsNotDone: the outbox's store breaks
// while the sender runs (every page but the meta pages overwritten, as a
// failing disk might) after all --count messages were appended and sent
// but none acknowledged. Drain's next read finds it, and the outbox
// moves it aside and starts an empty one, or (when bbolt still reads its
// tree) removes its records as corrupt: the run must not take the empty
// outbox for "every message acknowledged" and exit 0; it exits 1 and says
// what happened.
func TestOutboxStoreReplacedMidRunIsNotDone(t *testing.T) {
	dir := t.TempDir()
	silent := newFakeServer(t, nil, func(int) (int, bool) { return 0, true })
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"--addr", silent.addr(), "--count", "50", "--monitor=false",
			"--ack-timeout", "300ms", "--log-level", "warn", "--outbox", dir, "--id", "r1"}, &stdout, &stderr)
	}()
	waitSeen(t, silent, 50, func() { cancel(); <-done }, &stderr)
	// Spoil the store in place (the outbox's map of the file sees it).
	path := filepath.Join(dir, outbox.FileName)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.WriteAt(make([]byte, fi.Size()-2*4096), 2*4096)
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
	// The acknowledgements stall, the connection is redialled, and
	// Drain reads the store again.
	code := <-done
	if code == 0 {
		t.Fatalf("a run whose store was replaced before any message was acknowledged exited 0; stdout:\n%s", stdout.String())
	}
	// Drain's read finds either the whole store unreadable (moved aside)
	// or its records corrupt one by one (removed): the run says which.
	if e := stderr.String(); !strings.Contains(e, "moved") && !strings.Contains(e, "found corrupt and removed") {
		t.Errorf("stderr does not say the store was moved aside or its records removed:\n%s", e)
	}
}

// waitSeen waits until srv has seen n distinct messages; after 30 s it
// stops the run (stop) and fails t, showing the run's stderr.
func waitSeen(t *testing.T, srv *fakeServer, n int, stop func(), stderr *bytes.Buffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if u, _, _ := srv.counts(); u >= n {
			return
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("the server saw fewer than %d messages in 30s; stderr:\n%s", n, stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling the server's count; the deadline bounds it
	}
}

// TestOutboxOutageKeepsTheConnection is TestOutageKeepsTheConnection's
// second case with --outbox: a connection with a message outstanding is
// kept while the gate is closed, and at the return the message is sent
// again at once on a fresh connection (Drain rewound), not after the ack
// timeout (30 s here).
func TestOutboxOutageKeepsTheConnection(t *testing.T) {
	srv := newFakeServer(t, nil, func(i int) (int, bool) { return 0, i == 0 })
	g, err := gate.New(gate.Config{})
	if err != nil {
		t.Fatal(err)
	}
	s := testSender(srv.addr(), 1, g.Sender())
	s.cfg.ackTimeout = 30 * time.Second
	box, err := outbox.Open(t.TempDir(), outbox.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer box.Close()
	s.cfg.epoch = box.Epoch()
	done := make(chan error, 1)
	go func() { done <- s.deliverOutbox(t.Context(), box) }()
	keptThenResent(t, srv, g, done)
}
