package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// unixClient returns an HTTP client that dials path.
func unixClient(t testing.TB, path string) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
		MaxIdleConnsPerHost: 2000,
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// envDial makes the test binary a client that connects to the socket it
// names and fetches /v1/state (see init).
const envDial = "NETMON_TEST_DIAL"

// init makes the test binary, run by TestIntegrationAPIPermissions as
// another user with envDial set, that client: it connects, prints the
// outcome and exits before any test runs. (A helper written as a test
// would skip in every ordinary run: a skip that NETMON_REQUIRE_PRIVILEGED
// cannot turn into a failure.)
func init() {
	if path := os.Getenv(envDial); path != "" {
		helperDial(path)
		os.Exit(0)
	}
}

func helperDial(path string) {
	c, err := net.Dial("unix", path)
	if err != nil {
		fmt.Printf("dial: %v\n", err)
		return
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /v1/state HTTP/1.1\r\nHost: netmon\r\nConnection: close\r\n\r\n")
	line, _ := bufio.NewReader(c).ReadString('\n')
	fmt.Printf("answer: %s\n", strings.TrimSpace(line))
}

// TestIntegrationAPIPermissions: `netmon watch --socket` with
// --socket-group and the default mode 0660: the kernel refuses a user
// outside the group and lets a member in. Both clients are processes of
// their own running as the user nobody.
func TestIntegrationAPIPermissions(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	dir := netnstest.OpenDir(t)
	path := filepath.Join(dir, "netmon.sock")
	const gid = 4242 // a group nobody is in
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--socket", path, "--socket-group", strconv.Itoa(gid))
	waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode().Perm() != 0o660 || st.Gid != gid || st.Uid != 0 {
		t.Fatalf("socket %v uid %d gid %d, want 0660 root:%d", fi.Mode(), st.Uid, st.Gid, gid)
	}

	bin := netnstest.SelfForAnyUser(t) // this test binary, which nobody may run
	dial := func(groups ...uint32) string {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-test.run=^$") // init is the client; no test runs
		cmd.Env = append(os.Environ(), envDial+"="+path)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: groups}}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("client as nobody (groups %v): %v: %s", groups, err, out)
		}
		return string(out)
	}
	if out := dial(); !strings.Contains(out, "dial: ") || !strings.Contains(out, "permission denied") {
		t.Errorf("nobody outside the group: %q, want the kernel's permission denied", out)
	}
	if out := dial(gid); !strings.Contains(out, "answer: HTTP/1.1 200 OK") {
		t.Errorf("nobody in the group: %q, want 200 OK", out)
	}
}

