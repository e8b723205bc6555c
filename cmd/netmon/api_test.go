package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestParseWaitTimeout(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"", apiDefaultWait, true},
		{"30s", 30 * time.Second, true},
		{"1.5s", 1500 * time.Millisecond, true},
		{"30", 30 * time.Second, true},
		{"0.25", 250 * time.Millisecond, true},
		{"0", 0, true},
		{"1h", time.Hour, true},
		{"1h0m1s", 0, false},
		{"3601", 0, false},
		{"-1s", 0, false},
		{"-1", 0, false},
		{"NaN", 0, false},
		{"abc", 0, false},
		{"1e300", 0, false},
	} {
		got, err := parseWaitTimeout(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("parseWaitTimeout(%q) = %v, %v; want %v, ok %v", c.in, got, err, c.want, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), fmt.Sprintf("%q", c.in)) {
			t.Errorf("parseWaitTimeout(%q): error %q does not name the value", c.in, err)
		}
	}
}

func TestReportRequestFailure(t *testing.T) {
	for _, c := range []struct {
		body    string
		want    netmon.Failure
		wantErr string
	}{
		{`{"errno": 101}`, netmon.Failure{Class: classify.Network, Errno: syscall.ENETUNREACH}, ""},
		// The errno decides over the class and the text.
		{`{"errno": 111, "class": "tls", "error": "[Errno 111] Connection refused"}`,
			netmon.Failure{Class: classify.Connection, Errno: syscall.ECONNREFUSED, Text: "[Errno 111] Connection refused"}, ""},
		{`{"class": "certificate", "error": "certificate verify failed"}`,
			netmon.Failure{Class: classify.Certificate, Text: "certificate verify failed"}, ""},
		{`{"class": "dns", "not_found": true}`, netmon.Failure{Class: classify.DNS, NotFound: true}, ""},
		{`{"error": "socket.gaierror: [Errno -2] Name or service not known"}`,
			netmon.Failure{Class: classify.DNS, NotFound: true, Text: "socket.gaierror: [Errno -2] Name or service not known"}, ""},
		{`{"errno": 113, "dst": "10.0.0.5:8883", "pid": 42, "comm": "robot"}`,
			netmon.Failure{Class: classify.Network, Errno: syscall.EHOSTUNREACH, Dst: netip.MustParseAddr("10.0.0.5"), PID: 42, Comm: "robot"}, ""},
		{`{"errno": 101, "dst": "[2001:db8::1]:443"}`,
			netmon.Failure{Class: classify.Network, Errno: syscall.ENETUNREACH, Dst: netip.MustParseAddr("2001:db8::1")}, ""},
		{`{"errno": 101, "dst": "::ffff:10.0.0.1"}`,
			netmon.Failure{Class: classify.Network, Errno: syscall.ENETUNREACH, Dst: netip.MustParseAddr("10.0.0.1")}, ""},
		{`{}`, netmon.Failure{}, `no "errno", "class" or "error"`},
		{`{"errno": 0}`, netmon.Failure{}, `"errno" 0 is not an errno`},
		{`{"errno": 4096}`, netmon.Failure{}, `"errno" 4096 is not an errno`},
		{`{"class": "Network"}`, netmon.Failure{}, `"class" "Network" is not a class`},
		{`{"errno": 101, "dst": "broker.example.com:8883"}`, netmon.Failure{}, `"dst" "broker.example.com:8883" is not`},
		{`{"errno": 101, "dst": "fe80::1%eth0"}`, netmon.Failure{}, `"dst" "fe80::1%eth0" is not`},
		{`{"errno": 101, "pid": -1}`, netmon.Failure{}, `"pid" -1 is negative`},
		{`{"errno": 101, "comm": "a\nfake line"}`, netmon.Failure{}, `"comm" "a\nfake line"`},
		{`{"errno": 101, "comm": "ok\u202eLIAF"}`, netmon.Failure{}, `is not printable`},
		{`{"errno": 101, "comm": "sixteen-bytes-xx"}`, netmon.Failure{}, `is not a process name`},
		{`{"error": "` + strings.Repeat("x", apiMaxText+1) + `"}`, netmon.Failure{}, `"error" has 4097 bytes, more than 4096`},
	} {
		var q reportRequest
		if err := json.Unmarshal([]byte(c.body), &q); err != nil {
			t.Fatalf("%s: %v", c.body, err)
		}
		got, err := q.failure()
		switch {
		case c.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("%.60s: error %v, want one containing %q", c.body, err, c.wantErr)
			}
		case err != nil:
			t.Errorf("%s: %v", c.body, err)
		case got != c.want:
			t.Errorf("%s: %+v, want %+v", c.body, got, c.want)
		}
	}
}

