package outbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/seed-a56be422/netmon/gate"
)

// openT opens an outbox in dir (a new temporary directory if empty) and
// closes it when the test ends.
func openT(t testing.TB, dir string, cfg Config) *Outbox {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	o, err := Open(dir, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = o.Close() })
	return o
}

// appendT appends a message with payload p to stream s and returns its N.
func appendT(t testing.TB, o *Outbox, s string, c Class, p string) uint64 {
	t.Helper()
	n, err := o.Append(context.Background(), Message{Stream: s, Class: c, Payload: []byte(p)})
	if err != nil {
		t.Fatalf("Append(%s, %q): %v", s, p, err)
	}
	return n
}

// pendingMsgs returns the pending messages, in order of N.
func pendingMsgs(t testing.TB, o *Outbox) []Message {
	t.Helper()
	o.mu.Lock()
	db := o.db
	o.mu.Unlock()
	ms, err := o.read(db, 0, 1<<63, 1<<62)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return ms
}

// pending returns the pending messages' payloads, in order of N.
func pending(t testing.TB, o *Outbox) []string {
	t.Helper()
	var ps []string
	for _, m := range pendingMsgs(t, o) {
		ps = append(ps, string(m.Payload))
	}
	return ps
}

// pendingN returns the pending messages' Ns, in order.
func pendingN(t testing.TB, o *Outbox) []uint64 {
	t.Helper()
	var ns []uint64
	for _, m := range pendingMsgs(t, o) {
		ns = append(ns, m.N)
	}
	return ns
}

func TestAppendSurvivesReopenAndNContinuesAfterLastAccepted(t *testing.T) {
	dir := t.TempDir()
	o, err := Open(dir, Config{})
	if err != nil {
		t.Fatal(err)
	}
	epoch := o.Epoch()
	if epoch == 0 {
		t.Fatal("epoch 0")
	}
	for i, p := range []string{"a", "b", "c"} {
		if n := appendT(t, o, "s", Important, p); n != uint64(i+1) {
			t.Fatalf("N = %d, want %d", n, i+1)
		}
	}
	if err := o.Ack(3); err != nil { // the last accepted, delivered
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	o = openT(t, dir, Config{})
	if o.Epoch() != epoch {
		t.Errorf("epoch after reopen %d, want %d", o.Epoch(), epoch)
	}
	if diff := cmp.Diff([]string{"a", "b"}, pending(t, o)); diff != "" {
		t.Errorf("pending after reopen (-want +got):\n%s", diff)
	}
	if n := appendT(t, o, "s", Important, "d"); n != 4 {
		t.Errorf("N after reopen = %d, want 4 (after the last accepted, not the last pending)", n)
	}
	s := o.Stats()
	if s.Records != 3 || s.ClassRecords[Important] != 3 || s.Appended != 1 {
		t.Errorf("Stats = %+v, want 3 records pending, 1 appended since Open", s)
	}
}

func TestAppendRejectsBadInput(t *testing.T) {
	o := openT(t, "", Config{})
	for _, m := range []Message{
		{Stream: string(make([]byte, MaxStreamLen+1))},
		{Class: 2},
	} {
		if _, err := o.Append(context.Background(), m); err == nil {
			t.Errorf("Append(stream of %d bytes, class %d) = nil, want an error", len(m.Stream), m.Class)
		}
	}
	if _, err := Open(t.TempDir(), Config{Window: -1}); err == nil {
		t.Error("Open with Window -1: nil error")
	}
}

func TestImportantFullWaitsForAckOrReturnsErrFull(t *testing.T) {
	o := openT(t, "", Config{Important: Limit{Records: 2}})
	appendT(t, o, "s", Important, "1")
	appendT(t, o, "s", Important, "2")

	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	_, err := o.Append(ctx, Message{Payload: []byte("3")})
	var fe *FullError
	if !errors.As(err, &fe) || !errors.Is(err, ErrFull) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append to a full outbox until a deadline: %v, want a *FullError wrapping ErrFull and the deadline", err)
	}

	// A waiting Append gets the room an Ack makes.
	done := make(chan error, 1)
	go func() {
		_, err := o.Append(context.Background(), Message{Payload: []byte("3")})
		done <- err
	}()
	waitFor(t, "the Append to wait", func() bool { return o.Stats().Records == 2 })
	if err := o.Ack(1); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Append after an Ack made room: %v", err)
	}
	if diff := cmp.Diff([]string{"2", "3"}, pending(t, o)); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}

	nw := openT(t, "", Config{Important: Limit{Bytes: 100}, NoWait: true})
	if _, err := nw.Append(context.Background(), Message{Payload: make([]byte, 200)}); !errors.Is(err, ErrFull) {
		t.Errorf("Append larger than the byte limit: %v, want ErrFull", err)
	}
	appendT(t, nw, "", Important, string(make([]byte, 60)))
	if _, err := nw.Append(context.Background(), Message{Payload: make([]byte, 60)}); !errors.Is(err, ErrFull) {
		t.Errorf("Append with NoWait to a full outbox: %v, want ErrFull at once", err)
	}
}

