package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// waitTimeout bounds each wait for an expected line or exit; it is a
// deadline for a failure to show, not a measurement.
const waitTimeout = 30 * time.Second

// pair is a namespace with a veth link va (10.9.0.1/24, default route via
// the peer) whose peer vb lives in a second namespace: taking vb down
// takes va's carrier away, as a robot's access point going away does.
type pair struct {
	a, b *netnstest.NS
}

func newPair(t testing.TB) pair {
	t.Helper()
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.9.0.1/24", "dev", "va")
	b.IP("addr", "add", "10.9.0.2/24", "dev", "vb")
	a.IP("route", "add", "default", "via", "10.9.0.2")
	return pair{a, b}
}

// runNetmon runs the binary inside ns to completion and returns its exit
// code, stdout and stderr.
func runNetmon(t *testing.T, ns *netnstest.NS, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := ns.Command(ctx, buildNetmon(t), args...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	t.Logf("$ ip netns exec %s netmon %s", ns.Name, strings.Join(args, " "))
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("netmon %s did not exit within %v", strings.Join(args, " "), waitTimeout)
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("netmon %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("exit %d\nstdout: %s\nstderr: %s", code, stdout.String(), stderr.String())
	return code, stdout.String(), stderr.String()
}

// TestIntegrationWatchJSON runs `netmon watch --log-format json` in a
// namespace and checks the JSON-lines contract: a baseline line with the
// contract's keys, a state line when the peer goes down, a flap line when
// it returns, netmon_* metrics on --metrics-addr, and on SIGINT a summary
// line and exit 0.
func TestIntegrationWatchJSON(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const metricsAddr = "127.0.0.1:9810" // the namespace's own loopback: no other test shares it
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--wifi=off", "--metrics-addr", metricsAddr)
	lines, cmd, exited := w.lines, w.cmd, w.exited

	base := waitLine(t, lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	want := map[string]any{"level": "info", "event": "baseline", "state": "up", "reason": "", "iface": "va", "addrs": "10.9.0.1/24"}
	for k, v := range want {
		if base[k] != v {
			t.Errorf("baseline %s = %v, want %v", k, base[k], v)
		}
	}
	if _, err := time.Parse(time.RFC3339Nano, base["ts"].(string)); err != nil {
		t.Errorf("baseline ts: %v", err)
	}

	// The metrics server is bound before watching starts, so it serves by
	// the time the baseline is out.
	// A scrape right after start: every cause of an outage and every
	// class and cause of a failed send at 0 (so that the first one shows
	// in increase()), the watchers, the build; no Gate metrics, as
	// nothing sends through this netmon's Gate (no --socket).
	body := scrape(t, p.a, metricsAddr)
	for _, s := range []string{`netmon_state{state="up"} 1`, `netmon_interface_carrier{iface="va"} 1`,
		`netmon_interface_usable{iface="va"} 1`, "netmon_netlink_gaps_total 0",
		`netmon_target_reachable{iface="va",target="internet-ipv4"} 1`, `netmon_target_reachable{iface="",target="internet-ipv6"} 0`,
		`netmon_flaps_total{cause="carrier-lost"} 0`, `netmon_flaps_total{cause="wifi-disconnected"} 0`, `netmon_flaps_total{cause="lease-expired"} 0`,
		`netmon_send_errors_total{cause="dhcp-renewing",class="network"} 0`, `netmon_send_errors_total{cause="peer",class="rejected"} 0`,
		`netmon_watcher_up{watcher="link"} 1`, `netmon_watcher_up{watcher="wifi"} 0`, `netmon_watcher_info{status="off",watcher="wifi"} 1`,
		`netmon_watcher_up{watcher="sockerr"} 0`, `netmon_build_info{goversion="` + runtime.Version() + `"`} {
		if !strings.Contains(body, s) {
			t.Errorf("metrics lack %q", s)
		}
	}
	if strings.Contains(body, "netmon_gate_") {
		t.Errorf("Gate metrics without a sender at the Gate:\n%s", body)
	}

	p.b.IP("link", "set", "vb", "down")
	down := waitLine(t, lines, "state down", func(m map[string]any) bool { return m["event"] == "state" && m["state"] == "down" })
	if down["reason"] != "carrier-lost" || down["iface"] != "va" || down["level"] != "warn" {
		t.Errorf("state line = %v, want reason carrier-lost, iface va, level warn", down)
	}
	p.b.IP("link", "set", "vb", "up")
	flap := waitLine(t, lines, "flap", func(m map[string]any) bool { return m["event"] == "flap" })
	if flap["cause"] != "carrier-lost" || flap["duration"] == nil {
		t.Errorf("flap line = %v, want cause carrier-lost and a duration", flap)
	}
	body = scrape(t, p.a, metricsAddr)
	for _, s := range []string{`netmon_flaps_total{cause="carrier-lost"} 1`, "netmon_outage_duration_seconds_count 1"} {
		if !strings.Contains(body, s) {
			t.Errorf("metrics after the flap lack %q", s)
		}
	}

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	sum := waitLine(t, lines, "summary", func(m map[string]any) bool { return m["event"] == "summary" })
	if sum["outages"] != 1.0 || sum["final_state"] != "up" {
		t.Errorf("summary outages = %v, final_state = %v; want 1, up: %v", sum["outages"], sum["final_state"], sum)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("watch after SIGINT: %v, want exit 0", err)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("watch did not exit within %v of SIGINT", waitTimeout)
	}
}

// watchProc is a running `netmon watch --log-format json`.
type watchProc struct {
	lines  <-chan map[string]any // stdout, one parsed JSON object per line
	cmd    *exec.Cmd
	exited <-chan error // Wait's result, once stdout has ended
}

// startNetmon starts netmon with args inside ns under ctx, its stdout a
// pipe for the caller to read and its stderr logged; stderrDone is closed
// once stderr has ended.
func startNetmon(t *testing.T, ctx context.Context, ns *netnstest.NS, args ...string) (cmd *exec.Cmd, stdout io.Reader, stderrDone <-chan struct{}) {
	t.Helper()
	cmd = ns.Command(ctx, buildNetmon(t), args...)
	t.Logf("$ ip netns exec %s netmon %s", ns.Name, strings.Join(args, " "))
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		logLines(t, "stderr: ", stderr)
	}()
	return cmd, stdout, done
}

// startWatch runs netmon with args inside ns, checks that every stdout
// line is a JSON object with the contract's keys, and kills the process
// when the test ends.
func startWatch(t *testing.T, ns *netnstest.NS, args ...string) watchProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd, stdout, stderrDone := startNetmon(t, ctx, ns, args...)
	exited := make(chan error, 1)
	lines := make(chan map[string]any)
	go func() {
		// Read stdout to the end, then reap the process: Wait must not
		// run before the pipes are drained.
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			t.Logf("stdout: %s", sc.Text())
			var m map[string]any
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Errorf("stdout line is not a JSON object: %q: %v", sc.Text(), err)
				continue
			}
			for _, k := range []string{"ts", "level", "msg", "event"} {
				if _, ok := m[k]; !ok {
					t.Errorf("line lacks %q: %s", k, sc.Text())
				}
			}
			if _, ok := m["state"]; ok && m["event"] != "baseline" && m["event"] != "state" {
				t.Errorf("only baseline and state lines may use the key state: %s", sc.Text())
			}
			select {
			case lines <- m:
			case <-ctx.Done():
			}
		}
		close(lines)
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		cancel()
		for range lines {
		}
		<-stderrDone // no t.Log after the test ends
	})
	return watchProc{lines: lines, cmd: cmd, exited: exited}
}

