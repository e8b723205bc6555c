package netmon

import (
	"context"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/linkwatch"
	"golang.org/x/sys/unix"
)

// timeoutTo is a connect towards ip that timed out, as net.Dialer reports
// it.
func timeoutTo(ip net.IP) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: ip, Port: 443}, Err: os.ErrDeadlineExceeded}
}

// TestStallOneDeadPeerHoldsNobody: a sender retrying one host that never
// answers is that host's problem: however many failures, the state stays
// up and the Gate open.
func TestStallOneDeadPeerHoldsNobody(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 3})
	m.apply(baselineUp())
	for range 20 {
		if ex := m.Report(unreachTo(net.IPv4(10, 0, 0, 99))); ex.Cause != CauseUnexplained {
			t.Fatalf("cause %v, want unexplained", ex.Cause)
		}
	}
	wantStatus(t, m, Up, ReasonNone)
}

// TestStallTimeoutsCount: the classic stall, associated with the upstream
// dead, shows as timeouts everywhere; they count.
func TestStallTimeoutsCount(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 4})
	m.apply(baselineUp())
	for i := range 4 {
		err := timeoutTo(net.IPv4(198, 51, 100, byte(1+i%2)))
		if c := classify.Classify(err); c != classify.Timeout {
			t.Fatalf("class %v, want timeout", c)
		}
		m.Report(err)
	}
	wantStatus(t, m, Down, ReasonSendErrors)
}

// TestStallGatewaySilentOneDestination: with the gateway not answering, a
// single destination's failures are enough.
func TestStallGatewaySilentOneDestination(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 3})
	b := baselineUp()
	b.State.Neighs = append(b.State.Neighs, failedGateway())
	m.apply(b)
	wantStatus(t, m, Degraded, ReasonGatewayFailed)
	for range 3 {
		m.Report(unreachTo(net.IPv4(198, 51, 100, 1)))
	}
	wantStatus(t, m, Down, ReasonSendErrors)
}

// TestStallTargetClosesOnlyItsGate: failures towards a declared target
// close its Gate and no other; after SendErrorHold it reopens, and the
// count starts from zero.
func TestStallTargetClosesOnlyItsGate(t *testing.T) {
	const server = "10.0.0.99"
	m := newTestMonitor(t, Options{Targets: []string{server, "10.0.0.1"}, SendErrorThreshold: 3, SendErrorHold: 5 * time.Second})
	m.apply(baselineUp())
	wantStatus(t, m, Up, ReasonNone)
	for range 3 {
		m.Report(unreachTo(net.IPv4(10, 0, 0, 99)))
	}
	wantStatus(t, m, Degraded, ReasonTargetUnreachable)
	if s := m.Status(); s.Target != server {
		t.Fatalf("status %+v, want degraded for %s", s, server)
	}
	if gs := m.GateFor(server).State(); gs.Open || gs.Reason.Code != string(ReasonSendErrors) {
		t.Fatalf("server's gate %+v, want closed for send-errors", gs)
	}
	if !m.GateFor("10.0.0.1").State().Open {
		t.Fatal("the other target's gate closed")
	}
	m.mu.Lock()
	at := m.paths[0].stallAt
	m.evaluateLocked(at.Add(5 * time.Second))
	m.mu.Unlock()
	wantStatus(t, m, Up, ReasonNone)
	if !m.GateFor(server).State().Open {
		t.Fatal("server's gate still closed after the hold")
	}
	// From zero: one more failure does not close it again.
	m.Report(unreachTo(net.IPv4(10, 0, 0, 99)))
	if !m.GateFor(server).State().Open {
		t.Fatal("one failure after the hold closed the gate again: the count did not start from zero")
	}
}