// rss returns a process's resident set size in KiB.
func rss(t *testing.T, pid int) int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`VmRSS:\s+(\d+) kB`).FindSubmatch(b)
	if m == nil {
		t.Fatalf("no VmRSS in /proc/%d/status", pid)
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// stateLatency fetches /v1/state n times and returns the median and the
// slowest.
func stateLatency(t *testing.T, c *http.Client, n int) (time.Duration, time.Duration) {
	t.Helper()
	var ds []time.Duration
	for range n {
		start := time.Now()
		resp, err := c.Get("http://netmon/v1/state")
		if err != nil {
			t.Fatalf("/v1/state: %v", err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("/v1/state: %d", resp.StatusCode)
		}
		ds = append(ds, time.Since(start))
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[len(ds)-1]
}

// TestIntegrationAPIBadClients runs `netmon watch --socket` and, at once,
// 100 connections that never finish their header, a 10 MB body, an event
// stream that reads nothing and 1,000 clients held on /v1/wait while the
// link is down. The state stays fast to read, the link's return releases
// every waiter, a stream that reads keeps every event in order, the
// stalled stream is cut off with a line that says how many events it
// missed, and the slow headers are dropped after their deadline. The
// figures (latencies, memory per waiter and per stream) go to the log.
func TestIntegrationAPIBadClients(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	path := filepath.Join(netnstest.OpenDir(t), "netmon.sock")
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--stabilize", "0", "--socket", path)
	waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	go func() { // the log must not stall the daemon
		for range w.lines {
		}
	}()
	pid := w.cmd.Process.Pid
	c := unixClient(t, path)
	p50, worst := stateLatency(t, c, 50)
	rss0 := rss(t, pid)
	t.Logf("alone: /v1/state p50 %v, slowest %v; netmon RSS %d KiB", p50, worst, rss0)

	// 100 connections that never finish their header.
	var slow []net.Conn
	for range 100 {
		conn, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "GET /v1/state HTTP/1.1\r\nHost: netmon\r\n")
		slow = append(slow, conn)
	}
	defer func() {
		for _, c := range slow {
			c.Close()
		}
	}()
	// A 10 MB body: refused after 64 KiB.
	big := make(chan int, 1)
	go func() {
		body := io.MultiReader(strings.NewReader(`{"error": "`), io.LimitReader(infinite('x'), 10<<20), strings.NewReader(`"}`))
		resp, err := c.Post("http://netmon/v1/report", "application/json", body)
		if err != nil {
			big <- 0
			return
		}
		resp.Body.Close()
		big <- resp.StatusCode
	}()
	// An event stream that reads nothing (for now), and one that reads.
	stalled, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer stalled.Close()
	fmt.Fprintf(stalled, "GET /v1/events HTTP/1.1\r\nHost: netmon\r\n\r\n")
	reading := make(chan map[string]any, 1<<16)
	resp, err := c.Get("http://netmon/v1/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		defer close(reading)
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			var m map[string]any
			if json.Unmarshal(sc.Bytes(), &m) == nil {
				reading <- m
			}
		}
	}()
	if code := <-big; code != http.StatusRequestEntityTooLarge && code != 0 {
		t.Errorf("10 MB body: %d, want 413 (or the connection closed)", code)
	}

	// 1,000 waiters while the link is down.
	p.b.IP("link", "set", "vb", "down")
	waitLine(t, reading, "state down", isState("down"))
	const waiters = 1000
	answers := make(chan time.Time, waiters)
	for range waiters {
		go func() {
			resp, err := c.Get("http://netmon/v1/wait?timeout=60s")
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("wait: %d", resp.StatusCode)
				}
			} else {
				t.Errorf("wait: %v", err)
			}
			answers <- time.Now()
		}()
	}
	held := func() string {
		resp, err := c.Get("http://netmon/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	deadline := time.Now().Add(waitTimeout)
	for !strings.Contains(held(), fmt.Sprintf("netmon_gate_held_senders %d\n", waiters)) {
		if time.Now().After(deadline) {
			t.Fatalf("not %d senders held after %v", waiters, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
	rss1 := rss(t, pid)
	p50b, worstb := stateLatency(t, c, 50)
	t.Logf("with 100 slow headers, a stalled stream and %d waiters: /v1/state p50 %v, slowest %v; netmon RSS %d KiB (+%.1f KiB per waiter)",
		waiters, p50b, worstb, rss1, float64(rss1-rss0)/waiters)
	up := time.Now()
	p.b.IP("link", "set", "vb", "up")
	var ds []time.Duration
	for range waiters {
		select {
		case at := <-answers:
			ds = append(ds, at.Sub(up))
		case <-time.After(waitTimeout):
			t.Fatalf("%d of %d waiters answered within %v of the link's return", len(ds), waiters, waitTimeout)
		}
	}
	slices.Sort(ds)
	t.Logf("link up (ip link set, from this test) -> waiter answers: p50 %v, p99 %v, last %v", ds[len(ds)/2], ds[len(ds)*99/100], ds[len(ds)-1])
	waitLine(t, reading, "state up", isState("up"))

	// Storms of address changes, each within what a stream may fall
	// behind (800 lines), together more than the stalled stream's socket
	// and buffer hold. The reading stream gets every line, in order; the
	// stalled one is cut off.
	const storm = 400
	for k := range 4 {
		p.a.AddrStorm("va", storm)
		for i := range 2 * storm {
			m := waitLine(t, reading, "storm address", func(m map[string]any) bool {
				// Only the storm's addresses: the link's IPv6 address
				// finishes its duplicate address detection meanwhile.
				a, _ := m["addr"].(string)
				return m["event"] == "addr" && strings.HasPrefix(a, "10.250.") || m["event"] == "dropped"
			})
			if m["event"] == "dropped" {
				t.Fatalf("storm %d: the reading stream missed events: %v", k, m)
			}
			if want := fmt.Sprintf("10.250.%d.%d/32", (i/2)/250, (i/2)%250+1); m["addr"] != want {
				t.Fatalf("storm %d line %d: %v, want address %s", k, i, m, want)
			}
		}
	}
	deadline = time.Now().Add(waitTimeout)
	for !regexp.MustCompile(`netmon_events_dropped_total\{queue="api"\} [1-9]`).MatchString(held()) {
		if time.Now().After(deadline) {
			t.Fatal("the stalled stream was not cut off")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Now it reads: what was queued for it, then the line that cuts it off.
	_ = stalled.SetReadDeadline(time.Now().Add(waitTimeout))
	var last string
	sc := bufio.NewScanner(stalled)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() { // the chunked body's lines, up to the one that cuts it off
		if l := sc.Text(); strings.HasPrefix(l, "{") {
			if last = l; strings.Contains(l, `"cut_off"`) {
				break
			}
		}
	}
	var final map[string]any
	if err := json.Unmarshal([]byte(last), &final); err != nil || final["event"] != "dropped" || final["cut_off"] != true || final["count"].(float64) < 1 {
		t.Fatalf("the stalled stream's last line %q, want a dropped line with cut_off and a count", last)
	}
	t.Logf("the stalled stream: %s", final["msg"])

	// The slow headers were dropped after their deadline: the server
	// closed them.
	for i, conn := range slow {
		_ = conn.SetReadDeadline(time.Now().Add(waitTimeout))
		if _, err := io.Copy(io.Discard, conn); err != nil {
			t.Fatalf("slow header %d: %v, want the server to close it", i, err)
		}
	}
	rss2 := rss(t, pid)
	t.Logf("after: netmon RSS %d KiB", rss2)
}

// infinite is an endless reader of one byte.
type infinite byte

func (b infinite) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(b)
	}
	return len(p), nil
}

// TestIntegrationAPIStreamMemory measures the daemon's memory per event
// stream: 100 streams that read.
func TestIntegrationAPIStreamMemory(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	path := filepath.Join(netnstest.OpenDir(t), "netmon.sock")
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--socket", path)
	waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	go func() {
		for range w.lines {
		}
	}()
	c := unixClient(t, path)
	rss0 := rss(t, w.cmd.Process.Pid)
	const n = 100
	var firsts []chan struct{}
	for range n {
		resp, err := c.Get("http://netmon/v1/events")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		first := make(chan struct{})
		firsts = append(firsts, first)
		go func() {
			r := bufio.NewReader(resp.Body)
			if _, err := r.ReadString('\n'); err == nil {
				close(first)
			}
			_, _ = io.Copy(io.Discard, r)
		}()
	}
	for _, f := range firsts {
		select {
		case <-f:
		case <-time.After(waitTimeout):
			t.Fatal("a stream had no baseline line")
		}
	}
	rss1 := rss(t, w.cmd.Process.Pid)
	t.Logf("%d event streams: netmon RSS %d -> %d KiB (+%.1f KiB per stream)", n, rss0, rss1, float64(rss1-rss0)/n)
}
