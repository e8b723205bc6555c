//go:build linux

package delivery

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// Spec names a sender and the netmon options it runs with.
type Spec struct {
	// Kind is one of Kinds.
	Kind string
	// Drop, for the netmon kind, drops connections when the Gate closes
	// (the pattern the examples taught before issue 26) instead of keeping
	// them through outages (see gated.keep).
	Drop bool
	// Stabilize, if not empty, is the value of netmon's --stabilize
	// (a duration; 0 disables the hold) for the daemon, and the same for
	// the in-process Monitor's Options.Stabilize. Empty: netmon's default.
	Stabilize string
}

// Kinds are the senders Run knows:
//
//   - plain: the seed's plain loop, no netmon (send; on an error or no
//     acknowledgement within AckTimeout, reconnect and resend the
//     unacknowledged messages, oldest first).
//   - daemon: the same loop with `netmon watch` running beside it in the
//     robot's namespace: what the daemon alone gives every program.
//   - netmon: netmon's Go pattern as examples/sender teaches it, the
//     Monitor in-process watching the robot's namespace: dial through the
//     Gate; keep the connection through an outage, writing nothing; end
//     it on a rebind, or when the Gate reopens with acknowledgements
//     outstanding, the resend then made on a fresh connection. With the
//     option drop (netmon:drop), the connection is dropped when the Gate
//     closes, as the examples taught before issue 26.
//   - python: the Python client's pattern, examples/python/robot_sender.py's
//     Sender as it is (wait_online before each connection, the connection
//     kept through an outage and replaced at the return with messages
//     outstanding, ended on a rebind), with `netmon watch --socket` beside
//     it and a producer in front (robot_producer.py).
//   - mqtt: MQTT QoS 1 through mosquitto, with paho-mqtt's defaults (a
//     Python publisher on the robot, a subscriber beside the broker), what
//     a robot engineer would pick instead. Needs mosquitto and
//     python3-paho-mqtt.
var Kinds = []string{"plain", "daemon", "netmon", "python", "mqtt"}

// ParseSpec parses "KIND" or "KIND:OPTION[:OPTION]", the options
// stabilize=DURATION (daemon, netmon, python) and drop (netmon).
func ParseSpec(v string) (Spec, error) {
	kind, opts, _ := strings.Cut(v, ":")
	sp := Spec{Kind: kind}
	known := false
	for _, k := range Kinds {
		known = known || k == kind
	}
	if !known {
		return sp, fmt.Errorf("delivery: sender %q: want one of %v, optionally with :stabilize=DURATION", kind, Kinds)
	}
	if opts == "" {
		return sp, nil
	}
	if kind == "plain" || kind == "mqtt" {
		return sp, fmt.Errorf("delivery: sender %q: %s runs no netmon to set options of", v, kind)
	}
	for _, o := range strings.Split(opts, ":") {
		k, val, _ := strings.Cut(o, "=")
		switch k {
		case "stabilize":
			if _, err := time.ParseDuration(val); err != nil {
				return sp, fmt.Errorf("delivery: sender %q: stabilize: %w", v, err)
			}
			sp.Stabilize = val
		case "drop":
			if kind != "netmon" || val != "" {
				return sp, fmt.Errorf("delivery: sender %q: drop is an option of netmon and takes no value", v)
			}
			sp.Drop = true
		default:
			return sp, fmt.Errorf("delivery: sender %q: unknown option %q (want stabilize=DURATION or drop)", v, k)
		}
	}
	return sp, nil
}

// String is the sender's name in the table.
func (sp Spec) String() string {
	name := map[string]string{
		"plain":  "plain loop, no netmon",
		"daemon": "plain loop + `netmon watch` beside it",
		"netmon": "netmon's Go pattern (Monitor in-process)",
		"python": "the Python client's pattern (robot_sender.py + `netmon watch --socket`)",
		"mqtt":   "MQTT QoS 1, paho-mqtt through mosquitto, their defaults",
	}[sp.Kind]
	if sp.Drop {
		name += ", connection dropped at each outage (before issue 26)"
	}
	if sp.Stabilize != "" {
		name += ", `--stabilize=" + sp.Stabilize + "`"
	}
	return name
}

// LogEvents makes the in-process Monitor log its events to the test log.
var LogEvents bool

