package linkwatch

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// BenchmarkWatcherCarrierLoss measures the time from LinkSetDown of a veth
// peer (in another namespace) to linkwatch's carrier-lost LinkEvent, and
// reports it beside the time `ip -ts monitor link` stamps on the same
// kernel message. The kernel's own delay is in both; the difference is
// what linkwatch adds. Each iteration also brings the peer back up and
// waits for carrier, so every iteration measures one real loss.
//
// The veths get distinct ifindexes (10 and 20): with ifindex == iflink the
// kernel batches carrier-loss events up to a second (net/core/link_watch.c),
// which would measure the kernel's rate limit, not us.
func BenchmarkWatcherCarrierLoss(b *testing.B) {
	a, peer := netnstest.New(b), netnstest.New(b)
	a.IP("link", "add", "va", "index", "10", "type", "veth", "peer", "name", "vb", "netns", peer.Name, "index", "20")
	a.IP("link", "set", "va", "up")
	peer.IP("link", "set", "vb", "up")
	hp := peer.NetlinkHandle()
	vb, err := hp.LinkByName("vb")
	if err != nil {
		b.Fatal(err)
	}

	// ip monitor: its timestamps for va losing carrier, in order.
	mon := a.Command(context.Background(), "ip", "-ts", "monitor", "link")
	out, err := mon.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		b.Fatal(err)
	}
	monLoss := make(chan time.Time, 1024)
	monReady := make(chan struct{})
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		readMonitor(out, monReady, monLoss)
	}()
	b.Cleanup(func() {
		_ = mon.Process.Kill()
		_ = mon.Wait()
		<-monDone
	})

	w, err := New(Config{NetNS: a.Handle, Include: []string{"va"}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	defer func() {
		cancel()
		for range w.Events() {
		}
		if err := <-runErr; err != nil {
			b.Error(err)
		}
	}()
	waitEvent := func(match func(Event) bool) time.Time {
		deadline := time.After(waitTime)
		for {
			select {
			case ev := <-w.Events():
				if match(ev) {
					return time.Now()
				}
			case <-deadline:
				b.Fatal("no event within deadline")
			}
		}
	}
	waitEvent(isBaseline)
	carrier := func(up bool) func(Event) bool {
		return func(ev Event) bool {
			e, ok := ev.(LinkEvent)
			return ok && e.Link.Name == "va" && e.Link.Carrier == up && e.Prev.Carrier != up
		}
	}
	// ip monitor must be listening before the first change, and nothing
	// tells when it is: change the MTU until it reports one, within one
	// deadline.
	deadline := time.Now().Add(waitTime)
	for mtu := 1499; ; mtu-- {
		a.IP("link", "set", "va", "mtu", fmt.Sprint(mtu))
		select {
		case <-monReady:
		case <-time.After(100 * time.Millisecond):
			if time.Now().After(deadline) {
				b.Fatal("ip monitor reported no MTU change")
			}
			continue
		}
		break
	}
	// Flush the watcher's events for those changes.
	waitEvent(func(ev Event) bool { e, ok := ev.(LinkEvent); return ok && e.Link.MTU != 1500 })

	var ours, theirs []time.Duration
	for b.Loop() {
		start := time.Now()
		if err := hp.LinkSetDown(vb); err != nil {
			b.Fatal(err)
		}
		got := waitEvent(carrier(false))
		ours = append(ours, got.Sub(start))
		select {
		case ts := <-monLoss:
			theirs = append(theirs, ts.Sub(start))
		case <-time.After(waitTime):
			b.Fatal("ip monitor did not report the carrier loss")
		}
		if err := hp.LinkSetUp(vb); err != nil {
			b.Fatal(err)
		}
		waitEvent(carrier(true))
	}
	b.ReportMetric(float64(median(ours).Microseconds()), "µs-linkwatch-p50")
	b.ReportMetric(float64(median(theirs).Microseconds()), "µs-ipmonitor-p50")
	b.ReportMetric(float64(pct(ours, 90).Microseconds()), "µs-linkwatch-p90")
	b.ReportMetric(float64(pct(theirs, 90).Microseconds()), "µs-ipmonitor-p90")
}

// readMonitor parses `ip -ts monitor link` output: it closes ready at the
// first line reporting an MTU of va below 1500, and sends the time of every line reporting
// va without carrier.
func readMonitor(r io.Reader, ready chan<- struct{}, loss chan<- time.Time) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if ready != nil && strings.Contains(line, " va@") && strings.Contains(line, " mtu 14") {
			close(ready)
			ready = nil
		}
		if !strings.HasPrefix(line, "[") || !strings.Contains(line, " va@") || !strings.Contains(line, "NO-CARRIER") {
			continue
		}
		end := strings.IndexByte(line, ']')
		if end < 0 {
			continue
		}
		ts, err := time.ParseInLocation("2006-01-02T15:04:05.000000", line[1:end], time.Local)
		if err != nil {
			continue
		}
		select {
		case loss <- ts:
		default:
		}
	}
}

func median(d []time.Duration) time.Duration { return pct(d, 50) }

func pct(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[(len(s)-1)*p/100]
}
