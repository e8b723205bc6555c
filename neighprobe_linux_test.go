package netmon

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/neighprobe"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// startLabMonitor runs a Monitor on the lab's robot namespace until the
// test ends, and returns its events from the baseline on. prep, if any,
// changes the Monitor before it runs.
func startLabMonitor(t testing.TB, l *netnstest.GatewayLab, prep ...func(*Monitor)) (*Monitor, <-chan Event) {
	t.Helper()
	m, err := New(Options{NetNS: l.Robot.Handle, Wifi: "off", DHCP: "off", SockErrors: "off"})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range prep {
		p(m)
	}
	evs := m.Events() // before Run: its notices go to the subscriber too
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range evs {
		}
		<-done
	})
	return m, evs
}

// field returns the string value of the event's field key.
func field(e Event, key string) string {
	for _, f := range e.Fields {
		if f.Key == key {
			return f.String
		}
	}
	return ""
}

// TestIntegrationMonitorProbesGatewayAtReturn: a sender kept writing
// during an outage, so the gateway's entry is INCOMPLETE when the carrier
// returns (the kernel announces no such entry: the Monitor cannot see it). The Monitor probes the gateway at the return (a neigh event
// says so), the entry becomes reachable and the datagram queued on it
// arrives. retrans_time is 30 s: without the probe the entry would stay
// INCOMPLETE that long (internal/neighprobe's "kernel alone" test).
func TestIntegrationMonitorProbesGatewayAtReturn(t *testing.T) {
	netnstest.RequirePrivileged(t)
	for _, fam := range []string{"IPv4", "IPv6"} {
		t.Run(fam, func(t *testing.T) {
			t.Parallel()
			l := netnstest.NewGatewayLab(t)
			l.SetRetransTime(30 * time.Second)
			gw := l.Gateway4
			if fam == "IPv6" {
				gw = l.Gateway6
			}
			send, recv := l.UDP(fam == "IPv6")
			m, evs := startLabMonitor(t, l)
			if e := next(t, evs, func(e Event) bool { return e.Kind == EventBaseline }); e.Status.State != Up {
				t.Fatalf("baseline %v, want up", e.Status)
			}
			l.OutageWithTraffic(send, gw)
			l.SetGatewayLink(true)
			probed := next(t, evs, func(e Event) bool { return e.Kind == EventNeigh && field(e, "gateway") == gw.String() })
			if probed.Msg != "gateway probed" || field(probed, "why") != "return" {
				t.Fatalf("first neigh event for %v after the return: %q %v, want a probe at the return", gw, probed.Msg, probed.Fields)
			}
			next(t, evs, func(e Event) bool {
				return e.Kind == EventNeigh && field(e, "gateway") == gw.String() && field(e, "nud") == "reachable"
			})
			_ = recv.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := recv.Read(make([]byte, 100)); err != nil {
				t.Fatalf("the datagram queued during the outage did not arrive: %v", err)
			}
			if n := m.Stats().NeighProbes; n < 1 {
				t.Fatalf("Stats.NeighProbes %d, want at least 1", n)
			}
		})
	}
}

// TestIntegrationMonitorWithoutNeighProbe: without the raw sockets (no
// CAP_NET_RAW) the Monitor says so in one notice and carries on: the
// baseline says up, and a return probes nothing.
func TestIntegrationMonitorWithoutNeighProbe(t *testing.T) {
	netnstest.RequirePrivileged(t)
	t.Parallel()
	l := netnstest.NewGatewayLab(t)
	m, evs := startLabMonitor(t, l, func(m *Monitor) {
		m.openProber = func(netns.NsHandle) (*neighprobe.Prober, error) {
			return nil, fmt.Errorf("%w: CAP_NET_RAW needed: %w", neighprobe.ErrUnavailable, unix.EPERM)
		}
	})
	if e := next(t, evs, func(e Event) bool { return e.Kind == EventBaseline }); e.Status.State != Up {
		t.Fatalf("baseline %v, want up", e.Status)
	}
	notices := 0
	count := func(e Event) {
		if e.Kind == EventNotice && field(e, "watcher") == "neighprobe" {
			notices++
			t.Log(e.Msg)
		}
	}
	// The loss is awaited before the return: a carrier that comes back
	// before the kernel reported it gone makes no "carrier up" event.
	l.SetGatewayLink(false)
	next(t, evs, func(e Event) bool { count(e); return e.Kind == EventLink && e.Msg == "carrier lost" })
	l.SetGatewayLink(true)
	next(t, evs, func(e Event) bool { count(e); return e.Kind == EventLink && e.Msg == "carrier up" })
	if notices != 1 {
		t.Fatalf("%d neighprobe notices, want 1", notices)
	}
	if n := m.Stats().NeighProbes; n != 0 {
		t.Fatalf("Stats.NeighProbes %d without a prober", n)
	}
}

