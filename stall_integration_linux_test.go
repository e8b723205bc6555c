package netmon

import (
	"bufio"
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// stallLab is the rig (a: the robot, b: its gateway) with a server
// namespace beyond the gateway: b forwards between the robot's link
// (10.210.0.0/24) and the servers' (10.214.0.0/24, servers at .2 and .3),
// and drops everything to 10.215.0.0/24 silently (a blackhole route): two
// servers there are dead, their SYNs vanish.
type stallLab struct {
	*rig
	s *netnstest.NS
}

const (
	labLive1, labLive2 = "10.214.0.2:7000", "10.214.0.3:7000"
	labDead1, labDead2 = "10.215.0.1:7000", "10.215.0.2:7000"
)

func newStallLab(t *testing.T, o Options) *stallLab {
	t.Helper()
	l := &stallLab{}
	o.Gate.Backoff = gate.Backoff{Initial: 100 * time.Millisecond, Max: 200 * time.Millisecond}
	l.rig = newRigSetup(t, o, nil, func(_, b *netnstest.NS) {
		l.s = netnstest.New(t)
		netnstest.Veth(t, b, "vs", l.s, "vsrv")
		b.IP("addr", "add", "10.214.0.1/24", "dev", "vs")
		l.s.IP("addr", "add", "10.214.0.2/24", "dev", "vsrv")
		l.s.IP("addr", "add", "10.214.0.3/24", "dev", "vsrv")
		l.s.IP("route", "add", "default", "via", "10.214.0.1")
		b.IP("route", "add", "blackhole", "10.215.0.0/24")
		b.Sysctl("net/ipv4/ip_forward", "1")
	})
	for _, addr := range []string{labLive1, labLive2} {
		var ln net.Listener
		if err := l.s.Do(func() (err error) {
			ln, err = net.Listen("tcp", addr)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		// An acknowledging server: a line in, "ack" out.
		netnstest.Serve(t, ln, func(c net.Conn) {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(2 * time.Second))
			if _, err := bufio.NewReader(c).ReadString('\n'); err == nil {
				_, _ = c.Write([]byte("ack\n"))
			}
		})
	}
	return l
}

// startStallLab is newStallLab once the state is up, with the context the
// senders run under (cancel ends them) and their WaitGroup: the test's end
// cancels it and waits for them.
func startStallLab(t *testing.T, o Options) (*stallLab, context.Context, context.CancelFunc, *sync.WaitGroup) {
	l := newStallLab(t, o)
	l.waitState(t, Up, ReasonNone)
	ctx, cancel := context.WithCancel(context.Background())
	wg := new(sync.WaitGroup)
	t.Cleanup(func() { cancel(); wg.Wait() })
	return l, ctx, cancel, wg
}

// send delivers one message to addr from the robot's namespace and waits
// for its acknowledgement: connect (300 ms at most), write, read the ack.
func (l *stallLab) send(ctx context.Context, addr string) error {
	var sendErr error
	_ = l.a.Do(func() error {
		d := net.Dialer{Timeout: 300 * time.Millisecond}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			sendErr = err
			return nil
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err = c.Write([]byte("m\n")); err == nil {
			_, err = bufio.NewReader(c).ReadString('\n')
		}
		sendErr = err
		return nil
	})
	return sendErr
}

// dst is addr's address, for gate.Call.Dst.
func dst(addr string) netip.Addr { return netip.MustParseAddrPort(addr).Addr() }

// sender is a loop of Do calls to one server through the Monitor's Gate,
// one message every 50 ms, counting outcomes and the time held.
type sender struct {
	ok, failed atomic.Int64
	held       atomic.Int64 // nanoseconds, summed over the calls' Result.Held
}

func (l *stallLab) runSender(ctx context.Context, wg *sync.WaitGroup, s *sender, addr string, p gate.Policy) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		g := l.m.Gate().With(p)
		for ctx.Err() == nil {
			res, err := g.DoCall(ctx, gate.Call{Dst: dst(addr)}, func(actx context.Context) error {
				err := l.send(actx, addr)
				if err != nil {
					s.failed.Add(1)
				}
				return err
			})
			s.held.Add(int64(res.Held))
			if err == nil {
				s.ok.Add(1)
				t := time.NewTimer(50 * time.Millisecond)
				select {
				case <-t.C:
				case <-ctx.Done():
					t.Stop()
				}
			}
		}
	}()
}