// Run runs sender sp on schedule sc in fresh namespaces and returns what
// it recorded, for [Compute]. netmonBin is a `netmon` binary, for the
// daemon kind.
func Run(t testing.TB, sc Schedule, sp Spec, netmonBin string) Sample {
	t.Helper()
	n := NewNet(t)
	rc := startReceiver(t, n.Server)
	var (
		created, dials []time.Time
		down           []Interval
		p              pattern = plainLoop{}
		start          time.Time
	)
	switch sp.Kind {
	case "daemon":
		startDaemon(t, n.Robot, netmonBin, sp, "")
	case "netmon":
		p = startMonitor(t, n.Robot, sp)
	}
	switch sp.Kind {
	case "mqtt":
		start = time.Now() // about: the publisher starts Apply at its own start
		created, dials, down = runMQTT(t, n, sc, rc)
	case "python":
		start = time.Now()
		created, dials, down = runPython(t, n, sc, sp, netmonBin)
	default:
		start, created, dials, down = runSender(t, n, sc, p)
	}
	smp := Sample{Msgs: rc.messages(created), Down: down, Dials: dials, Start: start, End: start.Add(sc.Length)}
	var b strings.Builder
	for _, iv := range down {
		fmt.Fprintf(&b, " %+.3fs-%+.3fs", iv.Down.Sub(start).Seconds(), iv.Up.Sub(start).Seconds())
	}
	t.Logf("%s (seed %d): outages as applied:%s", sc.Name, sc.Seed, b.String())
	if g, ok := p.(*gated); ok {
		g.mu.Lock()
		smp.Gates = g.gates
		var b strings.Builder
		for _, c := range g.gates {
			fmt.Fprintf(&b, " %+.3fs(%s):%v", c.At.Sub(start).Seconds(), c.At.Format("15:04:05.000"), map[bool]string{true: "open", false: "closed"}[c.Open])
		}
		g.mu.Unlock()
		t.Logf("%s on %s: the Gate:%s", sp, sc.Name, b.String())
	}
	return smp
}

// runSender runs the Go sender with pattern p on sc and returns when it
// started, the creation time of each message, the start of each
// connection attempt, and the outages as applied.
func runSender(t testing.TB, n *Net, sc Schedule, p pattern) (start time.Time, created, dials []time.Time, down []Interval) {
	s := newSender(n.Robot, p)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start = time.Now()
	type applied struct {
		down []Interval
		err  error
	}
	appliedC := make(chan applied, 1)
	go func() {
		down, err := n.Apply(ctx, start, sc)
		appliedC <- applied{down, err}
	}()
	produced := make(chan struct{})
	go func() {
		defer close(produced)
		s.produce(ctx, start, sc.Length)
	}()
	dctx, dcancel := context.WithDeadline(ctx, start.Add(sc.Length+sc.Drain))
	err := s.deliver(dctx)
	dcancel()
	cancel()
	<-produced
	a := <-appliedC
	if a.err != nil {
		t.Error(a.err)
	}
	if err != nil {
		t.Logf("delivery did not finish: %v", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return start, s.created, s.dials, a.down
}

// startMonitor starts a Monitor of ns's network namespace, with sp's
// options, until t ends, and waits for its Gate to open.
func startMonitor(t testing.TB, ns *netnstest.NS, sp Spec) *gated {
	t.Helper()
	opts := netmon.Options{NetNS: ns.Handle, SockErrors: "off"}
	if sp.Stabilize != "" {
		d, _ := time.ParseDuration(sp.Stabilize)
		opts.Stabilize = d // 0, the default, is off, as the flag's 0
	}
	m, err := netmon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	logged := make(chan struct{})
	if LogEvents {
		ns.Start("ip", "-ts", "monitor", "link", "address", "route") // the kernel's own account, beside netmon's
		events := m.Events()
		go func() {
			defer close(logged)
			for ev := range events { // until Run closes it
				t.Logf("netmon %s: %s %s %s %v", ev.At.Format("15:04:05.000"), ev.Kind, ev.Msg, ev.Iface, ev.Status)
			}
		}()
	} else {
		close(logged)
	}
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil && ctx.Err() == nil {
			t.Errorf("monitor: %v", err)
		}
		<-logged
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := m.Gate().Wait(wctx); err != nil {
		t.Fatalf("monitor of %s: the gate did not open: %v", ns.Name, err)
	}
	p := &gated{m: m, g: m.Gate(), keep: !sp.Drop}
	go p.follow(ctx)
	return p
}

// startDaemon runs `netmon watch` in ns until t ends, its JSON log in a
// file, and waits for its baseline. With socket, it serves the local API
// there.
func startDaemon(t testing.TB, ns *netnstest.NS, bin string, sp Spec, socket string) {
	t.Helper()
	args := []string{"watch", "--sockerr=off", "--log-format", "json"}
	if socket != "" {
		args = append(args, "--socket", socket)
	}
	if sp.Stabilize != "" {
		args = append(args, "--stabilize="+sp.Stabilize)
	}
	logPath := filepath.Join(t.TempDir(), "netmon.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() }) // after the process is gone: cleanups run last first
	t.Logf("netmon watch logs to %s", logPath)
	baseline := make(chan struct{})
	var once sync.Once
	startProc(t, ns, func(l string) {
		fmt.Fprintln(f, l)
		if strings.Contains(l, `"event":"baseline"`) {
			once.Do(func() { close(baseline) })
		}
	}, bin, args...)
	select {
	case <-baseline:
	case <-time.After(20 * time.Second):
		t.Fatalf("netmon watch wrote no baseline within 20 s (its log: %s)", logPath)
	}
}
