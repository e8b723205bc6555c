package netmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/seed-a56be422/netmon/sockwatch"
	"golang.org/x/sys/unix"
)

// TestOptionsSockErrorsDefaultOff: a library that links netmon and leaves
// Options.SockErrors empty loads no machine-wide tracer.
func TestOptionsSockErrorsDefaultOff(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	a := netnstest.New(t)
	m, err := New(Options{NetNS: a.Handle, Wifi: "off", DHCP: "off"})
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Snapshot().SockErrors; got != "off" {
		t.Errorf("Snapshot().SockErrors = %q with Options.SockErrors empty, want off", got)
	}
	events := m.Events()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		for range events {
		}
		<-done
	})
	if ev := <-events; ev.Kind != EventBaseline {
		t.Fatalf("first event %s, want the baseline", ev.Kind)
	}
	m.mu.Lock()
	sock := m.sock
	m.mu.Unlock()
	if sock != nil || m.Snapshot().SockErrors != "off" {
		t.Errorf("after the baseline: tracer %v, sockerr_watcher %q; want none, off", sock, m.Snapshot().SockErrors)
	}
}

// TestIntegrationMonitorSockLoadsAfterBaseline: with the tracer asked for,
// the baseline goes out first, and the tracer loads
// after it: its "loading" and "on" notices are stamped after the baseline.
func TestIntegrationMonitorSockLoadsAfterBaseline(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	r := newRig(t, Options{SockErrors: "auto"})
	base := r.waitKind(t, EventBaseline)
	loading := r.waitKind(t, EventNotice)
	on := r.waitKind(t, EventNotice)
	t.Logf("baseline at %v, %q at +%v, %q at +%v", base.At.Format(time.StampMicro),
		loading.Msg, loading.At.Sub(base.At), on.Msg, on.At.Sub(base.At))
	if loading.Msg != "socket-error tracer loading" || !strings.HasPrefix(on.Msg, "socket-error tracer on") {
		t.Fatalf("notices %q, %q; want the tracer loading, then on", loading.Msg, on.Msg)
	}
	if loading.At.Before(base.At) {
		t.Errorf("the tracer began loading at %v, before the baseline at %v", loading.At, base.At)
	}
	if got := r.m.Snapshot().SockErrors; got != "on" {
		t.Errorf("Snapshot().SockErrors = %q after the on notice, want on", got)
	}
}