// TestIntegrationStallTwoDeadServersHoldNobody: a robot talks to three
// servers beyond its gateway; two are dead (their SYNs vanish at the
// gateway), one answers every message. The dead servers' senders time out
// again and again (each timeout reported through the Gate), while the live
// sender's successes are reported with their destination: the dead
// servers' failures are their own. The state never leaves up and the Gate
// never closes; the live sender's time held is reported, not asserted.
func TestIntegrationStallTwoDeadServersHoldNobody(t *testing.T) {
	t.Parallel()
	l, ctx, cancel, wg := startStallLab(t, Options{SendErrorThreshold: 5})
	var live, dead sender
	l.runSender(ctx, wg, &live, labLive1, gate.Policy{})
	// Each dead message is one attempt: a sender that gives up and moves
	// on, so the failures come as fast as the 300 ms connect timeout.
	l.runSender(ctx, wg, &dead, labDead1, gate.Policy{MaxAttempts: 1})
	l.runSender(ctx, wg, &dead, labDead2, gate.Policy{MaxAttempts: 1})

	// Until the dead servers have failed six times the threshold (or the
	// deadline), no state event may say anything but up.
	const wantFails = 30
	began := time.Now()
	deadline := time.NewTimer(60 * time.Second)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for dead.failed.Load() < wantFails {
		select {
		case ev := <-l.events:
			if ev.Kind == EventState && ev.Status.State != Up {
				t.Fatalf("state event %q (%v/%s) while one server answered every message", ev.Msg, ev.Status.State, ev.Status.Reason)
			}
			if ev.Kind == EventNotice && strings.HasPrefix(ev.Msg, "send-errors") {
				t.Fatalf("notice %q", ev.Msg)
			}
		case <-tick.C:
		case <-deadline.C:
			t.Fatalf("only %d dead-server failures within 60s", dead.failed.Load())
		}
	}
	cancel()
	wg.Wait()
	st := l.m.Gate().Stats()
	if st.Closes != 0 || l.m.Status().State != Up {
		t.Fatalf("gate stats %+v, status %+v: want never closed, up", st, l.m.Status())
	}
	if live.ok.Load() == 0 {
		t.Fatal("the live sender never got through")
	}
	t.Logf("figure: %v with two dead servers (%d failures) beside a live one: the live sender delivered %d messages (%d failed), held %v in all; gate closes %d, holds %d",
		time.Since(began).Round(time.Millisecond), dead.failed.Load(), live.ok.Load(), live.failed.Load(),
		time.Duration(live.held.Load()), st.Closes, st.Holds)
}

// TestIntegrationStallUpstreamDownThenUp: two servers beyond the gateway
// answer; then the gateway stops forwarding (it still answers ARP and
// everything on its own link: nothing beyond it does). The senders' timeouts
// close the state (send-errors), and the notice and the flap name what
// confirmed it: failures to both destinations with no success anywhere,
// the gateway answering. When forwarding returns, a held sender let
// through as a half-open probe succeeds and the state is up again; the
// delay from the return to the up event is reported, not asserted.
func TestIntegrationStallUpstreamDownThenUp(t *testing.T) {
	t.Parallel()
	l, ctx, _, wg := startStallLab(t, Options{SendErrorThreshold: 5, SendErrorHold: time.Minute})
	var s1, s2 sender
	l.runSender(ctx, wg, &s1, labLive1, gate.Policy{})
	l.runSender(ctx, wg, &s2, labLive2, gate.Policy{})
	for s1.ok.Load() == 0 || s2.ok.Load() == 0 {
		select {
		case <-l.events:
		case <-time.After(20 * time.Second):
			t.Fatal("the servers did not answer within 20s")
		}
	}

	stalledAt := time.Now()
	l.b.Sysctl("net/ipv4/ip_forward", "0")
	var notice string
	var down Event
	deadline := time.NewTimer(30 * time.Second)
	for notice == "" || down.Kind == "" {
		select {
		case ev := <-l.events:
			t.Logf("event %s %s %s %v/%s", ev.Kind, ev.Iface, ev.Msg, ev.Status.State, ev.Status.Reason)
			switch {
			case ev.Kind == EventNotice && strings.HasPrefix(ev.Msg, "send-errors confirmed: "):
				notice = ev.Msg
			case ev.Kind == EventState && ev.Status.State == Down:
				if ev.Status.Reason != ReasonSendErrors {
					t.Fatalf("down for %s, want send-errors", ev.Status.Reason)
				}
				down = ev
			}
		case <-deadline.C:
			t.Fatalf("no send-errors verdict within 30s of the stall (notice %q); status %+v", notice, l.m.Status())
		}
	}
	deadline.Stop()
	if !strings.Contains(notice, "failures to 2 destinations") || !strings.Contains(notice, "gateway 10.210.0.2") {
		t.Fatalf("notice %q, want it to name the failures to both destinations and the gateway", notice)
	}

	// Half-open trials while the upstream is still dead fail, and the
	// state stays down; wait for two. The return below comes just after
	// a trial (within the 20 ms tick), the worst phase: the figure is
	// close to the longest wait for the next trial.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for wait := time.Now().Add(20 * time.Second); l.m.Gate().Stats().Trials < 2; {
		select {
		case ev := <-l.events:
			if ev.Kind == EventState {
				t.Fatalf("state event %q while the upstream was still dead", ev.Msg)
			}
		case <-tick.C:
			if time.Now().After(wait) {
				t.Fatalf("fewer than 2 half-open trials within 20s of the verdict: %+v", l.m.Gate().Stats())
			}
		}
	}
	returnedAt := time.Now()
	l.b.Sysctl("net/ipv4/ip_forward", "1")
	up := l.waitState(t, Up, ReasonNone)
	fl := l.m.Flaps()
	if len(fl) == 0 || fl[len(fl)-1].Cause != ReasonSendErrors || !strings.Contains(fl[len(fl)-1].Detail, "confirmed: ") {
		t.Fatalf("flaps %+v, want the send-errors outage with what confirmed it", fl)
	}
	t.Logf("figure: down %v after the gateway stopped forwarding; up %v after it forwarded again (half-open trials every %v); %d trials; notice %q",
		down.At.Sub(stalledAt).Round(time.Millisecond), up.At.Sub(returnedAt).Round(time.Millisecond), stallTrialEvery,
		l.m.Gate().Stats().Trials, notice)
}
