package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netlink"
	"go.uber.org/zap"
)

// apiLab is a Monitor watching a namespace whose veth's peer the test
// takes down and up, served by the local API on a Unix socket, as `netmon
// watch --socket` serves it (the same handler and event hub), in this
// process so that the test can compare the API with the Monitor.
type apiLab struct {
	p      pair
	m      *netmon.Monitor
	client *http.Client
	peer   netlink.Link // vb, in the peer namespace
	ph     *netlink.Handle
}

func startAPILab(t testing.TB, targets ...string) *apiLab {
	t.Helper()
	return startAPILabWith(t, netmon.Options{Targets: targets}, nil)
}

// startAPILabWith is startAPILab with the Monitor's options o (its
// namespace, watchers and logger are set here) and setup, if not nil,
// called on the pair before the Monitor starts.
func startAPILabWith(t testing.TB, o netmon.Options, setup func(pair)) *apiLab {
	t.Helper()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	if setup != nil {
		setup(p)
	}
	o.NetNS, o.Wifi, o.DHCP, o.SockErrors, o.Stabilize, o.Logger = p.a.Handle, "off", "off", "off", -1, zap.NewNop()
	targets := o.Targets
	m, err := netmon.New(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	hub := newEventHub()
	events := m.Events()
	runDone, fanDone, apiDone := make(chan error, 1), make(chan struct{}), make(chan error, 1)
	go func() { runDone <- m.Run(ctx) }()
	go func() {
		defer close(fanDone)
		for ev := range events {
			hub.publish(ev)
		}
	}()
	path := filepath.Join(t.TempDir(), "netmon.sock")
	l, err := listenSocket(path, 0o600, -1)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	go func() { apiDone <- serveAPI(ctx, l, &api{m: m, targets: targets, hub: hub}) }()
	client := unixClient(t, path)
	ph := p.b.NetlinkHandle()
	peer, err := ph.LinkByName("vb")
	if err != nil {
		t.Fatal(err)
	}
	lab := &apiLab{p: p, m: m, client: client, peer: peer, ph: ph}
	t.Cleanup(func() {
		cancel()
		<-runDone
		<-fanDone
		if err := <-apiDone; err != nil {
			t.Errorf("API server: %v", err)
		}
	})
	lab.waitState(t, netmon.Up)
	return lab
}

// waitState waits until the Monitor's state is s.
func (l *apiLab) waitState(t testing.TB, s netmon.State) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.m.Status().State != s {
		if time.Now().After(deadline) {
			t.Fatalf("state %v after %v, want %v", l.m.Status(), waitTimeout, s)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitHeld waits until n callers are held at the Monitor's Gate.
func (l *apiLab) waitHeld(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for l.m.Gate().Stats().HeldNow != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d held at the Gate after %v, want %d", l.m.Gate().Stats().HeldNow, waitTimeout, n)
		}
		time.Sleep(time.Millisecond)
	}
}

func (l *apiLab) setPeer(t testing.TB, up bool) {
	t.Helper()
	f := l.ph.LinkSetDown
	if up {
		f = l.ph.LinkSetUp
	}
	if err := f(l.peer); err != nil {
		t.Fatal(err)
	}
}

// get fetches path and decodes the JSON answer into v; it returns the
// status code.
func (l *apiLab) do(t testing.TB, method, path, body string, v any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://netmon"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := l.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading: %v", method, path, err)
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

// stream is a client of /v1/events.
type stream struct {
	lines chan map[string]any
}

func (l *apiLab) events(t testing.TB) *stream {
	t.Helper()
	resp, err := l.client.Get("http://netmon/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("/v1/events: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	s := &stream{lines: make(chan map[string]any, 4096)}
	go func() {
		defer close(s.lines)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("event line %q: %v", sc.Text(), err)
				return
			}
			s.lines <- m
		}
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		for range s.lines {
		}
	})
	return s
}