// TestStallRearmsFromZero: after the hold, the detector needs a whole new
// threshold of failures to close the state again.
func TestStallRearmsFromZero(t *testing.T) {
	m := stalled(t, Options{SendErrorThreshold: 3, SendErrorHold: time.Second})
	m.mu.Lock()
	m.evaluateLocked(m.stall.downAt.Add(time.Second))
	m.mu.Unlock()
	wantStatus(t, m, Up, ReasonNone)
	m.Report(unreach())
	m.Report(unreach())
	if s := m.Status(); s.State == Down {
		t.Fatalf("status %+v after 2 failures, want the threshold of 3 counted from zero", s)
	}
	m.Report(unreach())
	wantStatus(t, m, Down, ReasonSendErrors)
}

// stalled returns a test Monitor up on baselineUp that SendErrorThreshold
// failures towards two destinations took down (send-errors).
func stalled(t *testing.T, o Options) *Monitor {
	t.Helper()
	m := newTestMonitor(t, o)
	m.apply(baselineUp())
	for range o.SendErrorThreshold {
		m.Report(unreach())
	}
	wantStatus(t, m, Down, ReasonSendErrors)
	return m
}

// failedGateway is wlan0's gateway (baselineUp) with a FAILED entry.
func failedGateway() linkwatch.Neigh {
	return linkwatch.Neigh{Index: 2, Iface: "wlan0", IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_FAILED}
}

// TestStallDeadPeerAndAStrayFailure: four failures towards one dead host
// and one elsewhere are not a stall: no destination counts for more than
// half of the threshold.
func TestStallDeadPeerAndAStrayFailure(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 5})
	m.apply(baselineUp())
	for range 4 {
		m.Report(unreachTo(net.IPv4(10, 0, 0, 99)))
	}
	m.Report(unreachTo(net.IPv4(198, 51, 100, 7)))
	if s := m.Status(); s.State == Down || !m.gate.State().Open {
		t.Fatalf("status %+v: one dead host and a stray failure closed the gate", s)
	}
	// Two more elsewhere make it one.
	m.Report(unreachTo(net.IPv4(198, 51, 100, 8)))
	m.Report(unreachTo(net.IPv4(198, 51, 100, 9)))
	wantStatus(t, m, Down, ReasonSendErrors)
}

// TestStallTargetSuccessIsItsOwn: a send that succeeds through another
// target's Gate, or anywhere (ReportSuccess), does not end a target's own
// stall; a success through its own Gate does.
func TestStallTargetSuccessIsItsOwn(t *testing.T) {
	const dead, live = "10.0.0.99", "10.0.0.1"
	m := newTestMonitor(t, Options{Targets: []string{dead, live}, SendErrorThreshold: 3})
	m.apply(baselineUp())
	ok := func(context.Context) error { return nil }
	ctx := context.Background()
	for range 3 {
		m.Report(unreachTo(net.IPv4(10, 0, 0, 99)))
		if err := m.GateFor(live).Do(ctx, ok); err != nil {
			t.Fatal(err)
		}
	}
	if m.GateFor(dead).State().Open {
		t.Fatal("successes towards another target kept the dead one's gate open")
	}
	m.ReportSuccess()
	if err := m.GateFor(live).Do(ctx, ok); err != nil {
		t.Fatal(err)
	}
	if m.GateFor(dead).State().Open {
		t.Fatal("an unrelated success reopened the dead target's gate")
	}
	wantStatus(t, m, Degraded, ReasonTargetUnreachable)
	// Its own success (a sender that bypassed the Gate and got through
	// is what the hook reports) ends it.
	m.targetSuccess(m.paths[0])
	wantStatus(t, m, Up, ReasonNone)
	if !m.GateFor(dead).State().Open {
		t.Fatal("the target's own success did not reopen its gate")
	}
}

