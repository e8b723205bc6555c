package netmon

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// BenchmarkDetectionLatency measures, in a namespace with the real kernel
// and with stabilisation off (--stabilize=0), the time from the access
// point's side of the veth going down (netlink
// LinkSetDown in the peer namespace, so the robot's side loses carrier) to
// the Gate closing, beside the time `ip monitor link` takes to print the
// same change. The pair gets distinct ifindexes so the kernel reports the
// carrier change at once instead of batching it (linkwatch's rate limit,
// net/core/link_watch.c, linkwatch_urgent_event). It reports the medians and the Monitor's p99 as custom metrics;
// ns/op is the whole down/up cycle and means little. The overlay case
// runs the same through wg-quick's full tunnel (see netnstest.NS.WGQuick):
// the loss is the underlay's, found through the mark's lookup. It also
// reports the route lookups the Monitor made per down/up cycle.
func BenchmarkDetectionLatency(b *testing.B) {
	b.Run("plain", func(b *testing.B) { detectionLatency(b, false) })
	b.Run("overlay", func(b *testing.B) { detectionLatency(b, true) })
}

func detectionLatency(b *testing.B, overlay bool) {
	a, peer := netnstest.New(b), netnstest.New(b)
	a.IP("link", "add", "va", "index", "10", "type", "veth", "peer", "name", "vb", "index", "20", "netns", peer.Name)
	a.IP("link", "set", "va", "up")
	peer.IP("link", "set", "vb", "up")
	a.IP("addr", "add", "10.211.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.211.0.2", "dev", "va")
	if overlay {
		a.WGQuick("wg0")
	}
	h := peer.NetlinkHandle()
	link, err := h.LinkByName("vb")
	if err != nil {
		b.Fatal(err)
	}
	m, _, ctx := runBenchMonitor(b, Options{NetNS: a.Handle, Wifi: "off", DHCP: "off", SockErrors: "off", Stabilize: -1}, false)

	// ip monitor, read line by line with the time each line arrived.
	mon := a.Command(ctx, "ip", "monitor", "link")
	out, err := mon.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := mon.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = mon.Process.Kill(); _ = mon.Wait() }()
	lines := make(chan time.Time, 64)   // carrier lost
	upLines := make(chan time.Time, 64) // carrier back
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			switch l := sc.Text(); {
			case !strings.Contains(l, "va"):
			case strings.Contains(l, "NO-CARRIER"):
				lines <- time.Now()
			case strings.Contains(l, "LOWER_UP"):
				select {
				case upLines <- time.Now():
				default:
				}
			}
		}
		close(lines)
	}()

	waitGate := func(open bool) {
		deadline := time.After(5 * time.Second)
		for s := m.Gate().State(); s.Open != open; s = m.Gate().State() {
			select {
			case <-s.Changed():
			case <-deadline:
				b.Fatalf("gate did not become open=%v", open)
			}
		}
	}
	waitGate(true)
	// ip monitor needs a moment to subscribe: toggle until it prints a
	// change, which proves it is listening (one deadline for the lot).
	ready := time.After(10 * time.Second)
	for listening := false; !listening; {
		_ = h.LinkSetDown(link)
		select {
		case <-lines:
			listening = true
		case <-time.After(100 * time.Millisecond):
		case <-ready:
			b.Fatal("ip monitor never printed a carrier change")
		}
		_ = h.LinkSetUp(link)
		waitGate(true)
	}

	var ours, ipmon, ourUps, ipmonUps []time.Duration
	lookups := m.Stats().RouteLookups
	b.ResetTimer()
	for b.Loop() {
		// Each step drains stale lines first (ip monitor prints
		// intermediate changes).
		// step times act until the Gate is open=open beside the line
		// ip monitor prints on lines.
		step := func(act func(netlink.Link) error, open bool, lines <-chan time.Time, ours, ipmon *[]time.Duration) {
			for len(lines) > 0 {
				<-lines
			}
			start := time.Now()
			if err := act(link); err != nil {
				b.Fatal(err)
			}
			waitGate(open)
			*ours = append(*ours, time.Since(start))
			select {
			case t := <-lines:
				*ipmon = append(*ipmon, t.Sub(start))
			case <-time.After(5 * time.Second):
				b.Fatal("ip monitor printed nothing")
			}
		}
		step(h.LinkSetDown, false, lines, &ours, &ipmon)
		step(h.LinkSetUp, true, upLines, &ourUps, &ipmonUps)
	}
	b.StopTimer()
	for _, d := range [][]time.Duration{ours, ipmon, ourUps, ipmonUps} {
		slices.Sort(d)
	}
	pct := func(d []time.Duration, p float64) float64 {
		return float64(d[int(float64(len(d)-1)*p)].Microseconds())
	}
	b.ReportMetric(pct(ours, 0.5), "gate-p50-µs")
	b.ReportMetric(pct(ours, 0.99), "gate-p99-µs")
	b.ReportMetric(pct(ipmon, 0.5), "ipmonitor-p50-µs")
	b.ReportMetric(pct(ourUps, 0.5), "gate-return-p50-µs")
	b.ReportMetric(pct(ipmonUps, 0.5), "ipmonitor-return-p50-µs")
	b.ReportMetric(float64(m.Stats().RouteLookups-lookups)/float64(b.N), "lookups/cycle")
	if overlay && m.Status().Iface != "va" {
		b.Fatalf("status %+v, want the underlay va", m.Status())
	}
}