// waitLine returns the first line that matches (a parsed JSON line, or a
// plain one), failing the test if none arrives within waitTimeout or the
// output ends.
func waitLine[L any](t testing.TB, lines <-chan L, what string, match func(L) bool) L {
	t.Helper()
	deadline := time.After(waitTimeout)
	for {
		select {
		case m, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a %s line", what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s line within %v", what, waitTimeout)
		}
	}
}

// scrape fetches /metrics from addr inside ns. The socket is opened on a
// thread inside the namespace (ns.Do) and used from here; an http.Client
// would dial on a goroutine of its own, outside the namespace.
func scrape(t *testing.T, ns *netnstest.NS, addr string) string {
	t.Helper()
	var conn net.Conn
	if err := ns.Do(func() (err error) {
		conn, err = net.Dial("tcp", addr)
		return err
	}); err != nil {
		t.Fatalf("dial metrics: %v", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(waitTimeout))
	if _, err := io.WriteString(conn, "GET /metrics HTTP/1.0\r\nHost: netmon\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(b), "HTTP/1.0 200") {
		t.Fatalf("scrape: %.200s", b)
	}
	return string(b)
}

func logLines(t *testing.T, prefix string, r io.Reader) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		t.Log(prefix + sc.Text())
	}
}

// TestIntegrationStatusExitCodes checks `status --json`: one snapshot
// object, exit 0 while up and 1 once the peer is down.
func TestIntegrationStatusExitCodes(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	code, out, _ := runNetmon(t, p.a, "status", "--json", "--wifi=off")
	var snap struct {
		State      string `json:"state"`
		Reason     string `json:"reason"`
		Iface      string `json:"iface"`
		Interfaces []struct {
			Name    string `json:"name"`
			Carrier bool   `json:"carrier"`
		} `json:"interfaces"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if code != exitOK || snap.State != "up" || snap.Iface != "va" {
		t.Errorf("up: exit %d, state %q on %q; want exit 0, up on va", code, snap.State, snap.Iface)
	}
	if len(snap.Interfaces) != 1 || snap.Interfaces[0].Name != "va" || !snap.Interfaces[0].Carrier {
		t.Errorf("interfaces = %+v, want va with carrier (loopback is not watched)", snap.Interfaces)
	}

	// The kernel drops va's carrier as vb goes down, before `ip` returns.
	p.b.IP("link", "set", "vb", "down")
	code, out, _ = runNetmon(t, p.a, "status", "--json", "--wifi=off")
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if code != exitFail || snap.State != "down" || snap.Reason != "carrier-lost" {
		t.Errorf("down: exit %d, state %q (%s); want exit 1, down (carrier-lost)", code, snap.State, snap.Reason)
	}
	code, out, _ = runNetmon(t, p.a, "status", "--wifi=off")
	if code != exitFail || !strings.HasPrefix(out, "down carrier-lost") {
		t.Errorf("human status: exit %d, %q; want exit 1 and a line starting \"down carrier-lost\"", code, out)
	}
}

// TestIntegrationWaitOnline checks wait-online: exit 0 at once when up,
// 1 with the reason when --timeout passes while down, and 0 when the link
// returns during the wait.
func TestIntegrationWaitOnline(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	if code, out, _ := runNetmon(t, p.a, "wait-online", "--timeout", "20s", "--wifi=off"); code != exitOK || out != "online: up via va\n" {
		t.Errorf("up: exit %d, %q; want 0, \"online: up via va\"", code, out)
	}
	if code, _, _ := runNetmon(t, p.a, "wait-online", "--timeout", "20s", "--iface", "va", "--wifi=off", "-q"); code != exitOK {
		t.Errorf("up with --iface va: exit %d, want 0", code)
	}

	p.b.IP("link", "set", "vb", "down")
	code, _, errOut := runNetmon(t, p.a, "wait-online", "--timeout", "500ms", "--wifi=off")
	if code != exitFail || errOut != "netmon wait-online: not online after 500ms: down (carrier-lost on va)\n" {
		t.Errorf("down: exit %d, stderr %q; want 1 and the reason", code, errOut)
	}

	// Online during the wait: the command is started while down, and the
	// peer comes up once the command has printed nothing and is waiting.
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := p.a.Command(ctx, buildNetmon(t), "wait-online", "--timeout", "0", "--wifi=off")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.b.IP("link", "set", "vb", "up")
	if err := cmd.Wait(); err != nil || out.String() != "online: up via va\n" {
		t.Errorf("online during the wait: %v, output %q; want exit 0, \"online: up via va\"", err, out.String())
	}
}

// TestIntegrationWaitOnlineAwaitsInterface: an --iface that does not exist
// yet is waited for, not a usage error: the timeout names it, and an
// interface that appears during the wait and comes up ends it with 0.
func TestIntegrationWaitOnlineAwaitsInterface(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	code, _, errOut := runNetmon(t, p.a, "wait-online", "--timeout", "500ms", "--iface", "vc", "--wifi=off")
	if code != exitFail || errOut != "netmon wait-online: not online after 500ms: down (no-interface); no interface vc appeared\n" {
		t.Errorf("missing: exit %d, stderr %q; want 1 and the missing interface", code, errOut)
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	cmd := p.a.Command(ctx, buildNetmon(t), "wait-online", "--timeout", "0", "--iface", "vc", "--wifi=off")
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	netnstest.Veth(t, p.a, "vc", p.b, "vd")
	p.b.IP("addr", "add", "10.8.0.2/24", "dev", "vd")
	p.a.IP("addr", "add", "10.8.0.1/24", "dev", "vc")
	p.a.IP("route", "add", "default", "via", "10.8.0.2", "metric", "50")
	if err := cmd.Wait(); err != nil || out.String() != "online: up via vc\n" {
		t.Errorf("appeared during the wait: %v, output %q; want exit 0, \"online: up via vc\"", err, out.String())
	}
}