// TestEvaluationNeverGoesBack: an event stamped before the last evaluation
// (read from linkwatch before the timer fired) is judged at the later
// time, so an address that expired stays expired and no flap is made of
// it.
func TestEvaluationNeverGoesBack(t *testing.T) {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	b.State.Addrs[0].Valid, b.State.Addrs[0].Preferred = 10*time.Second, 10*time.Second
	m.apply(b)
	wantStatus(t, m, Up, ReasonNone)
	end := t0.Add(10 * time.Second)
	m.mu.Lock()
	m.evaluateLocked(end.Add(time.Millisecond))
	m.mu.Unlock()
	wantStatus(t, m, Down, ReasonNoAddress)
	m.apply(linkwatch.NeighEvent{At: end.Add(-time.Millisecond), Neigh: linkwatch.Neigh{Index: 2, IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_REACHABLE}})
	wantStatus(t, m, Down, ReasonNoAddress)
	if fl := m.Flaps(); len(fl) != 0 {
		t.Fatalf("flaps %+v: an event stamped before the expiry undid it", fl)
	}
}

// TestStallSuccessesPerDestination: successes count per destination.
// Failures towards others while a destination answers are those peers'
// own; a success forgets the failures before it; a live destination that
// fails again is live no more; a verdict says what confirmed it.
func TestStallSuccessesPerDestination(t *testing.T) {
	dead1, dead2, live := net.IPv4(198, 51, 100, 1), net.IPv4(198, 51, 100, 2), net.IPv4(198, 51, 100, 3)
	addr := func(ip net.IP) netip.Addr { a, _ := netip.AddrFromSlice(ip.To4()); return a }
	type step struct {
		fail net.IP // a timeout towards it, or
		ok   net.IP // a success towards it (nil with okAny false: none)
		any  bool   // a success towards an unknown destination
	}
	fails := func(n int, ips ...net.IP) []step {
		var s []step
		for i := range n {
			s = append(s, step{fail: ips[i%len(ips)]})
		}
		return s
	}
	cat := func(parts ...[]step) []step {
		var s []step
		for _, p := range parts {
			s = append(s, p...)
		}
		return s
	}
	for _, tc := range []struct {
		name         string
		gwFailed     bool
		steps        []step
		want         State
		wantReason   Reason
		wantEvidence string // in the notice and the flap's detail
	}{
		{name: "two dead servers and a live one", want: Up,
			steps: cat(fails(1, dead1), []step{{ok: live}}, fails(12, dead1, dead2), []step{{ok: live}}, fails(12, dead1, dead2))},
		{name: "the live server fails too: a stall", want: Down, wantReason: ReasonSendErrors,
			wantEvidence: "failures to 3 destinations",
			steps:        cat(fails(1, dead1), []step{{ok: live}}, fails(4, dead1, dead2), []step{{fail: live}})},
		{name: "no success anywhere: a stall", want: Down, wantReason: ReasonSendErrors,
			wantEvidence: "gateway 10.0.0.1",
			steps:        fails(5, dead1, dead2)},
		{name: "a success forgets the failures before it", want: Degraded, wantReason: ReasonSendErrors,
			steps: cat(fails(4, dead1, dead2), []step{{any: true}}, fails(1, dead1), []step{{fail: live}})},
		{name: "an unknown destination's success forgets, but is not live", want: Down, wantReason: ReasonSendErrors,
			wantEvidence: "5 failures to 2 destinations",
			steps:        cat(fails(4, dead1, dead2), []step{{any: true}}, fails(5, dead1, dead2))},
		{name: "a success before any failure makes its destination live", want: Up,
			steps: cat([]step{{ok: live}}, fails(12, dead1, dead2))},
		{name: "gateway FAILED confirms a dead first hop", gwFailed: true, want: Down, wantReason: ReasonSendErrors,
			wantEvidence: "gateway 10.0.0.1 failed",
			steps:        fails(5, dead1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestMonitor(t, Options{SendErrorThreshold: 5})
			b := baselineUp()
			b.State.Neighs = append(b.State.Neighs, linkwatch.Neigh{Index: 2, Iface: "wlan0", IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_REACHABLE})
			if tc.gwFailed {
				b.State.Neighs[0] = failedGateway()
			}
			m.apply(b)
			for _, s := range tc.steps {
				switch {
				case s.fail != nil:
					m.Report(timeoutTo(s.fail))
				case s.ok != nil:
					m.ReportSuccessTo(addr(s.ok))
				case s.any:
					m.ReportSuccess()
				}
			}
			if s := m.Status(); s.State != tc.want || s.Reason != tc.wantReason {
				t.Fatalf("status %v/%q, want %v/%q", s.State, s.Reason, tc.want, tc.wantReason)
			}
			var notice string
			for _, ev := range m.drain() {
				if ev.Kind == EventNotice && strings.HasPrefix(ev.Msg, "send-errors confirmed: ") {
					notice = ev.Msg
				}
			}
			if tc.wantEvidence == "" {
				if notice != "" {
					t.Fatalf("notice %q without a verdict", notice)
				}
				return
			}
			if !strings.Contains(notice, tc.wantEvidence) {
				t.Fatalf("notice %q, want it to name %q", notice, tc.wantEvidence)
			}
			// The flap the outage makes says it too.
			m.ReportSuccessTo(addr(live))
			if s := m.Status(); !s.State.CanSend() || !m.gate.State().Open {
				t.Fatalf("status %+v after a success, want the verdict ended and the gate open", s)
			}
			if fl := m.Flaps(); len(fl) != 1 || !strings.Contains(fl[0].Detail, "confirmed: ") || !strings.Contains(fl[0].Detail, tc.wantEvidence) {
				t.Fatalf("flaps %+v, want one whose detail names %q", fl, tc.wantEvidence)
			}
		})
	}
}