// next returns the next line that matches, failing at waitTimeout.
func (s *stream) next(t testing.TB, what string, match func(map[string]any) bool) map[string]any {
	t.Helper()
	return waitLine(t, s.lines, what, match)
}

func isState(state string) func(map[string]any) bool {
	return func(m map[string]any) bool { return m["event"] == "state" && m["state"] == state }
}

// TestAPIEndpoints drives every endpoint against a Monitor of a real
// namespace: the state; a wait that answers at once, one that times out
// with the reason, one released when the link returns; the events of an
// outage in order; reports equal to Monitor.Report's on the same error.
func TestAPIEndpoints(t *testing.T) {
	t.Parallel()
	l := startAPILab(t)

	var snap map[string]any
	if code := l.do(t, "GET", "/v1/state", "", &snap); code != 200 || snap["state"] != "up" || snap["iface"] != "va" {
		t.Fatalf("/v1/state: %d %v", code, snap)
	}
	for _, k := range []string{"time", "since", "targets", "interfaces", "wifi_watcher", "dhcp_watcher"} {
		if _, ok := snap[k]; !ok {
			t.Errorf("/v1/state lacks %q, which status --json has", k)
		}
	}
	var w waitAnswerJSON
	if code := l.do(t, "GET", "/v1/wait?timeout=0", "", &w); code != 200 || !w.Online || w.State != "up" {
		t.Fatalf("wait while up: %d %+v", code, w)
	}

	ev := l.events(t)
	if m := ev.next(t, "first", func(map[string]any) bool { return true }); m["event"] != "baseline" || m["state"] != "up" {
		t.Fatalf("first event line %v, want the baseline up", m)
	}
	report := func() (map[string]any, map[string]any) {
		var api map[string]any
		if code := l.do(t, "POST", "/v1/report", `{"errno": 101}`, &api); code != 200 {
			t.Fatalf("report: %d %v", code, api)
		}
		b, err := json.Marshal(l.m.Report(syscall.ENETUNREACH))
		if err != nil {
			t.Fatal(err)
		}
		var lib map[string]any
		if err := json.Unmarshal(b, &lib); err != nil {
			t.Fatal(err)
		}
		delete(api, "at")
		delete(lib, "at")
		// The outage's age differs by the moment between the two.
		for _, m := range []map[string]any{api, lib} {
			delete(m, "into_seconds")
			m["explanation"] = msAgo.ReplaceAllString(fmt.Sprint(m["explanation"]), "Nms")
		}
		return api, lib
	}
	if api, lib := report(); fmt.Sprint(api) != fmt.Sprint(lib) {
		t.Errorf("while up: the API's report %v, Monitor.Report's %v", api, lib)
	}

	l.setPeer(t, false)
	ev.next(t, "state down", isState("down"))
	if code := l.do(t, "GET", "/v1/wait?timeout=50ms", "", &w); code != http.StatusGatewayTimeout || w.Online || w.Reason != "carrier-lost" || w.WaitedSec < 0.05 {
		t.Fatalf("wait while down: %d %+v, want 504 offline carrier-lost after 50ms", code, w)
	}
	api, lib := report()
	if fmt.Sprint(api) != fmt.Sprint(lib) || api["cause"] != "link-down" {
		t.Errorf("while down: the API's report %v, Monitor.Report's %v; want cause link-down", api, lib)
	}
	ev.next(t, "the reported sockerr", func(m map[string]any) bool {
		return m["event"] == "sockerr" && m["source"] == "report" && m["errno"] == "ENETUNREACH"
	})

	answer := make(chan waitAnswerJSON, 1)
	go func() {
		var w waitAnswerJSON
		l.do(t, "GET", "/v1/wait?timeout=30s", "", &w)
		answer <- w
	}()
	l.waitHeld(t, 1)
	l.setPeer(t, true)
	select {
	case w := <-answer:
		if !w.Online || w.State == "down" {
			t.Fatalf("released wait: %+v", w)
		}
	case <-time.After(waitTimeout):
		t.Fatal("the wait was not released when the link returned")
	}
	ev.next(t, "flap", func(m map[string]any) bool { return m["event"] == "flap" && m["cause"] == "carrier-lost" })
	ev.next(t, "state up", isState("up"))

	// Bad parameters name the problem and what is valid.
	var e struct{ Error, Valid string }
	for _, c := range []struct{ method, path, body string }{
		{"GET", "/v1/wait?timeout=forever", ""},
		{"GET", "/v1/wait?target=10.1.2.3", ""},
		{"GET", "/v1/wait?timout=1s", ""},
		{"POST", "/v1/report", `{"errno": "ENETUNREACH"}`},
		{"POST", "/v1/report", `{"errno": 101}{"errno": 101}`},
	} {
		if code := l.do(t, c.method, c.path, c.body, &e); code != 400 || e.Error == "" || e.Valid == "" {
			t.Errorf("%s %s %s: %d %+v, want 400 with error and valid", c.method, c.path, c.body, code, e)
		}
	}
	if code := l.do(t, "GET", "/v2/state", "", &e); code != 404 || !strings.Contains(e.Valid, "/v1/state") {
		t.Errorf("unknown path: %d %+v", code, e)
	}
	if code := l.do(t, "DELETE", "/v1/state", "", &e); code != 405 {
		t.Errorf("DELETE /v1/state: %d %+v", code, e)
	}
	big := `{"error": "` + strings.Repeat("x", 10<<20) + `"}`
	if code := l.do(t, "POST", "/v1/report", big, &e); code != http.StatusRequestEntityTooLarge {
		t.Errorf("10 MB body: %d %+v, want 413", code, e)
	}
}