// waitFor polls cond until it holds, or fails t after 10 s.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestTelemetryDropsOldestAndCounts(t *testing.T) {
	o := openT(t, "", Config{Telemetry: Limit{Records: 3}, Important: Limit{Records: 1}})
	appendT(t, o, "cmd", Important, "i1")
	for i := 1; i <= 5; i++ {
		appendT(t, o, "tel", Telemetry, fmt.Sprint("t", i))
	}
	if diff := cmp.Diff([]string{"i1", "t3", "t4", "t5"}, pending(t, o)); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
	s := o.Stats()
	if s.Dropped != 2 || s.ClassRecords != [2]int{1, 3} {
		t.Errorf("Stats: dropped %d, records %v; want 2 dropped, [1 3]", s.Dropped, s.ClassRecords)
	}
}

func TestGroupCommitCommitsWithinTheInterval(t *testing.T) {
	dir := t.TempDir()
	o, err := Open(dir, Config{SyncInterval: 5 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		appendT(t, o, "s", Important, fmt.Sprint(i))
	}
	waitFor(t, "the group commit", func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.committed == 100
	})
	appendT(t, o, "s", Important, "100")
	if err := o.Close(); err != nil { // commits the queue
		t.Fatal(err)
	}
	o = openT(t, dir, Config{})
	if got := len(pending(t, o)); got != 101 {
		t.Errorf("%d pending after Close and reopen, want 101", got)
	}
}

func TestGroupCommitQueueIsBounded(t *testing.T) {
	// An interval no test waits out: only the queue's bound commits.
	o := openT(t, "", Config{SyncInterval: time.Hour})
	for i := range maxQueued + 1 {
		appendT(t, o, "s", Telemetry, fmt.Sprint(i))
	}
	o.mu.Lock()
	committed, queued := o.committed, len(o.queue)
	o.mu.Unlock()
	if committed != maxQueued || queued != 1 {
		t.Errorf("after %d appends: %d committed, %d queued; want %d and 1", maxQueued+1, committed, queued, maxQueued)
	}
}

func TestCollectorExportsStats(t *testing.T) {
	o := openT(t, "", Config{})
	appendT(t, o, "s", Important, "1")
	appendT(t, o, "s", Telemetry, "2")
	if err := o.Ack(1); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(NewCollector(o))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			for _, l := range m.GetLabel() {
				name += "/" + l.GetValue()
			}
			got[name] = m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	for name, want := range map[string]float64{
		"netmon_outbox_records/important": 0,
		"netmon_outbox_records/telemetry": 1,
		"netmon_outbox_appended_total":    2,
		"netmon_outbox_delivered_total":   1,
		"netmon_outbox_dropped_total":     0,
	} {
		if v, ok := got[name]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", name, v, ok, want)
		}
	}
	if got["netmon_outbox_oldest_age_seconds"] <= 0 {
		t.Errorf("netmon_outbox_oldest_age_seconds = %v, want > 0 with a message pending", got["netmon_outbox_oldest_age_seconds"])
	}
}

// wire is a receiver for Drain's tests: send records each message and
// can fail on demand; the test acknowledges.
type wire struct {
	mu   sync.Mutex
	got  []string
	fail map[string]int // payload: failures left
	sent chan Message
}

func newWire() *wire { return &wire{fail: map[string]int{}, sent: make(chan Message, 1000)} }

func (w *wire) send(_ context.Context, m Message) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fail[string(m.Payload)] > 0 {
		w.fail[string(m.Payload)]--
		return fmt.Errorf("send %s: %w", m.Payload, errConnReset)
	}
	w.got = append(w.got, string(m.Payload))
	w.sent <- m
	return nil
}

var errConnReset = gate.Retryable(errors.New("connection reset"), 0)

func (w *wire) gotten() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got)
}

// drainT runs Drain until the test ends.
func drainT(t *testing.T, o *Outbox, s Sender, w *wire) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Drain(ctx, s, w.send) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) && !errors.Is(err, ErrClosed) {
			t.Errorf("Drain: %v, want context.Canceled", err)
		}
	})
}

