package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// sockEvent is a sockerr event as the Monitor makes one for a failure
// eBPF observed.
func sockEvent(comm string, pid int, errno unix.Errno, dst string) netmon.Event {
	return netmon.Event{Kind: netmon.EventSockErr, At: time.Now(), Iface: "va", Msg: fmt.Sprintf("%s[%d] connect: %v", comm, pid, errno),
		Fields: []zapcore.Field{zap.String("source", "ebpf"), zap.Uint32("pid", uint32(pid)), zap.String("comm", comm),
			zap.String("op", "connect"), zap.String("dst", dst)},
		Explanation: &netmon.Explanation{Class: classify.Classify(errno), Errno: errno, Cause: netmon.CausePeer}}
}

// TestSockAggStorm: 10,000 failures of one process, errno and destination
// and three of another make two lines at once and two summaries with the
// exact counts; state lines pass; a key that did not repeat within an
// interval is forgotten, so its next failure is logged at once.
func TestSockAggStorm(t *testing.T) {
	a := newSockAgg(10*time.Second, sockAggKeys)
	logged := 0
	for i := range 10000 {
		if a.add(sockEvent("client", 100+i%7, unix.ECONNRESET, "10.9.0.2:443")) {
			logged++
		}
		if i%2500 == 0 && !a.add(netmon.Event{Kind: netmon.EventState}) {
			t.Fatal("a state event was held back")
		}
	}
	for range 3 {
		if a.add(sockEvent("sender", 7, unix.ENETUNREACH, "192.0.2.1:9")) {
			logged++
		}
	}
	if logged != 2 {
		t.Errorf("%d lines logged at once, want 2: the first of each key", logged)
	}
	sum := a.flush(a.since.Add(10*time.Second), false)
	want := map[string]uint64{"client": 9999, "sender": 2}
	if len(sum) != len(want) {
		t.Fatalf("%d summaries, want %d: %+v", len(sum), len(want), sum)
	}
	for _, ev := range sum {
		f := fieldsOf(ev)
		if ev.Kind != netmon.EventSockErr || f["source"] != "summary" || f["count"] != want[f["comm"].(string)] {
			t.Errorf("summary %q %v, want source summary and count %d", ev.Msg, f, want[f["comm"].(string)])
		}
	}
	if s := sum[0]; s.Msg != "client: 9999 more ECONNRESET to 10.9.0.2:443 in 10s" {
		t.Errorf("summary message %q", s.Msg)
	}
	// The keys repeated: the next failure of one is still counted.
	if a.add(sockEvent("client", 1, unix.ECONNRESET, "10.9.0.2:443")) {
		t.Error("a repeat right after a summary was logged at once")
	}
	if n := len(a.flush(time.Now(), false)); n != 1 {
		t.Errorf("%d summaries for one repeat, want 1", n)
	}
	// An interval without repeats forgets the keys.
	if n := len(a.flush(time.Now(), false)); n != 0 || len(a.keys) != 0 {
		t.Errorf("quiet interval: %d summaries, %d keys kept; want 0, 0", n, len(a.keys))
	}
	if !a.add(sockEvent("client", 1, unix.ECONNRESET, "10.9.0.2:443")) {
		t.Error("the first failure after a quiet interval was not logged at once")
	}
}

// TestSockAggBound: keys beyond the table's bound are counted together in
// one summary, and the table does not grow.
func TestSockAggBound(t *testing.T) {
	a := newSockAgg(time.Second, 4)
	logged := 0
	for i := range 10 {
		if a.add(sockEvent(fmt.Sprintf("p%d", i), i, unix.ECONNREFUSED, "10.9.0.2:1")) {
			logged++
		}
	}
	if logged != 4 || len(a.keys) != 4 {
		t.Errorf("%d logged, %d keys, want 4 and 4", logged, len(a.keys))
	}
	sum := a.flush(time.Now(), true)
	if len(sum) != 1 || fieldsOf(sum[0])["count"] != uint64(6) || !strings.Contains(sum[0].Msg, "6 more failures of further processes") {
		t.Fatalf("summaries %+v, want one for the 6 beyond the bound", sum)
	}
	if len(a.keys) != 0 {
		t.Errorf("%d keys after the final flush, want 0", len(a.keys))
	}
}

// TestSockAggSummaryLine: the summary line follows the log contract in
// both formats: event sockerr, source summary, comm, errno, dst, count,
// interval (with interval_s in JSON), last_pid, last_cause, of.
func TestSockAggSummaryLine(t *testing.T) {
	a := newSockAgg(10*time.Second, sockAggKeys)
	a.add(sockEvent("client", 100, unix.ECONNRESET, "10.9.0.2:443"))
	a.add(sockEvent("client", 101, unix.ECONNRESET, "10.9.0.2:443"))
	ev := a.flush(a.since.Add(time.Minute), false)[0] // a tick late: the interval is still 10s
	enc, err := newEncoder("json")
	if err != nil {
		t.Fatal(err)
	}
	line, err := eventLine(enc, ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(line, &m); err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	want := map[string]any{"level": "warn", "event": "sockerr", "source": "summary", "comm": "client", "errno": "ECONNRESET",
		"dst": "10.9.0.2:443", "count": 1.0, "interval": "10s", "interval_s": 10.0, "last_pid": 101.0, "last_cause": "peer",
		"of": "ebpf", "iface": "va", "msg": "client: 1 more ECONNRESET to 10.9.0.2:443 in 10s"}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("JSON %s = %v, want %v (line %s)", k, m[k], v, line)
		}
	}
	cenc, _ := newEncoder("console")
	cl, err := eventLine(cenc, ev)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(cl); !strings.Contains(s, "\tWARN\tclient: 1 more ECONNRESET to 10.9.0.2:443 in 10s\t") || !strings.Contains(s, `"source": "summary"`) || !strings.Contains(s, `"count": 1`) {
		t.Errorf("console line %q", s)
	}
}

// fieldsOf returns an event's fields by key: strings, uint64 counts.
func fieldsOf(ev netmon.Event) map[string]any {
	m := map[string]any{}
	for _, f := range ev.Fields {
		switch f.Type {
		case zapcore.StringType:
			m[f.Key] = f.String
		case zapcore.Uint64Type:
			m[f.Key] = uint64(f.Integer)
		default:
			m[f.Key] = f.Integer
		}
	}
	return m
}