// TestAPISuccess: POST /v1/success counts a send that worked towards its
// destination. Timeouts towards two dead servers reported through the API
// while the third server's successes are reported too leave the state up;
// once the live server fails as well, the same failures close it
// (send-errors), and a success reopens it at once.
func TestAPISuccess(t *testing.T) {
	t.Parallel()
	l := startAPILab(t)
	var ans map[string]any
	fail := func(dst string) {
		t.Helper()
		if code := l.do(t, "POST", "/v1/report", `{"errno": 110, "dst": "`+dst+`"}`, &ans); code != 200 {
			t.Fatalf("report: %d %v", code, ans)
		}
	}
	success := func(dst string) map[string]any {
		t.Helper()
		var a map[string]any
		if code := l.do(t, "POST", "/v1/success", `{"dst": "`+dst+`"}`, &a); code != 200 {
			t.Fatalf("success: %d %v", code, a)
		}
		return a
	}
	const dead1, dead2, live = "198.51.100.1:7000", "198.51.100.2:7000", "198.51.100.3:7000"
	fail(dead1)
	if a := success(live); a["dst"] != "198.51.100.3" || a["state"] != "up" {
		t.Fatalf("success answer %v, want dst 198.51.100.3 and state up", a)
	}
	for i := range 12 {
		fail([]string{dead1, dead2}[i%2])
		if i == 6 {
			success(live)
		}
	}
	if s := l.m.Status(); s.State != netmon.Up {
		t.Fatalf("status %+v after two dead servers' timeouts beside a live one, want up", s)
	}
	fail(live) // the live one stops answering: nothing does
	l.waitState(t, netmon.Down)
	if s := l.m.Status(); s.Reason != netmon.ReasonSendErrors {
		t.Fatalf("status %+v, want down for send-errors", s)
	}
	if a := success(live); a["state"] != "up" {
		t.Fatalf("success answer %v while down for send-errors, want the state up again", a)
	}
	// Bad bodies name the problem and what is valid.
	var e struct{ Error, Valid string }
	for _, body := range []string{`{"dst": "robot.example"}`, `{"dest": "10.0.0.1"}`, `{}{}`} {
		if code := l.do(t, "POST", "/v1/success", body, &e); code != 400 || e.Error == "" || !strings.Contains(e.Valid, `"dst"`) {
			t.Errorf("POST /v1/success %s: %d %+v, want 400 with error and valid", body, code, e)
		}
	}
	if code := l.do(t, "POST", "/v1/success", `{}`, &ans); code != 200 {
		t.Errorf("POST /v1/success {}: %d %v, want 200 (a success towards an unknown destination)", code, ans)
	}
}