// FuzzReportRequest: whatever the body, decoding and checking it never
// panics, and an accepted request has a class, a valid errno or none, and
// a comm that cannot forge a line.
func FuzzReportRequest(f *testing.F) {
	for _, s := range []string{`{"errno": 101}`, `{"error": "[Errno 111] x", "dst": "1.2.3.4:5"}`, `{"class": "dns", "not_found": true}`,
		`{"comm": "\u0000"}`, `{"errno": 1e99}`, `[]`, `null`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		var q reportRequest
		if json.Unmarshal([]byte(body), &q) != nil {
			return
		}
		fl, err := q.failure()
		if err != nil {
			return
		}
		if fl.Errno > 4095 {
			t.Fatalf("%q: errno %d accepted", body, fl.Errno)
		}
		if strings.ContainsAny(fl.Comm, "\n\r\x00") || len(fl.Comm) > 15 {
			t.Fatalf("%q: comm %q accepted", body, fl.Comm)
		}
		if len(fl.Text) > 3*apiMaxText { // ToValidUTF8 may grow it
			t.Fatalf("%q: text of %d bytes accepted", body, len(fl.Text))
		}
	})
}

// TestEventLineIsTheLogLine: a line of /v1/events is byte for byte the
// line `watch --log-format json` writes for the same event.
func TestEventLineIsTheLogLine(t *testing.T) {
	at := time.Date(2026, 11, 30, 6, 16, 56, 502000000, time.UTC)
	evs := []netmon.Event{
		{Kind: netmon.EventState, At: at, Iface: "wlan0", Msg: "up -> down",
			Status: netmon.Status{State: netmon.Down, Reason: netmon.ReasonCarrierLost, Iface: "wlan0"},
			Fields: []zapcore.Field{zap.String("addrs", "10.9.0.1/24")}},
		{Kind: netmon.EventFlap, At: at, Iface: "wlan0", Msg: "outage ended",
			Flap: &netmon.Flap{Iface: "wlan0", Cause: netmon.ReasonCarrierLost, Start: at, End: at.Add(time.Second), Duration: time.Second}},
		{Kind: netmon.EventDropped, At: at, Dropped: 7},
	}
	var logged bytes.Buffer
	log, err := newLogger("json", zapcore.DebugLevel, &logged)
	if err != nil {
		t.Fatal(err)
	}
	enc, _ := newEncoder("json")
	var lines []byte
	for _, ev := range evs {
		logEvent(log, ev)
		l, err := eventLine(enc, ev)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, l...)
	}
	if !bytes.Equal(lines, logged.Bytes()) {
		t.Errorf("event lines differ from the log:\n%s\nlog:\n%s", lines, logged.Bytes())
	}
}

// recv returns the next line of s as a map, failing after a deadline.
func recv(t *testing.T, s *eventStream) map[string]any {
	t.Helper()
	select {
	case l := <-s.lines:
		var m map[string]any
		if err := json.Unmarshal(l, &m); err != nil {
			t.Fatalf("line %q: %v", l, err)
		}
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no line within 5s")
		return nil
	}
}

func stateEvent(s netmon.State, r netmon.Reason) netmon.Event {
	return netmon.Event{Kind: netmon.EventState, At: time.Now(), Iface: "va", Msg: "state",
		Status: netmon.Status{State: s, Reason: r, Iface: "va"}}
}

