package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestIntegrationWatchNoRouteSummary: sends that found no route while up
// are counted in the metric, and the summary line watch stops with carries
// that count, also the sends still held for the next no-route line (whose
// event the Monitor may not deliver once it stops): no count is lost
// silently at shutdown.
func TestIntegrationWatchNoRouteSummary(t *testing.T) {
	t.Parallel()
	bash := netnstest.RequireCommand(t, "bash", "bash")
	p := newPair(t)
	p.a.IP("route", "del", "default")
	const metricsAddr = "127.0.0.1:9810"
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--wifi=off", "--target", "10.9.0.2",
		"--metrics-addr", metricsAddr)
	waitLine(t, w.lines, "baseline up", func(m map[string]any) bool { return m["event"] == "baseline" && m["state"] == "up" })

	const n = 10
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	connectLoop := func() {
		t.Helper()
		out, err := p.a.Command(ctx, bash, "-c",
			fmt.Sprintf(`for i in $(seq %d); do (exec 3<>/dev/tcp/192.0.2.1/80) 2>&1 | grep -q 'unreachable' || exit 1; done`, n)).CombinedOutput()
		if err != nil {
			t.Fatalf("the connecting loop: %v: %s (want every connect to fail with ENETUNREACH)", err, out)
		}
	}
	metric := regexp.MustCompile(`(?m)^netmon_no_route_sends_total (\d+)$`)
	waitMetric := func(want int) {
		t.Helper()
		for deadline := time.Now().Add(waitTimeout); ; time.Sleep(50 * time.Millisecond) { // between scrapes; the deadline decides
			body := scrape(t, p.a, metricsAddr)
			var got int
			if m := metric.FindStringSubmatch(body); m != nil {
				got, _ = strconv.Atoi(m[1])
			}
			if got == want {
				return
			}
			if got > want || time.Now().After(deadline) {
				t.Fatalf("netmon_no_route_sends_total %d, want %d", got, want)
			}
		}
	}
	var lines []map[string]any
	connectLoop()
	lines = append(lines, waitLine(t, w.lines, "no-route", func(m map[string]any) bool { return m["source"] == "kernel" }))
	waitMetric(n)
	// Within the line's 10 s window: these are held for its end.
	connectLoop()
	waitMetric(2 * n)
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	sum := waitLine(t, w.lines, "summary", func(m map[string]any) bool {
		if m["source"] == "kernel" {
			lines = append(lines, m)
		}
		return m["event"] == "summary"
	})
	if sum["no_route_sends"] != float64(2*n) {
		t.Errorf("summary line %v: no_route_sends %v, want %d", sum, sum["no_route_sends"], 2*n)
	}
	t.Logf("no-route lines: %v", lines)
}