// BenchmarkSockErrLatency measures, with the real kernel and a Monitor
// running eBPF (SockSyscalls on), the time from a failing sendto's return
// in a process (ENETUNREACH: the watched namespace has no route) to the Monitor's sockerr event reaching a subscriber:
// eBPF, the ring buffer, sockwatch's reader, the Monitor's fold and its
// events channel. It reports the median and p99 as custom metrics.
func BenchmarkSockErrLatency(b *testing.B) {
	a := netnstest.New(b) // loopback only: no route to 192.0.2.1
	m, err := New(Options{NetNS: a.Handle, Wifi: "off", DHCP: "off", SockErrors: "on", SockSyscalls: true,
		SendErrorThreshold: -1})
	if err != nil {
		b.Fatal(err)
	}
	events := m.Events()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	arrived := make(chan time.Time, 1024)
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for ev := range events {
			if ev.Kind == EventSockErr {
				arrived <- time.Now()
			}
		}
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil && ctx.Err() == nil {
			b.Error(err)
		}
		<-drained
	}()

	var lat []time.Duration
	err = a.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		dst := &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 9}
		send := func() (time.Time, error) {
			if err := unix.Sendto(fd, []byte("x"), 0, dst); !errors.Is(err, unix.ENETUNREACH) {
				return time.Time{}, fmt.Errorf("sendto = %v, want ENETUNREACH", err)
			}
			return time.Now(), nil
		}
		wait := func() (time.Time, error) {
			select {
			case t := <-arrived:
				return t, nil
			case <-time.After(10 * time.Second):
				return time.Time{}, errors.New("no sockerr event within 10s (is the tracer attached?)")
			}
		}
		// The tracer attaches while Run starts: send until one failure
		// comes through, under one deadline.
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := send(); err != nil {
				return err
			}
			select {
			case <-arrived:
			case <-time.After(50 * time.Millisecond):
				if time.Now().After(deadline) {
					return errors.New("the Monitor reported no sockerr event within 20s")
				}
				continue
			}
			break
		}
		for len(arrived) > 0 {
			<-arrived
		}
		b.ResetTimer()
		for b.Loop() {
			t0, err := send()
			if err != nil {
				return err
			}
			t1, err := wait()
			if err != nil {
				return err
			}
			lat = append(lat, t1.Sub(t0))
		}
		b.StopTimer()
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	slices.Sort(lat)
	pct := func(p float64) float64 { return float64(lat[int(float64(len(lat)-1)*p)].Microseconds()) }
	b.ReportMetric(pct(0.5), "p50-µs")
	b.ReportMetric(pct(0.99), "p99-µs")
}

// BenchmarkStormLookups measures how many route lookups a storm of kernel
// changes costs: each iteration adds 500 addresses with one `ip -batch`
// and removes them with another. The Monitor looks its targets' paths up
// once per batch of changes it finds queued, not once per message; the
// figure is lookups per kernel message (1.0 would be one per message for
// one target; without targets there are two, IPv4 and IPv6).
func BenchmarkStormLookups(b *testing.B) {
	a, peer := netnstest.New(b), netnstest.New(b)
	netnstest.Veth(b, a, "va", peer, "vb")
	a.IP("addr", "add", "10.212.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.212.0.2", "dev", "va")
	m, evs, ctx := runBenchMonitor(b, Options{NetNS: a.Handle, Wifi: "off", DHCP: "off", SockErrors: "off", Stabilize: -1}, true)
	addrs := make(chan int, 1)
	go func() {
		n := 0
		for ev := range evs {
			if ev.Kind == EventAddr {
				n++
				if n%500 == 0 {
					addrs <- n
				}
			}
		}
	}()
	batch := func(op string) string {
		var sb strings.Builder
		for i := range 500 {
			fmt.Fprintf(&sb, "addr %s 10.213.%d.%d/32 dev va\n", op, i/250, 1+i%250)
		}
		return sb.String()
	}
	add, del := batch("add"), batch("del")
	run := func(script string) {
		cmd := a.Command(ctx, "ip", "-batch", "-")
		cmd.Stdin = strings.NewReader(script)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("ip -batch: %v: %s", err, out)
		}
		select {
		case <-addrs:
		case <-time.After(20 * time.Second):
			b.Fatal("the Monitor did not see the 500 address changes")
		}
	}
	start := m.Stats().RouteLookups
	for b.Loop() {
		run(add)
		run(del)
	}
	b.ReportMetric(float64(m.Stats().RouteLookups-start)/float64(1000*b.N), "lookups/msg")
}

// runBenchMonitor runs a Monitor for o until the benchmark ends, with its
// events when subscribe is set (nil otherwise), and returns the context it
// runs under.
func runBenchMonitor(b *testing.B, o Options, subscribe bool) (*Monitor, <-chan Event, context.Context) {
	b.Helper()
	m, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	var events <-chan Event
	if subscribe {
		events = m.Events()
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	b.Cleanup(func() { cancel(); <-done })
	return m, events, ctx
}