// TestIntegrationReportAndTraceCountOnce: one failed connect that this
// process reports (Monitor.Report) and that eBPF traces is one send error
// in Stats.Reports (netmon_send_errors_total), whichever arrives first,
// and still one failure of its process in SockErrorsByProcess.
func TestIntegrationReportAndTraceCountOnce(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	comm := fmt.Sprintf("nd%x", time.Now().UnixNano()&0xffffffffff)
	r := newRig(t, Options{SockErrors: "on", SockSyscalls: true, SockComms: []string{comm}, SendErrorThreshold: -1})
	r.a.IP("route", "add", "unreachable", "198.51.100.0/24")
	r.waitState(t, Up, ReasonNone)
	r.waitSockOn(t)

	var dialErr error
	err := r.a.Do(func() error {
		restore, err := nameThread(comm)
		if err != nil {
			return err
		}
		defer restore()
		_, dialErr = net.DialTimeout("tcp", "198.51.100.1:443", 5*time.Second)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !errors.Is(dialErr, unix.EHOSTUNREACH) {
		t.Fatalf("dial: %v, want EHOSTUNREACH", dialErr)
	}
	ex := r.m.Report(dialErr)
	// Both events: the report's and the tracer's, in either order.
	sources := map[string]bool{}
	for len(sources) < 2 {
		ev := r.waitKind(t, EventSockErr)
		for _, f := range ev.Fields {
			if f.Key == "source" {
				sources[f.String] = true
			}
		}
	}
	st := r.m.Stats()
	var total uint64
	for _, byCause := range st.Reports {
		for _, n := range byCause {
			total += n
		}
	}
	if total != 1 || st.Reports[ex.Class][ex.Cause] != 1 {
		t.Errorf("Stats.Reports holds %d failures (%d as %v/%v), want the one failure once", total, st.Reports[ex.Class][ex.Cause], ex.Class, ex.Cause)
	}
	if got := r.m.SockErrorsByProcess(); len(got) != 1 || got[0].Comm != comm || got[0].Count != 1 {
		t.Errorf("SockErrorsByProcess = %+v, want one failure of %s", got, comm)
	}
}

// TestIntegrationMonitorNoRoutes: in default mode (no syscall tracing),
// a process that connects in a loop to a destination without a route,
// while the state is up (an on-link target, no default route), makes the
// kernel's OutNoRoutes rise: the Monitor reports it in a sockerr event of
// source "kernel" with the count, and counts every send in
// Stats.NoRouteSends.
func TestIntegrationMonitorNoRoutes(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	bash := netnstest.RequireCommand(t, "bash", "bash")
	r := newRigSetup(t, Options{Targets: []string{"10.210.0.2"}, NoRoutePoll: 50 * time.Millisecond}, nil,
		func(a, _ *netnstest.NS) { a.IP("route", "del", "default") })
	r.waitState(t, Up, ReasonNone)

	const n = 20
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := r.a.Command(ctx, bash, "-c",
		fmt.Sprintf(`for i in $(seq %d); do (exec 3<>/dev/tcp/192.0.2.1/80) 2>&1 | grep -q 'unreachable' || exit 1; done`, n)).CombinedOutput()
	if err != nil {
		t.Fatalf("the connecting loop: %v: %s (want every connect to fail with ENETUNREACH)", err, out)
	}
	ev := r.waitKind(t, EventSockErr)
	var source string
	var count uint64
	for _, f := range ev.Fields {
		switch f.Key {
		case "source":
			source = f.String
		case "count":
			count = uint64(f.Integer)
		}
	}
	if source != "kernel" || count == 0 || ev.Msg != fmt.Sprintf("%d %s", count, noRouteMsg) {
		t.Fatalf("sockerr event %q source %q count %d, want the kernel's no-route count", ev.Msg, source, count)
	}
	// The first event reports the first rise at once; every send is in
	// the count by the poll after the loop ended.
	deadline := time.Now().Add(10 * time.Second)
	for r.m.Stats().NoRouteSends < n {
		if time.Now().After(deadline) {
			t.Fatalf("Stats.NoRouteSends = %d within 10s, want %d", r.m.Stats().NoRouteSends, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.m.Stats().NoRouteSends; got != n {
		t.Errorf("Stats.NoRouteSends = %d, want %d", got, n)
	}
}

// envSockOn, when set, makes TestHelperSockOn run.
const envSockOn = "NETMON_TEST_SOCK_ON"

// TestHelperSockOn is not a test: run as nobody by
// TestIntegrationSockErrorsOnFailedLoad, it runs a Monitor that requires
// the tracer, which nobody may load, and prints what Run returned and the
// events before it.
func TestHelperSockOn(t *testing.T) {
	if os.Getenv(envSockOn) == "" {
		t.Skip("a helper process of TestIntegrationSockErrorsOnFailedLoad")
	}
	m, err := New(Options{Wifi: "off", DHCP: "off", SockErrors: "on", NoRoutePoll: -1})
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	events := m.Events()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	for ev := range events {
		fmt.Printf("event %s %s\n", ev.Kind, ev.Msg)
	}
	err = <-done
	fmt.Printf("run: %v\npermission: %v\nsnapshot: %s\n", err, errors.Is(err, sockwatch.ErrPermission), m.Snapshot().SockErrors)
}

// TestIntegrationSockErrorsOnFailedLoad: with SockErrors "on", a tracer
// that cannot load (a process without CAP_BPF) ends Run with an error
// that says why (errors.Is finds sockwatch.ErrPermission), after the
// baseline, which did not wait for the load.
func TestIntegrationSockErrorsOnFailedLoad(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	exe := netnstest.SelfForAnyUser(t)
	ns := netnstest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		exe, "-test.run=^TestHelperSockOn$")
	cmd.Env = append(os.Environ(), envSockOn+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	t.Logf("helper:\n%s", out)
	s := string(out)
	// The tracer's "loading" notice comes after the baseline; when the
	// load fails at once (a loaded machine), Run may end before the
	// subscriber got it: the Monitor's stop drops what is still queued.
	base, loading := strings.Index(s, "event baseline"), strings.Index(s, "socket-error tracer loading")
	if base < 0 || loading >= 0 && loading < base {
		t.Errorf("want the baseline, and the tracer's loading notice (if delivered before Run ended) after it")
	}
	if !strings.Contains(s, "run: netmon: socket errors required (SockErrors \"on\"): ") || !strings.Contains(s, "permission: true") ||
		!strings.Contains(s, "snapshot: unavailable: ") {
		t.Errorf("want Run to end with the load's permission error and the snapshot to say unavailable")
	}
}

// TestNoRouteWindow drives noRouteLocked with readings of the kernel's
// counters: a rise while up is counted and reported at once, further
// rises within noRouteWindow wait for its end and go out together, a rise
// while down or while syscall tracing names the senders is not counted,
// and a counter that went back (a namespace made again) is a new start.
func TestNoRouteWindow(t *testing.T) {
	m, err := New(Options{Wifi: "off", DHCP: "off", NoRoutePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.gate.Shutdown)
	m.mu.Lock()
	defer m.mu.Unlock()
	t0 := time.Now()
	m.status.State = Up
	m.noRoute.prev = 100
	type step struct {
		at           time.Duration
		v            uint64
		state        State
		named        bool
		sends, held  uint64 // Stats.NoRouteSends and the count not reported yet after the step
		reportedLast time.Duration
	}
	for i, s := range []step{
		{at: 0, v: 105, state: Up, sends: 5, held: 0, reportedLast: 0},                                // reported at once
		{at: 2 * time.Second, v: 110, state: Degraded, sends: 10, held: 5, reportedLast: 0},           // within the window
		{at: 4 * time.Second, v: 130, state: Down, sends: 10, held: 5, reportedLast: 0},               // the outage explains it
		{at: 6 * time.Second, v: 140, state: Up, named: true, sends: 10, held: 5},                     // eBPF names them
		{at: 11 * time.Second, v: 140, state: Up, sends: 10, held: 0, reportedLast: 11 * time.Second}, // the window's end
		{at: 12 * time.Second, v: 3, state: Up, sends: 10, held: 0, reportedLast: 11 * time.Second},   // the counter went back
		{at: 13 * time.Second, v: 4, state: Up, sends: 11, held: 1, reportedLast: 11 * time.Second},
	} {
		m.status.State = s.state
		m.noRouteLocked(t0.Add(s.at), s.v, s.named)
		if m.stats.NoRouteSends != s.sends || m.noRoute.pending != s.held || !m.noRoute.lastAt.Equal(t0.Add(s.reportedLast)) {
			t.Errorf("step %d (%d at +%v, %v): sends %d, held %d, last reported at +%v; want %d, %d, +%v", i, s.v, s.at, s.state,
				m.stats.NoRouteSends, m.noRoute.pending, m.noRoute.lastAt.Sub(t0), s.sends, s.held, s.reportedLast)
		}
	}
}

// TestNoRouteHeldGoOutAtStop: sends counted while a no-route event is
// held for the end of noRouteWindow go out in a last event when the
// loop's context ends, instead of being dropped with the loop.
func TestNoRouteHeldGoOutAtStop(t *testing.T) {
	m, err := New(Options{Wifi: "off", DHCP: "off", NoRoutePoll: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.gate.Shutdown)
	m.Events() // subscribe: events are queued
	m.mu.Lock()
	m.noRoute.pending, m.noRoute.lastAt = 7, time.Now() // held: one went out just now
	m.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	m.noRouteLoop(ctx)
	var counts []uint64
	m.queue.Release() // as the baseline does
	for _, ev := range m.queue.Drain() {
		for _, f := range ev.Fields {
			if ev.Kind == EventSockErr && f.Key == "count" {
				counts = append(counts, uint64(f.Integer))
			}
		}
	}
	if len(counts) != 1 || counts[0] < 7 {
		t.Errorf("no-route events at stop counted %v, want one event with the 7 held sends (or more)", counts)
	}
	if m.noRoute.pending != 0 {
		t.Errorf("%d sends still held after the loop ended", m.noRoute.pending)
	}
}

// TestIntegrationSockLoadStopped: when Run stops while the tracer loads,
// the loaded tracer is closed at once, never handed to the loop nor
// announced: the snapshot says off, not on, and no "tracer on" notice
// goes out after the stop.
func TestIntegrationSockLoadStopped(t *testing.T) {
	netnstest.RequirePrivileged(t)
	m, err := New(Options{Wifi: "off", DHCP: "off", SockErrors: "auto", NoRoutePoll: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.gate.Shutdown)
	m.Events()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var loaded *sockwatch.Watcher
	m.newSock = func(cfg sockwatch.Config) (*sockwatch.Watcher, error) {
		cancel() // Run stops while the load runs
		w, err := sockwatch.New(cfg)
		loaded = w
		return w, err
	}
	close(m.baselineC) // the baseline is out
	ready := make(chan *sockwatch.Watcher, 1)
	if err := m.loadSockwatch(ctx, ready); err != nil {
		t.Fatalf("loadSockwatch: %v", err)
	}
	if loaded == nil {
		t.Fatal("the tracer did not load")
	}
	if err := loaded.Run(context.Background()); !errors.Is(err, sockwatch.ErrClosed) {
		t.Errorf("the loaded tracer's Run: %v, want ErrClosed (closed at once)", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.sock != nil || len(ready) != 0 || m.sockNote != "off" {
		t.Errorf("after a stop during the load: sock %v, handed to the loop %v, snapshot %q; want none, no, off", m.sock, len(ready) != 0, m.sockNote)
	}
	m.queue.Release()
	for _, ev := range m.queue.Drain() {
		if strings.HasPrefix(ev.Msg, "socket-error tracer on") {
			t.Errorf("notice %q after the stop", ev.Msg)
		}
	}
}
