package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// stalledOutput is an output whose first write waits until release is
// closed, as a pipe nobody reads does once full.
type stalledOutput struct {
	entered, release chan struct{}
	once             sync.Once
	mu               sync.Mutex
	buf              bytes.Buffer
}

func (s *stalledOutput) Write(p []byte) (int, error) {
	s.once.Do(func() {
		close(s.entered)
		<-s.release
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

// TestLogWriterStalledOutput: while the output is stalled, adding events
// never waits; beyond logQueueSize the link lines go, not the state or
// flap lines; when the output takes lines again, the line after the one
// in progress says how many were lost, and close writes the rest.
func TestLogWriterStalledOutput(t *testing.T) {
	t.Parallel()
	out := &stalledOutput{entered: make(chan struct{}), release: make(chan struct{})}
	log, err := newLogger("json", zapcore.InfoLevel, out)
	if err != nil {
		t.Fatal(err)
	}
	w := startLogWriter(log)
	w.add(netmon.Event{Kind: netmon.EventBaseline, Msg: "baseline"})
	select {
	case <-out.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the writer did not start writing")
	}
	const links = logQueueSize + 900
	for i := range links {
		if i == 10 {
			w.add(netmon.Event{Kind: netmon.EventState, Msg: "up -> down", Status: netmon.Status{State: netmon.Down}})
		}
		w.add(netmon.Event{Kind: netmon.EventLink, Iface: "va", Msg: "carrier lost"})
	}
	w.add(netmon.Event{Kind: netmon.EventFlap, Msg: "outage ended", Flap: &netmon.Flap{Cause: netmon.ReasonCarrierLost}})
	if got := w.dropped(); got != 902 {
		t.Errorf("dropped = %d, want 902 (the link lines beyond the queue)", got)
	}
	close(out.release)
	w.close()

	lines := strings.Split(strings.TrimSpace(out.buf.String()), "\n")
	var kinds []string
	var count float64
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		kinds = append(kinds, m["event"].(string))
		if m["event"] == "dropped" {
			count = m["count"].(float64)
		}
	}
	if len(lines) != 2+logQueueSize || kinds[0] != "baseline" || kinds[1] != "dropped" || count != 902 {
		t.Fatalf("%d lines, first %v, count %v; want %d lines, baseline then dropped with count 902",
			len(lines), kinds[:2], count, 2+logQueueSize)
	}
	if kinds[2] != "state" || kinds[len(kinds)-1] != "flap" {
		t.Errorf("state and flap lines: third line %s, last %s; want both kept in order", kinds[2], kinds[len(kinds)-1])
	}
}

func TestEscapeText(t *testing.T) {
	for in, want := range map[string]string{
		"carrier lost":                   "carrier lost",
		"ok\nFAKE\x1b[31m[1234] connect": `ok\nFAKE\x1b[31m[1234] connect`,
		"café ☕ wlan0":                   "café ☕ wlan0",
		"bad\xffutf8":                    `bad\xffutf8`,
		"tab\there\r":                    `tab\there\r`,
		"c1 \u009b31m":                   `c1 \u009b31m`,
		"ssid \u202egnp.exe":             `ssid \u202egnp.exe`,
	} {
		if got := escapeText(in); got != want {
			t.Errorf("escapeText(%q) = %q, want %q", in, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { escapeText("carrier lost on wlan0") }); n != 0 {
		t.Errorf("a clean message allocated %v times", n)
	}
}

// TestConsoleLineCannotBeForged: an event whose message carries a process
// name with a newline and an escape sequence is one console line, the
// name escaped; its fields stay JSON-escaped.
func TestConsoleLineCannotBeForged(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger("console", zapcore.InfoLevel, &out)
	if err != nil {
		t.Fatal(err)
	}
	evil := "ok\nFAKE\x1b[31m"
	logEvent(log, netmon.Event{Kind: netmon.EventSockErr, At: time.Now(), Msg: evil + "[42] connect: ECONNREFUSED",
		Fields: []zapcore.Field{zap.String("comm", evil)}})
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("%d lines, want 1: %q", len(lines), out.String())
	}
	if strings.ContainsRune(lines[0], 0x1b) {
		t.Fatalf("raw escape in %q", lines[0])
	}
	if !strings.Contains(lines[0], `ok\nFAKE\x1b[31m[42] connect`) || !strings.Contains(lines[0], `"comm": "ok\nFAKE\u001b[31m"`) {
		t.Fatalf("line %q does not show the name escaped", lines[0])
	}
}

// TestJSONDurationsInSeconds: every duration of a JSON line also comes as
// a number of seconds under key_s, in the event's fields, in its flap and
// in plain fields; console lines keep the string only.
func TestJSONDurationsInSeconds(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger("json", zapcore.InfoLevel, &out)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 30, 6, 16, 56, 0, time.UTC)
	logEvent(log, netmon.Event{Kind: netmon.EventFlap, At: at, Iface: "wlan0", Msg: "outage ended",
		Flap: &netmon.Flap{Iface: "wlan0", Cause: netmon.ReasonCarrierLost, Start: at, End: at.Add(724798441), Duration: 724798441}})
	logEvent(log, netmon.Event{Kind: netmon.EventDHCP, At: at, Iface: "wlan0", Msg: "renewed",
		Fields: []zapcore.Field{zap.Duration("time_left", 2*time.Minute)}})
	log.Info("stopped", zap.Duration("watched", 3514*time.Millisecond))
	var got []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		got = append(got, m)
	}
	for i, want := range []map[string]any{
		{"duration": "724.798441ms", "duration_s": 0.724798441},
		{"time_left": "2m0s", "time_left_s": 120.0},
		{"watched": "3.514s", "watched_s": 3.514},
	} {
		for k, v := range want {
			if got[i][k] != v {
				t.Errorf("line %d: %s = %v, want %v (%v)", i, k, got[i][k], v, got[i])
			}
		}
	}
	out.Reset()
	clog, _ := newLogger("console", zapcore.InfoLevel, &out)
	clog.Info("stopped", zap.Duration("watched", time.Second))
	if strings.Contains(out.String(), "watched_s") {
		t.Errorf("console line has seconds: %q", out.String())
	}
}

// TestConsoleFieldsEscaped: what JSON leaves raw in a field (DEL, C1
// controls, bidirectional overrides) is escaped too, in plain fields and
// inside the event's objects; a message's backslash is doubled so that a
// literal "\n" cannot pass for an escaped newline.
func TestConsoleFieldsEscaped(t *testing.T) {
	var out bytes.Buffer
	log, err := newLogger("console", zapcore.InfoLevel, &out)
	if err != nil {
		t.Fatal(err)
	}
	disguised := "ok\u202eLIAF\u009b31m\x7f"
	logEvent(log, netmon.Event{Kind: netmon.EventWifi, At: time.Now(), Msg: `a\nb`, Iface: disguised,
		Fields: []zapcore.Field{zap.String("ssid", disguised), zap.Error(errors.New(disguised))}})
	line := out.String()
	for _, raw := range []string{"\u202e", "\u009b", "\x7f"} {
		if strings.Contains(line, raw) {
			t.Errorf("raw %q in %q", raw, line)
		}
	}
	if !strings.Contains(line, `a\\nb`) {
		t.Errorf("the message's backslash is not doubled: %q", line)
	}
	if strings.Count(line, `ok\\u202eLIAF\\u009b31m\\x7f`) != 3 {
		t.Errorf("iface, ssid and error not all escaped: %q", line)
	}
}