// newGate returns an open gate with a 1 ms backoff.
func newGate(t *testing.T) *gate.Gate {
	g, err := gate.New(gate.Config{Backoff: gate.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestDrainSendsInOrderWithinTheWindowAndResumesAfterRestart(t *testing.T) {
	dir := t.TempDir()
	o, err := Open(dir, Config{Window: 3})
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		appendT(t, o, fmt.Sprint("s", i%2), Important, fmt.Sprint(i))
	}
	g := newGate(t)
	w := newWire()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- o.Drain(ctx, g.Sender(), w.send) }()
	for i := 1; i <= 3; i++ {
		if m := <-w.sent; m.N != uint64(i) || m.Epoch != o.Epoch() {
			t.Fatalf("sent N %d epoch %d, want %d, %d", m.N, m.Epoch, i, o.Epoch())
		}
	}
	// The window is full: nothing more until an Ack.
	waitFor(t, "3 in flight", func() bool { return o.Stats().InFlight == 3 })
	if err := o.Ack(2); err != nil {
		t.Fatal(err)
	}
	if m := <-w.sent; m.N != 4 {
		t.Fatalf("after Ack(2), sent N %d, want 4", m.N)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Drain: %v", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	// After a restart, the unacknowledged go first, in order.
	o = openT(t, dir, Config{})
	w2 := newWire()
	drainT(t, o, g.Sender(), w2)
	for _, want := range []uint64{1, 3, 4, 5} {
		if m := <-w2.sent; m.N != want {
			t.Fatalf("after restart sent N %d, want %d", m.N, want)
		}
	}
}

func TestDrainResendsFromOldestUnackedAfterSendError(t *testing.T) {
	o := openT(t, "", Config{})
	for i := 1; i <= 4; i++ {
		appendT(t, o, "s", Important, fmt.Sprint(i))
	}
	w := newWire()
	w.fail["3"] = 1 // the connection breaks at 3: 1 and 2 may be lost with it
	drainT(t, o, newGate(t).Sender(), w)
	waitFor(t, "6 sends", func() bool { return len(w.gotten()) >= 6 })
	if diff := cmp.Diff([]string{"1", "2", "1", "2", "3", "4"}, w.gotten()); diff != "" {
		t.Errorf("sent (-want +got):\n%s", diff)
	}
}

func TestDrainHoldsWhileGateClosedAndSendsWhenOpen(t *testing.T) {
	o := openT(t, "", Config{})
	g := newGate(t)
	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	w := newWire()
	drainT(t, o, g.Sender(), w)
	appendT(t, o, "s", Important, "1")
	waitFor(t, "Drain to be held", func() bool { return g.Stats().Holds > 0 })
	if got := w.gotten(); len(got) != 0 {
		t.Fatalf("sent %v while the gate was closed", got)
	}
	g.Open()
	if m := <-w.sent; string(m.Payload) != "1" {
		t.Fatalf("sent %q", m.Payload)
	}
}

func TestDrainRewindResends(t *testing.T) {
	o := openT(t, "", Config{})
	appendT(t, o, "s", Important, "1")
	w := newWire()
	drainT(t, o, newGate(t).Sender(), w)
	<-w.sent
	o.Rewind()
	if m := <-w.sent; m.N != 1 {
		t.Fatalf("after Rewind sent N %d, want 1", m.N)
	}
	if err := o.Ack(1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "delivered", func() bool { s := o.Stats(); return s.Delivered == 1 && s.Records == 0 })
}

func TestDrainTwiceAndClosed(t *testing.T) {
	o := openT(t, "", Config{})
	w := newWire()
	drainT(t, o, newGate(t).Sender(), w)
	waitFor(t, "Drain to start", func() bool { o.mu.Lock(); defer o.mu.Unlock(); return o.draining })
	if err := o.Drain(context.Background(), newGate(t).Sender(), w.send); !errors.Is(err, ErrDraining) {
		t.Errorf("second Drain: %v, want ErrDraining", err)
	}
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := o.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := o.Append(context.Background(), Message{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Append after Close: %v, want ErrClosed", err)
	}
}

// TestDrainSendsOnlyAcceptedMessages: Drain must not send a message
// before its Append has made it accepted, even when a read from the
// oldest pending message (after a Rewind) finds it already in bbolt but
// not yet counted as committed. A receiver's acknowledgement of a message
// the outbox has not accepted would otherwise be refused as unknown.
// Found by examples/sender --outbox in the e2e test, where the ACK of
// N = Last()+1 came back before Append returned.
func TestDrainSendsOnlyAcceptedMessages(t *testing.T) {
	o := openT(t, "", Config{Window: 1024})
	var bad atomic.Uint64
	send := func(_ context.Context, m Message) error {
		if m.N > o.Last() {
			bad.Store(m.N)
		}
		_ = o.Ack(m.N)
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { _ = o.Drain(ctx, newGate(t).Sender(), send) })
	wg.Go(func() {
		for ctx.Err() == nil {
			o.Rewind()
			runtime.Gosched()
		}
	})
	for i := range 3000 {
		appendT(t, o, "s", Important, fmt.Sprint(i))
		if n := bad.Load(); n != 0 {
			t.Errorf("Drain sent N %d before its Append returned (Last %d)", n, o.Last())
			break
		}
	}
	cancel()
	wg.Wait()
}

// TestCloseEndsADrainHeldByAClosedGate: Close wakes Drain with ErrClosed
// also while Drain waits in the Gate (the link is down), not only while
// it waits for messages or Acks.
func TestCloseEndsADrainHeldByAClosedGate(t *testing.T) {
	o := openT(t, "", Config{})
	appendT(t, o, "s", Important, "1")
	g := newGate(t)
	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	w := newWire()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- o.Drain(ctx, g.Sender(), w.send) }()
	waitFor(t, "Drain to be held", func() bool { return g.Stats().Holds > 0 })
	if err := o.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("Drain held by a closed gate, after Close: %v, want ErrClosed (at once, not at its context's end)", err)
	}
	if got := w.gotten(); len(got) != 0 {
		t.Errorf("sent %v while the gate was closed", got)
	}
}