// msAgo matches the age of an outage in an explanation's text.
var msAgo = regexp.MustCompile(`[0-9.]+m?s\b`)

// waitAnswerJSON is /v1/wait's answer as a client decodes it.
type waitAnswerJSON struct {
	Online    bool    `json:"online"`
	Trial     bool    `json:"trial"`
	State     string  `json:"state"`
	Reason    string  `json:"reason"`
	Target    string  `json:"target"`
	WaitedSec float64 `json:"waited_seconds"`
}

// TestAPIWaitTarget: a wait on a target is released by that target's
// path, and names it.
func TestAPIWaitTarget(t *testing.T) {
	t.Parallel()
	l := startAPILab(t, "10.9.0.2")
	var w waitAnswerJSON
	if code := l.do(t, "GET", "/v1/wait?timeout=0&target=10.9.0.2", "", &w); code != 200 || !w.Online || w.Target != "10.9.0.2" {
		t.Fatalf("wait on the reachable target: %d %+v", code, w)
	}
	l.setPeer(t, false)
	l.waitState(t, netmon.Down)
	if code := l.do(t, "GET", "/v1/wait?timeout=10ms&target=10.9.0.2", "", &w); code != 504 || w.Online || w.Target != "10.9.0.2" {
		t.Fatalf("wait on the unreachable target: %d %+v", code, w)
	}
	var e struct{ Error, Valid string }
	if code := l.do(t, "GET", "/v1/wait?target=10.9.0.3", "", &e); code != 400 || !strings.Contains(e.Valid, "10.9.0.2") {
		t.Fatalf("wait on a target netmon does not have: %d %+v", code, e)
	}
}

