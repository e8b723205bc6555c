//go:build linux

package delivery

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// Spec names a sender and the netmon options it runs with.
type Spec struct {
	// Kind is one of Kinds.
	Kind string
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
//     Monitor in-process watching the robot's namespace (dial through the
//     Gate, drop the connection when the Gate closes or on a rebind).
var Kinds = []string{"plain", "daemon", "netmon"}

// ParseSpec parses "KIND" or "KIND:stabilize=DURATION".
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
	if kind == "plain" {
		return sp, fmt.Errorf("delivery: sender %q: the plain loop runs no netmon to set options of", v)
	}
	for _, o := range strings.Split(opts, ",") {
		k, val, _ := strings.Cut(o, "=")
		switch k {
		case "stabilize":
			if _, err := time.ParseDuration(val); err != nil {
				return sp, fmt.Errorf("delivery: sender %q: stabilize: %w", v, err)
			}
			sp.Stabilize = val
		default:
			return sp, fmt.Errorf("delivery: sender %q: unknown option %q (want stabilize=DURATION)", v, k)
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
	}[sp.Kind]
	if sp.Stabilize != "" {
		name += ", `--stabilize=" + sp.Stabilize + "`"
	}
	return name
}

// Drain is how long a run waits, after the producer stops, for the last
// messages to be acknowledged; what is still missing then is lost.
const Drain = 60 * time.Second

// Run runs sender sp on schedule sc in fresh namespaces and returns its
// row of the table. netmonBin is a `netmon` binary, for the daemon kind.
func Run(t testing.TB, sc Schedule, sp Spec, netmonBin string) Row {
	t.Helper()
	n := NewNet(t)
	rc := startReceiver(t, n.Server)
	var p pattern = plainLoop{}
	switch sp.Kind {
	case "daemon":
		startDaemon(t, n.Robot, netmonBin, sp)
	case "netmon":
		p = startMonitor(t, n.Robot, sp)
	}
	s := newSender(n.Robot, p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
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
	dctx, dcancel := context.WithDeadline(ctx, start.Add(sc.Length+Drain))
	err := s.deliver(dctx)
	dcancel()
	cancel()
	<-produced
	a := <-appliedC
	if a.err != nil {
		t.Error(a.err)
	}
	if err != nil {
		t.Logf("%s on %s: delivery did not finish: %v", sp, sc.Name, err)
	}
	s.mu.Lock()
	created, dials := s.created, s.dials
	s.mu.Unlock()
	f := Compute(rc.messages(created), a.down, dials)
	var b strings.Builder
	for _, iv := range a.down {
		fmt.Fprintf(&b, " %+.3fs-%+.3fs", iv.Down.Sub(start).Seconds(), iv.Up.Sub(start).Seconds())
	}
	t.Logf("%s: outages as applied:%s", sc.Name, b.String())
	if g, ok := p.(*gated); ok {
		g.mu.Lock()
		f.UsableShare, f.OpenWhileDown = GateFigures(g.gates, a.down, start, start.Add(sc.Length))
		var b strings.Builder
		for _, c := range g.gates {
			fmt.Fprintf(&b, " %+.3fs:%v", c.At.Sub(start).Seconds(), map[bool]string{true: "open", false: "closed"}[c.Open])
		}
		g.mu.Unlock()
		t.Logf("%s on %s: the Gate:%s", sp, sc.Name, b.String())
	}
	return Row{Schedule: sc.Name, Sender: sp.String(), Figures: f}
}

// startMonitor starts a Monitor of ns's network namespace, with sp's
// options, until t ends, and waits for its Gate to open.
func startMonitor(t testing.TB, ns *netnstest.NS, sp Spec) *gated {
	t.Helper()
	opts := netmon.Options{NetNS: ns.Handle, SockErrors: "off"}
	if sp.Stabilize != "" {
		d, _ := time.ParseDuration(sp.Stabilize)
		if d == 0 {
			d = -1 // the flag's 0 is "off"; the Options' 0 is the default
		}
		opts.Stabilize = d
	}
	m, err := netmon.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- m.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-ran; err != nil && ctx.Err() == nil {
			t.Errorf("monitor: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := m.Gate().Wait(wctx); err != nil {
		t.Fatalf("monitor of %s: the gate did not open: %v", ns.Name, err)
	}
	p := &gated{m: m, g: m.Gate()}
	go p.follow(ctx)
	return p
}

// startDaemon runs `netmon watch` in ns until t ends, its JSON log in a
// file, and waits for its baseline.
func startDaemon(t testing.TB, ns *netnstest.NS, bin string, sp Spec) {
	t.Helper()
	args := []string{"watch", "--sockerr=off", "--log-format", "json"}
	if sp.Stabilize != "" {
		args = append(args, "--stabilize="+sp.Stabilize)
	}
	logPath := filepath.Join(t.TempDir(), "netmon.log")
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	t.Logf("$ ip netns exec %s %s %s > %s", ns.Name, bin, strings.Join(args, " "), logPath)
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Wait()
		f.Close()
	})
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if logHas(logPath, `"event":"baseline"`) {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("netmon watch wrote no baseline within 20 s:\n%s", b)
		}
	}
}

// logHas reports whether a line of the file at path contains s.
func logHas(path, s string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}