// TestStallUpstreamVerdictSurvivesTheGatewayAnswering: a verdict confirmed
// while the gateway answered (nothing beyond it did) is not ended by the
// kernel confirming the gateway again; a success ends it.
func TestStallUpstreamVerdictSurvivesTheGatewayAnswering(t *testing.T) {
	m := newTestMonitor(t, Options{SendErrorThreshold: 4})
	gw := linkwatch.Neigh{Index: 2, Iface: "wlan0", IP: netip.MustParseAddr("10.0.0.1"), State: unix.NUD_REACHABLE}
	b := baselineUp()
	b.State.Neighs = append(b.State.Neighs, gw)
	m.apply(b)
	for range 4 {
		m.Report(unreach())
	}
	wantStatus(t, m, Down, ReasonSendErrors)
	m.apply(linkwatch.NeighEvent{At: time.Now(), Neigh: gw})
	wantStatus(t, m, Down, ReasonSendErrors)
	m.ReportSuccess()
	wantStatus(t, m, Up, ReasonNone)
}

// TestStallTrialReopens: while a send-errors verdict holds the Gate closed,
// one held Do call is let through every stallTrialEvery; the first that
// succeeds ends the verdict, long before SendErrorHold.
func TestStallTrialReopens(t *testing.T) {
	m := stalled(t, Options{SendErrorThreshold: 3, SendErrorHold: time.Minute})
	sent := make(chan struct{}, 1)
	done := make(chan error, 1)
	go func() {
		done <- m.Gate().Do(context.Background(), func(context.Context) error {
			sent <- struct{}{}
			return nil
		})
	}()
	for m.gate.Stats().HeldNow != 1 {
		time.Sleep(time.Millisecond) // until the Do call is held; the test's own deadline bounds it
	}
	m.mu.Lock()
	downAt, due := m.stall.downAt, m.wakeAt
	m.mu.Unlock()
	if want := downAt.Add(stallTrialEvery); !due.Equal(want) {
		t.Fatalf("next deadline %v after the verdict, want the trial's, %v", due.Sub(downAt), stallTrialEvery)
	}
	m.mu.Lock()
	m.evaluateLocked(due)
	m.mu.Unlock()
	select {
	case <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("no held call was let through at the trial's deadline")
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	wantStatus(t, m, Up, ReasonNone)
	if st := m.gate.Stats(); st.Trials != 1 {
		t.Fatalf("gate stats %+v, want 1 trial", st)
	}
}