// newDownMonitor returns a Monitor (not running) of one end of a veth
// pair whose peer is down: its Gate holds.
func newDownMonitor(t *testing.T) *netmon.Monitor {
	t.Helper()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	m, err := netmon.New(netmon.Options{NetNS: p.a.Handle, Wifi: "off", DHCP: "off", SockErrors: "off", Stabilize: -1, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	p.b.IP("link", "set", "vb", "down")
	return m
}

// TestAPIStopsWaitsAndStreams: when netmon stops, a held waiter gets 503
// and an event stream ends, so that shutdown never hangs on a client.
func TestAPIStopsWaitsAndStreams(t *testing.T) {
	t.Parallel()
	m := newDownMonitor(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	hub := newEventHub()
	runDone := make(chan error, 1)
	events := m.Events()
	go func() { runDone <- m.Run(ctx) }()
	go func() {
		for ev := range events {
			hub.publish(ev)
		}
	}()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := listenSocket(path, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	apiDone := make(chan error, 1)
	go func() { apiDone <- serveAPI(ctx, ln, &api{m: m, hub: hub}) }()
	c := unixClient(t, path)
	for m.Status().State != netmon.Down {
		time.Sleep(time.Millisecond)
	}
	codes := make(chan int, 1)
	go func() {
		resp, err := c.Get("http://netmon/v1/wait?timeout=1h")
		if err != nil {
			codes <- 0
			return
		}
		resp.Body.Close()
		codes <- resp.StatusCode
	}()
	resp, err := c.Get("http://netmon/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	deadline := time.Now().Add(waitTimeout)
	for m.Gate().Stats().HeldNow != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	stopped := time.Now()
	cancel()
	if code := <-codes; code != http.StatusServiceUnavailable {
		t.Errorf("a held wait at shutdown answered %d, want 503", code)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Errorf("event stream at shutdown: %v, want its end", err)
	}
	if err := <-apiDone; err != nil {
		t.Errorf("API server: %v", err)
	}
	<-runDone
	t.Logf("the API stopped %v after the cancellation", time.Since(stopped).Round(time.Millisecond))
}

// TestAPIWaitAnswers503WhenTheGateShutsDown: when netmon stops, the
// Monitor shuts its Gate down and the server ends the requests, in either
// order. Here the Gate goes first while the requests stay alive, which is
// the order that used to answer 504 ("timed out"): a wait held at the
// shutdown, and one that arrives after it, both answer 503.
func TestAPIWaitAnswers503WhenTheGateShutsDown(t *testing.T) {
	t.Parallel()
	m := newDownMonitor(t)
	// The Monitor and the API stop apart: the Monitor first.
	mctx, stopMonitor := context.WithCancel(context.Background())
	defer stopMonitor()
	actx, stopAPI := context.WithCancel(context.Background())
	defer stopAPI()
	runDone := make(chan error, 1)
	go func() { runDone <- m.Run(mctx) }()
	path := filepath.Join(t.TempDir(), "s")
	ln, err := listenSocket(path, 0o600, -1)
	if err != nil {
		t.Fatal(err)
	}
	apiDone := make(chan error, 1)
	go func() { apiDone <- serveAPI(actx, ln, &api{m: m, hub: newEventHub()}) }()
	c := unixClient(t, path)
	get := func() (int, string) {
		resp, err := c.Get("http://netmon/v1/wait?timeout=1h")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	type answer struct {
		code int
		body string
	}
	held := make(chan answer, 1)
	go func() {
		code, body := get()
		held <- answer{code, body}
	}()
	deadline := time.Now().Add(waitTimeout)
	for m.Gate().Stats().HeldNow != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("the wait was not held within %v (state %s)", waitTimeout, m.Status().State)
		}
		time.Sleep(time.Millisecond)
	}
	stopMonitor()
	if err := <-runDone; err != nil && !errors.Is(err, context.Canceled) {
		t.Errorf("Monitor.Run: %v", err)
	}
	if a := <-held; a.code != http.StatusServiceUnavailable {
		t.Errorf("a wait held when the Gate shut down answered %d %s, want 503", a.code, a.body)
	}
	if code, body := get(); code != http.StatusServiceUnavailable {
		t.Errorf("a wait after the Gate shut down answered %d %s, want 503", code, body)
	}
	stopAPI()
	if err := <-apiDone; err != nil {
		t.Errorf("API server: %v", err)
	}
}

// BenchmarkAPIWaitRelease measures, for 1 and 1,000 clients held on
// /v1/wait, the time from the peer's link coming back (the netlink call
// that sets it up) to each client's answer: p50, p99 and the last.
func BenchmarkAPIWaitRelease(b *testing.B) {
	for _, n := range []int{1, 1000} {
		b.Run(fmt.Sprintf("waiters=%d", n), func(b *testing.B) {
			l := startAPILab(b)
			var all []time.Duration
			var lasts []time.Duration
			for range b.N {
				l.setPeer(b, false)
				l.waitState(b, netmon.Down)
				done := make(chan time.Time, n)
				for range n {
					go func() {
						resp, err := l.client.Get("http://netmon/v1/wait?timeout=60s")
						if err == nil {
							_, _ = io.Copy(io.Discard, resp.Body)
							resp.Body.Close()
						}
						done <- time.Now()
					}()
				}
				l.waitHeld(b, n)
				start := time.Now()
				l.setPeer(b, true)
				var last time.Duration
				for range n {
					d := (<-done).Sub(start)
					all = append(all, d)
					last = max(last, d)
				}
				lasts = append(lasts, last)
				l.waitState(b, netmon.Up)
			}
			slices.Sort(all)
			slices.Sort(lasts)
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(lasts[len(lasts)/2].Microseconds()), "last-µs")
			b.ReportMetric(0, "ns/op")
		})
	}
}