// TestHubBaselineAndOrder: a stream starts with a baseline of the last
// state published, then has every later event in order.
func TestHubBaselineAndOrder(t *testing.T) {
	h := newEventHub()
	h.publish(stateEvent(netmon.Up, ""))
	h.publish(netmon.Event{Kind: netmon.EventLink, At: time.Now(), Iface: "va", Msg: "carrier lost"}) // nobody streams: not kept
	h.publish(stateEvent(netmon.Down, netmon.ReasonCarrierLost))
	s := h.subscribe()
	defer h.unsubscribe(s)
	if m := recv(t, s); m["event"] != "baseline" || m["state"] != "down" || m["reason"] != "carrier-lost" {
		t.Fatalf("first line %v, want the baseline down carrier-lost", m)
	}
	for i := range 50 {
		h.publish(netmon.Event{Kind: netmon.EventAddr, At: time.Now(), Iface: "va", Msg: fmt.Sprint(i)})
	}
	h.publish(stateEvent(netmon.Up, ""))
	for i := range 50 {
		if m := recv(t, s); m["msg"] != fmt.Sprint(i) {
			t.Fatalf("line %d: %v", i, m)
		}
	}
	if m := recv(t, s); m["event"] != "state" || m["state"] != "up" {
		t.Fatalf("last line %v, want the state up", m)
	}
	// Before any state: no baseline of its own (the Monitor's comes).
	h2 := newEventHub()
	s2 := h2.subscribe()
	defer h2.unsubscribe(s2)
	if len(s2.lines) != 0 {
		t.Fatalf("a stream before any state has %d lines, want none", len(s2.lines))
	}
}

// TestHubCutsOffASlowStream: a stream that reads nothing never holds up
// publishing; once it is streamBuffer lines behind it is cut off, and
// every event after that is counted as missed, as are those queued.
func TestHubCutsOffASlowStream(t *testing.T) {
	h := newEventHub()
	slow, fast := h.subscribe(), h.subscribe()
	defer h.unsubscribe(fast)
	const n = 3 * streamBuffer
	got := 0
	for i := range n {
		h.publish(netmon.Event{Kind: netmon.EventAddr, At: time.Now(), Msg: fmt.Sprint(i)})
		if len(fast.lines) == streamBuffer { // the reader keeps up, in steps
			for len(fast.lines) > 0 {
				<-fast.lines
				got++
			}
		}
	}
	got += len(fast.lines)
	select {
	case <-slow.cut:
	default:
		t.Fatal("the slow stream was not cut off")
	}
	select {
	case <-fast.cut:
		t.Fatal("the stream that kept up was cut off")
	default:
	}
	if got != n {
		t.Fatalf("the reading stream got %d of %d", got, n)
	}
	if d := h.dropped.Load(); d != n-streamBuffer {
		t.Fatalf("dropped %d before the slow stream ended, want %d (all but the %d queued)", d, n-streamBuffer, streamBuffer)
	}
	if missed := h.unsubscribe(slow); missed != n {
		t.Fatalf("missed %d, want %d (every event: none was read)", missed, n)
	}
	if d := h.dropped.Load(); d != n {
		t.Fatalf("dropped %d after the slow stream ended, want %d", d, n)
	}
	if h.n.Load() != 1 {
		t.Fatalf("%d streams subscribed, want 1", h.n.Load())
	}
}

