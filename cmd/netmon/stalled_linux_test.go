package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"
)

// waitMetric scrapes addr inside p's namespace until the body contains
// want, failing the test if it does not within waitTimeout.
func waitMetric(t *testing.T, p pair, addr, want string) string {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	for {
		body := scrape(t, p.a, addr)
		if strings.Contains(body, want) {
			return body
		}
		if time.Now().After(deadline) {
			t.Fatalf("metrics lack %q after %v", want, waitTimeout)
		}
		time.Sleep(50 * time.Millisecond) // between scrapes; the deadline decides
	}
}

// TestIntegrationWatchStalledStdout: `netmon watch` whose stdout is a pipe
// nobody reads. A storm of address changes fills the pipe; the peer going
// down and up still shows in /metrics at once, and the lines lost are
// counted there. When stdout is read again after SIGINT, a line says how
// many were lost, and the summary comes last.
func TestIntegrationWatchStalledStdout(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const metricsAddr = "127.0.0.1:9811" // the namespace's own loopback
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd, stdout, stderrDone := startNetmon(t, ctx, p.a, "watch", "--log-format", "json", "--sockerr=off", "--wifi=off", "--metrics-addr", metricsAddr)
	exited := false
	t.Cleanup(func() {
		if !exited {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		<-stderrDone
	})

	// The first line, then nobody reads.
	out := bufio.NewReader(stdout)
	first := make(chan string, 1)
	go func() {
		l, _ := out.ReadString('\n')
		first <- l
	}()
	select {
	case l := <-first:
		if !strings.Contains(l, `"event":"baseline"`) {
			t.Fatalf("first line %q, want the baseline", l)
		}
	case <-time.After(waitTimeout):
		t.Fatal("no baseline line")
	}
	waitMetric(t, p, metricsAddr, `netmon_state{state="up"} 1`)

	// 20,000 lines of some 200 bytes: far more than the pipe's 64 KiB.
	p.a.AddrStorm("va", 10000)
	p.b.IP("link", "set", "vb", "down")
	body := waitMetric(t, p, metricsAddr, `netmon_state{state="down"} 1`)
	if strings.Contains(body, `netmon_events_dropped_total{queue="log"} 0`) {
		t.Errorf("no log lines dropped: stdout was not stalled")
	}
	p.b.IP("link", "set", "vb", "up")
	waitMetric(t, p, metricsAddr, `netmon_state{state="up"} 1`)
	waitMetric(t, p, metricsAddr, `netmon_flaps_total{cause="carrier-lost"} 1`)

	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	var dropped float64
	var last map[string]any
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("stdout line is not a JSON object: %q: %v", sc.Text(), err)
		}
		if m["event"] == "dropped" {
			dropped += m["count"].(float64)
		}
		last = m
	}
	exited = true
	if err := cmd.Wait(); err != nil {
		t.Errorf("watch after SIGINT: %v, want exit 0", err)
	}
	if dropped == 0 {
		t.Error("no dropped line with a count")
	}
	if last["event"] != "summary" || last["outages"] != 1.0 {
		t.Errorf("last line %v, want the summary with 1 outage", last)
	}
	t.Logf("lines lost and counted: %v; summary %v", dropped, last)
}
