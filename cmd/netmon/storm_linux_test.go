package main

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// envStorm, when set ("ADDR:PORT,N"), makes TestHelperStorm fail N
// connects to ADDR:PORT.
const envStorm = "NETMON_TEST_STORM"

// stormComm is the storm helpers' process name.
const stormComm = "stormer"

// TestHelperStorm is not a test: run by TestIntegrationWatchResetStorm
// inside a namespace, it names its thread stormComm and connects to the
// address it is given as fast as it can, n times (each refused by the
// peer's RST, or timing out after 100 ms while the link is down), then
// prints how many were refused.
func TestHelperStorm(t *testing.T) {
	spec := os.Getenv(envStorm)
	if spec == "" {
		t.Skip("a helper process of TestIntegrationWatchResetStorm")
	}
	addr, count, _ := strings.Cut(spec, ",")
	n, _ := strconv.Atoi(count)
	runtime.LockOSThread()
	name := append([]byte(stormComm), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptrOf(name), 0, 0, 0); err != nil {
		fmt.Println("prctl:", err)
		return
	}
	var sa unix.SockaddrInet4
	host, port, _ := strings.Cut(addr, ":")
	for i, p := range strings.Split(host, ".") {
		v, _ := strconv.Atoi(p)
		sa.Addr[i] = byte(v)
	}
	sa.Port, _ = strconv.Atoi(port)
	refused := 0
	for range n {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			fmt.Println("socket:", err)
			return
		}
		// A blocking connect times out after SO_SNDTIMEO.
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_SNDTIMEO, &unix.Timeval{Usec: 100000})
		if err := unix.Connect(fd, &sa); err == unix.ECONNREFUSED {
			refused++
		}
		unix.Close(fd)
	}
	fmt.Printf("refused %d\n", refused)
}

// TestIntegrationWatchResetStorm: four real processes fail 10,000
// connects against a real peer (refused: the peer answers each SYN with a
// reset) within seconds while `netmon watch` traces them with eBPF, and
// the link flaps in the middle of it. The log holds a few dozen sockerr
// lines at most (the first of each process, errno and destination, then
// summaries), every state and flap line is there, and the metrics count
// every refused connect.
func TestIntegrationWatchResetStorm(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	const metricsAddr = "127.0.0.1:9810"
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=on", "--sockerr-comm", stormComm, "--wifi=off",
		"--metrics-addr", metricsAddr)
	// Every line is kept for counting; the waits read a copy.
	var mu sync.Mutex
	var all []map[string]any
	lines := make(chan map[string]any, 1<<16)
	go func() {
		defer close(lines)
		for m := range w.lines {
			mu.Lock()
			all = append(all, m)
			mu.Unlock()
			lines <- m
		}
	}()
	waitLine(t, lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	waitLine(t, lines, "tracer on", func(m map[string]any) bool {
		return m["event"] == "notice" && strings.HasPrefix(m["msg"].(string), "socket-error tracer on")
	})

	const procs, each = 4, 2500
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	type result struct {
		refused int
		err     error
	}
	results := make(chan result, procs)
	start := time.Now()
	for range procs {
		go func() {
			h := p.a.Command(ctx, os.Args[0], "-test.run=^TestHelperStorm$")
			h.Env = append(os.Environ(), envStorm+"=10.9.0.2:1,"+strconv.Itoa(each))
			out, err := h.CombinedOutput()
			var n int
			if _, serr := fmt.Sscanf(string(regexp.MustCompile(`refused \d+`).Find(out)), "refused %d", &n); err == nil && serr != nil {
				err = fmt.Errorf("%v: %s", serr, out)
			}
			results <- result{n, err}
		}()
	}
	// The link flaps in the middle of the storm.
	waitLine(t, lines, "the storm's first sockerr", func(m map[string]any) bool { return m["event"] == "sockerr" })
	p.b.IP("link", "set", "vb", "down")
	waitLine(t, lines, "state down", func(m map[string]any) bool { return m["event"] == "state" && m["state"] == "down" })
	p.b.IP("link", "set", "vb", "up")
	waitLine(t, lines, "flap", func(m map[string]any) bool { return m["event"] == "flap" })
	waitLine(t, lines, "state up", func(m map[string]any) bool { return m["event"] == "state" && m["state"] == "up" })
	refused := 0
	for range procs {
		r := <-results
		if r.err != nil {
			t.Fatalf("storm helper: %v", r.err)
		}
		refused += r.refused
	}
	took := time.Since(start)
	// The metrics catch up with the ring buffer: every refused connect,
	// none lost.
	want := fmt.Sprintf(`netmon_socket_errors_total{cause="peer",comm="%s"} %d`, stormComm, refused)
	body := waitMetric(t, p, metricsAddr, want)
	if !strings.Contains(body, "netmon_socket_errors_dropped_total 0") {
		t.Errorf("the ring buffer dropped failures:\n%s", body)
	}
	if err := w.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	waitLine(t, lines, "summary", func(m map[string]any) bool { return m["event"] == "summary" })
	for range lines {
	}

	mu.Lock()
	defer mu.Unlock()
	var sockLines, states, flaps int
	var summarised uint64
	firsts := 0
	for _, m := range all {
		switch m["event"] {
		case "sockerr":
			sockLines++
			if m["source"] == "summary" {
				summarised += uint64(m["count"].(float64))
			} else {
				firsts++
			}
		case "state":
			states++
		case "flap":
			flaps++
		}
	}
	t.Logf("%d refused connects of %d in %v; %d lines in all, %d sockerr lines (%d at once, the rest summaries of %d repeats); %d state lines, %d flap lines",
		refused, procs*each, took.Round(time.Millisecond), len(all), sockLines, firsts, summarised, states, flaps)
	if refused < procs*each/2 {
		t.Errorf("only %d of %d connects were refused: not a storm", refused, procs*each)
	}
	if sockLines > 36 {
		t.Errorf("%d sockerr lines for a storm of %d failures, want a few dozen at most", sockLines, refused)
	}
	if uint64(firsts)+summarised != uint64(refused) {
		t.Errorf("the lines account for %d failures (%d logged, %d summarised), the helpers saw %d refused", uint64(firsts)+summarised, firsts, summarised, refused)
	}
	if states < 2 || flaps != 1 {
		t.Errorf("%d state lines and %d flap lines, want the down and up states and one flap", states, flaps)
	}
}