// TestListenSocket: the socket gets the mode asked for; a stale socket is
// replaced; a live one, a file that is not a socket and a missing
// directory are errors that name the path.
func TestListenSocket(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "netmon.sock")
	l, err := listenSocket(path, 0o640, -1)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Type() != os.ModeSocket || fi.Mode().Perm() != 0o640 {
		t.Fatalf("socket mode %v, want a socket with 0640", fi.Mode())
	}
	if _, err := listenSocket(path, 0o660, -1); err == nil || !strings.Contains(err.Error(), "another process serves it") {
		t.Fatalf("second listen: %v, want another process serves it", err)
	}
	// A stale socket: the file stays after the listener is gone.
	l.SetUnlinkOnClose(false)
	l.Close()
	l, err = listenSocket(path, 0o660, -1)
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	l.Close()
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("socket file after close: %v, want it removed", err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(plain, 0o660, -1); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Fatalf("over a plain file: %v", err)
	}
	if _, err := listenSocket(filepath.Join(dir, "no", "such.sock"), 0o660, -1); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("in a missing directory: %v", err)
	}
	// A directory anyone may write to: refused, unless sticky (as /tmp).
	open := filepath.Join(dir, "open")
	if err := os.Mkdir(open, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o777); err != nil {
		t.Fatal(err)
	}
	if _, err := listenSocket(filepath.Join(open, "s"), 0o660, -1); err == nil || !strings.Contains(err.Error(), "writable by others and not sticky") {
		t.Fatalf("in a world-writable directory: %v", err)
	}
	if err := os.Chmod(open, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	l, err = listenSocket(filepath.Join(open, "s"), 0o660, -1)
	if err != nil {
		t.Fatalf("in a sticky world-writable directory: %v", err)
	}
	l.Close()
}

func TestSocketModeFlag(t *testing.T) {
	var m socketMode
	for in, want := range map[string]socketMode{"0660": 0o660, "600": 0o600, "0": 0, "777": 0o777} {
		if err := m.Set(in); err != nil || m != want {
			t.Errorf("Set(%q) = %v, %v; want %o", in, m, err, want)
		}
	}
	for _, bad := range []string{"1777", "0999", "rw", "", "-1"} {
		if err := m.Set(bad); err == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
}

// TestStalledStreamDoesNotHoldShutdown: a client of /v1/events that reads
// nothing, its socket full, does not make stopping the API wait or fail.
// The stop ends the blocked write at once: it must take less than a
// quarter of apiWriteTimeout (2.5 s, half of serveHTTP's 5 s grace before
// it closes what is left), where it takes milliseconds. A stop that waited
// for the write's deadline, or for the grace, would take 5 s or more.
func TestStalledStreamDoesNotHoldShutdown(t *testing.T) {
	hub := newEventHub()
	hub.publish(stateEvent(netmon.Up, ""))
	path := filepath.Join(t.TempDir(), "s")
	ln, err := listenSocket(path, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveAPI(ctx, ln, &api{hub: hub}) }()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/events HTTP/1.1\r\nHost: netmon\r\n\r\n")
	for hub.n.Load() != 1 {
		runtime.Gosched()
	}
	big := strings.Repeat("x", 4096)
	for range 300 { // about 1.2 MB: more than the socket holds
		hub.publish(netmon.Event{Kind: netmon.EventAddr, At: time.Now(), Msg: big})
	}
	limit := apiWriteTimeout / 4
	stopped := time.Now()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serveAPI with a stalled stream: %v, want nil", err)
		}
		t.Logf("stopped in %v", time.Since(stopped))
	case <-time.After(limit):
		t.Errorf("serveAPI still serving %v after its stop: the stalled stream holds it", limit)
		if err := <-done; err != nil {
			t.Fatalf("serveAPI with a stalled stream: %v, want nil", err)
		}
		t.Logf("stopped after %v", time.Since(stopped))
	}
}

// TestLimitListenerPerPeer: one process gets at most perPeer connections
// at once (by the socket's peer credentials); the next is closed at once,
// and a slot comes back when one of its connections closes.
func TestLimitListenerPerPeer(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s")
	raw, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln := limitListener(raw, 10, 3)
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				close(accepted)
				return
			}
			accepted <- c
		}
	}()
	dial := func() net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	var served []net.Conn
	for range 3 {
		dial()
		served = append(served, <-accepted)
	}
	over := dial()
	defer over.Close()
	_ = over.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := over.Read(make([]byte, 1)); err == nil || n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the 4th connection of one process: read %d, %v; want it closed by the server", n, err)
	}
	served[0].Close()
	dial()
	select {
	case c := <-accepted:
		c.Close()
	case <-time.After(5 * time.Second):
		t.Fatal("no slot came back when a connection closed")
	}
	for _, c := range served[1:] {
		c.Close()
	}
}
