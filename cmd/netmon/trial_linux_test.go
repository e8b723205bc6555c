package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// waitClientStep is one thing the API client of
// TestAPIWaitTrialEndsAnUpstreamStall did, when its answer came.
type waitClientStep struct {
	at   time.Time
	kind string // "wait" (wait has the answer), "sent" or "failed" (report has the answer to the outcome reported)
	code int
	wait waitAnswerJSON
	// report is the answer to POST /v1/success or /v1/report.
	report map[string]any
	err    error
}

// call makes one request of the local API with ctx and decodes its JSON
// answer into v, without failing the test: it runs in a client's goroutine.
func (l *apiLab) call(ctx context.Context, method, path, body string, v any) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, "http://netmon"+path, strings.NewReader(body))
	if err != nil {
		return 0, err
	}
	resp, err := l.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	return resp.StatusCode, json.NewDecoder(resp.Body).Decode(v)
}

// TestAPIWaitTrialEndsAnUpstreamStall: a client of the local API that
// only waits (GET /v1/wait, then its own send, then POST /v1/success or
// /v1/report, as the Python client's send_important does) sends to two
// servers beyond the gateway. The gateway stops forwarding: the client's
// timeouts, reported, make a confirmed send-errors verdict, which closes
// the Gate; the client's next wait is held, and answered only as a trial
// ("trial": true, the state still down) while the verdict holds, since no
// Do call is held. Once the gateway forwards again, the next trial's send
// succeeds, its reported success answers "up", and the Monitor is up. The
// delay from the return to the trial answer and to the state up is logged
// as a figure, not asserted.
func TestAPIWaitTrialEndsAnUpstreamStall(t *testing.T) {
	t.Parallel()
	var srv *netnstest.NS
	l := startAPILabWith(t, netmon.Options{SendErrorHold: time.Minute}, func(p pair) {
		// Servers at 10.9.4.2 and .3 beyond the gateway (the peer b).
		srv = netnstest.New(t)
		netnstest.Veth(t, p.b, "vs", srv, "vsrv")
		p.b.IP("addr", "add", "10.9.4.1/24", "dev", "vs")
		srv.IP("addr", "add", "10.9.4.2/24", "dev", "vsrv")
		srv.IP("addr", "add", "10.9.4.3/24", "dev", "vsrv")
		srv.IP("route", "add", "default", "via", "10.9.4.1")
		p.b.Sysctl("net/ipv4/ip_forward", "1")
	})
	servers := []string{"10.9.4.2:7000", "10.9.4.3:7000"}
	for _, addr := range servers {
		var ln net.Listener
		if err := srv.Do(func() (err error) {
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		netnstest.Serve(t, ln, func(c net.Conn) { // a line in, "ack" out
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				_, _ = c.Write([]byte("ack\n"))
			}
		})
	}
	// send delivers one message from the robot's namespace: connect
	// (300 ms at most, as a robot's sender bounds it), write, read the ack.
	send := func(ctx context.Context, addr string) error {
		return l.p.a.Do(func() error {
			d := net.Dialer{Timeout: 300 * time.Millisecond}
			c, err := d.DialContext(ctx, "tcp", addr)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Second))
			if _, err := fmt.Fprintln(c, "m"); err != nil {
				return err
			}
			_, err = bufio.NewReader(c).ReadString('\n')
			return err
		})
	}

	ctx, cancel := context.WithCancel(context.Background())
	steps := make(chan waitClientStep, 1024)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			st := waitClientStep{kind: "wait"}
			st.code, st.err = l.call(ctx, "GET", "/v1/wait?timeout=20s", "", &st.wait)
			st.at = time.Now()
			steps <- st
			if st.err != nil || st.code != http.StatusOK {
				if st.err != nil {
					return
				}
				continue
			}
			addr := servers[i%2]
			st = waitClientStep{kind: "sent"}
			path, body := "/v1/success", `{"dst": "`+addr+`"}`
			if err := send(ctx, addr); err != nil {
				st.kind = "failed"
				path, body = "/v1/report", `{"errno": 110, "dst": "`+addr+`"}`
			}
			st.code, st.err = l.call(ctx, "POST", path, body, &st.report)
			st.at = time.Now()
			steps <- st
			if st.err != nil {
				return
			}
			if st.kind == "sent" {
				time.Sleep(50 * time.Millisecond) // the next message
			}
		}
	})
	// next returns the client's next step, failing after d without one.
	next := func(d time.Duration, what string) waitClientStep {
		t.Helper()
		select {
		case st := <-steps:
			if st.err != nil {
				t.Fatalf("%s: the client's %s failed: %v", what, st.kind, st.err)
			}
			if st.kind == "wait" {
				t.Logf("client wait %d %+v", st.code, st.wait)
			} else {
				t.Logf("client %s, reported: %d %v", st.kind, st.code, st.report)
			}
			return st
		case <-time.After(d):
			t.Fatalf("%s: no step of the client within %v; status %+v, gate %+v", what, d, l.m.Status(), l.m.Gate().Stats())
		}
		panic("unreachable")
	}

	for next(10*time.Second, "before the stall").kind != "sent" {
		// until a message went through
	}
	stalledAt := time.Now()
	l.p.b.Sysctl("net/ipv4/ip_forward", "0")
	// The stall closes the Gate; then the held wait is answered only as a
	// trial. Wait for a trial whose send failed: the state stays down.
	deadline := time.Now().Add(40 * time.Second)
	var down, trial time.Time
	for {
		st := next(time.Until(deadline), "during the stall")
		if st.kind == "wait" && st.code == http.StatusOK && st.wait.State == "down" {
			if !st.wait.Trial || st.wait.Reason != string(netmon.ReasonSendErrors) {
				t.Fatalf("wait answered %+v while down, want a trial during a send-errors verdict", st.wait)
			}
			if down.IsZero() {
				down = st.at // (the verdict came before)
			}
			trial = st.at
			continue
		}
		if st.kind == "failed" && !trial.IsZero() {
			if st.report["state"] != "down" {
				t.Fatalf("failed trial's report answered %v, want the state still down", st.report)
			}
			break // a failed trial: the upstream is still dead
		}
	}

	returnedAt := time.Now()
	l.p.b.Sysctl("net/ipv4/ip_forward", "1")
	var trialAt time.Time
	for {
		st := next(20*time.Second, "after the return")
		if st.kind == "wait" {
			if st.code != http.StatusOK || !st.wait.Online || !st.wait.Trial || st.wait.State != "down" {
				t.Fatalf("wait answered %d %+v before any success, want a trial while the state is down", st.code, st.wait)
			}
			trialAt = st.at
			continue
		}
		if st.kind == "failed" {
			continue // a trial begun before the return, or whose SYN the return missed
		}
		if trialAt.IsZero() {
			t.Fatal("a send succeeded without a trial answer before it")
		}
		if st.report["state"] != "up" {
			t.Fatalf("the trial's success answered %v, want the state up at once", st.report)
		}
		if s := l.m.Status(); s.State != netmon.Up {
			t.Fatalf("status %+v right after the trial's success, want up", s)
		}
		t.Logf("figure: first trial answer %v after the gateway stopped forwarding; the trial answer that succeeded %v after it forwarded again, the success reported (state up) %v after; %d trials",
			down.Sub(stalledAt).Round(time.Millisecond), trialAt.Sub(returnedAt).Round(time.Millisecond),
			st.at.Sub(returnedAt).Round(time.Millisecond), l.m.Gate().Stats().Trials)
		return
	}
}