// next returns the first event that matches, failing the test after 10 s
// or when the events end.
func next(t *testing.T, evs <-chan Event, match func(Event) bool) Event {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatal("events ended")
			}
			if match(e) {
				return e
			}
		case <-deadline:
			t.Fatal("no matching event within 10 s")
		}
	}
}

// BenchmarkFirstPacketAfterReturn measures how long after the carrier
// returns the first datagram reaches the far side, when the sender kept
// writing (one datagram every 2 ms) through outages of 0.3-1.5 s, at the
// kernel's default retrans_time (1 s): with netmon running (it probes the
// gateway at the return) and with the kernel alone. 20 returns per b.N;
// run it with -benchtime=1x. It reports p50, p95 and max in ms.
func BenchmarkFirstPacketAfterReturn(b *testing.B) {
	netnstest.RequirePrivileged(b)
	for _, fam := range []string{"IPv4", "IPv6"} {
		for _, mode := range []string{"netmon", "kernel"} {
			b.Run(fam+"/"+mode, func(b *testing.B) {
				l := netnstest.NewGatewayLab(b)
				send, recv := l.UDP(fam == "IPv6")
				if mode == "netmon" {
					_, evs := startLabMonitor(b, l)
					for e := range evs {
						if e.Kind == EventBaseline {
							break
						}
					}
				}
				arrivals := make(chan time.Time, 4096)
				go func() {
					buf := make([]byte, 64)
					for {
						if _, err := recv.Read(buf); err != nil {
							close(arrivals)
							return
						}
						arrivals <- time.Now()
					}
				}()
				stop := make(chan struct{})
				sent := make(chan struct{})
				go func() {
					defer close(sent)
					tick := time.NewTicker(2 * time.Millisecond)
					defer tick.Stop()
					for {
						select {
						case <-stop:
							return
						case <-tick.C:
							_, _ = send.Write([]byte("x"))
						}
					}
				}()
				defer func() {
					close(stop)
					<-sent
					recv.Close()
					for range arrivals {
					}
				}()
				gh := l.Gateway.NetlinkHandle()
				g0, err := gh.LinkByName(l.GatewayIf)
				if err != nil {
					b.Fatal(err)
				}
				rng := rand.New(rand.NewPCG(26, 3))
				var delays []time.Duration
				for b.Loop() {
					for range 20 {
						if err := gh.LinkSetDown(g0); err != nil {
							b.Fatal(err)
						}
						time.Sleep(300*time.Millisecond + time.Duration(rng.Int64N(int64(1200*time.Millisecond))))
						drain(arrivals)
						if err := gh.LinkSetUp(g0); err != nil {
							b.Fatal(err)
						}
						back := time.Now()
						select {
						case at := <-arrivals:
							delays = append(delays, at.Sub(back))
						case <-time.After(5 * time.Second):
							b.Fatal("no datagram within 5 s of the return")
						}
						time.Sleep(500*time.Millisecond + time.Duration(rng.Int64N(int64(1500*time.Millisecond))))
					}
				}
				slices.Sort(delays)
				q := func(p float64) float64 {
					return float64(delays[int(p*float64(len(delays)-1))]) / float64(time.Millisecond)
				}
				b.ReportMetric(q(0.5), "p50-ms")
				b.ReportMetric(q(0.95), "p95-ms")
				b.ReportMetric(q(1), "max-ms")
				b.ReportMetric(0, "ns/op")
			})
		}
	}
}

// drain empties c of what is already in it.
func drain(c <-chan time.Time) {
	for {
		select {
		case <-c:
		default:
			return
		}
	}
}
