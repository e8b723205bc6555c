//go:build linux

package e2e

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// envSeed replays a run: the test logs its seed, and
// NETMON_E2E_SEED=<seed> makes the next run use the same outage plan.
const envSeed = "NETMON_E2E_SEED"

// The kinds of outage the plan mixes.
const (
	peerDown     = "peer-down"     // the peer's end of the veth goes down: the sender loses carrier
	addrReplaced = "addr-replaced" // the sender's address moves to another subnet, with a new default route
	routeRemoved = "route-removed" // the sender's default route is deleted, then restored
	serverReset  = "server-reset"  // ackserver resets every connection (SIGUSR1)
)

// outage is one step of the plan: wait up, then hold the outage for down
// (zero for a server reset, which is instantaneous).
type outage struct {
	kind     string
	up, down time.Duration
}

// plan returns n outages, the kinds in equal shares in a shuffled order,
// each after 0.5 to 3 s of normal operation and, but for resets, lasting
// 0.5 to 3 s.
func plan(r *rand.Rand, n int) []outage {
	kinds := []string{peerDown, addrReplaced, routeRemoved, serverReset}
	out := make([]outage, n)
	for i := range out {
		out[i].kind = kinds[i%len(kinds)]
	}
	r.Shuffle(n, func(i, j int) { out[i].kind, out[j].kind = out[j].kind, out[i].kind })
	between := func() time.Duration {
		return 500*time.Millisecond + time.Duration(r.Int64N(int64(2500*time.Millisecond)))
	}
	for i := range out {
		out[i].up = between()
		if out[i].kind != serverReset {
			out[i].down = between()
		}
	}
	return out
}

// TestIntegrationSenderSurvivesOutages runs sender and ackserver in two
// namespaces and takes the link between them down and up 20 times while
// 20,000 messages flow. Every message must be received, the sender must
// end by itself with exit status 0, and its counts must agree with the
// server's.
//
// Topology:
//
//	ns S (sender)                        ns A (ackserver, and the gateway)
//	vs 10.1.0.2/24  <--- veth --->  va 10.1.0.1/24, 10.2.0.1/24
//	default via 10.1.0.1                 lo 10.9.0.1/32 (ackserver listens here)
//
// The server's address is off-link for the sender, so every message
// needs the default route, as on a robot.
func TestIntegrationSenderSurvivesOutages(t *testing.T) {
	netnstest.RequirePrivileged(t)
	netnstest.RequireCommand(t, "ip", "iproute2")
	t.Parallel()

	count, outages := 20000, 20
	if testing.Short() {
		count, outages = 2000, 4
	}
	seed := replaySeed(t)
	steps := plan(rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), outages)

	// Pace the sender so that it is still sending when the last outage
	// begins and ends soon after it: the time it can send is the time
	// between outages, plus a little, because held time is not made up;
	// but after each outage the sender's pacing catches up on at most
	// 100 ms (its paceBurst), so each outage adds that much to the time
	// the messages need.
	var upTotal time.Duration
	for _, s := range steps {
		t.Logf("plan: after %v, %s for %v", s.up.Round(time.Millisecond), s.kind, s.down.Round(time.Millisecond))
		upTotal += s.up
	}
	rate := float64(count) / (upTotal + 2*time.Second + time.Duration(outages)*100*time.Millisecond).Seconds()

	bin := t.TempDir()
	sender := build(t, bin, "sender")
	ackserver := build(t, bin, "ackserver")

	s, a := lab(t)
	subnet, host := 1, 2 // the sender's current address is 10.<subnet>.0.<host>

	srv := start(t, a, "ackserver", ackserver, "--listen", "10.9.0.1:7000")
	srv.waitLine(t, "listening", 30*time.Second)
	snd := start(t, s, "sender", sender,
		"--addr", "10.9.0.1:7000", "--count", strconv.Itoa(count),
		"--rate", strconv.FormatFloat(rate, 'f', 1, 64), "--ack-timeout", "2s")
	t.Logf("sender paced at %.0f messages/s", rate)

	began := time.Now()
	flowing := true // the sender was running when the last outage began
	for i, st := range steps {
		time.Sleep(st.up) // the plan's schedule, not a wait for an event
		if i == len(steps)-1 {
			flowing = !snd.exited()
		}
		t.Logf("outage %d/%d at %v: %s for %v", i+1, len(steps), time.Since(began).Round(time.Millisecond), st.kind, st.down.Round(time.Millisecond))
		switch st.kind {
		case peerDown:
			a.IP("link", "set", "va", "down")
			time.Sleep(st.down)
			a.IP("link", "set", "va", "up")
		case addrReplaced:
			s.IP("addr", "del", fmt.Sprintf("10.%d.0.%d/24", subnet, host), "dev", "vs")
			time.Sleep(st.down)
			subnet, host = 3-subnet, host+1
			s.IP("addr", "add", fmt.Sprintf("10.%d.0.%d/24", subnet, host), "dev", "vs")
			s.IP("route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", subnet))
		case routeRemoved:
			s.IP("route", "del", "default")
			time.Sleep(st.down)
			s.IP("route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", subnet))
		case serverReset:
			if err := unix.Kill(srv.cmd.Process.Pid, unix.SIGUSR1); err != nil {
				t.Fatalf("signal ackserver: %v", err)
			}
		}
	}
	last := time.Now()

	// One deadline for the whole remainder: the sender must finish by
	// itself; a hang here is the failure this test exists to catch.
	if !snd.wait(3 * time.Minute) {
		t.Fatalf("sender still running 3m after the last outage; output so far: %q", snd.stdout())
	}
	t.Logf("sender ended %v after the last outage", time.Since(last).Round(time.Millisecond))
	if err := unix.Kill(srv.cmd.Process.Pid, unix.SIGTERM); err != nil {
		t.Fatalf("signal ackserver: %v", err)
	}
	if !srv.wait(30 * time.Second) {
		t.Fatal("ackserver did not exit within 30s of SIGTERM")
	}

	out, sout := snd.stdout(), srv.stdout()
	t.Logf("sender: %s", strings.TrimSpace(out))
	t.Logf("ackserver: %s", strings.TrimSpace(sout))
	if snd.err != nil {
		t.Errorf("sender exited with %v, want status 0", snd.err)
	}
	if srv.err != nil {
		t.Errorf("ackserver exited with %v, want status 0", srv.err)
	}
	m := regexp.MustCompile(`(?m)^sent (\d+), acked (\d+), resent (\d+), held (\S+), dial-failures (\d+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("sender output %q lacks the summary line", out)
	}
	sent, acked, resent := atoi(t, m[1]), atoi(t, m[2]), atoi(t, m[3])
	ms := regexp.MustCompile(`(?m)^received (\d+) unique, (\d+) duplicates$`).FindStringSubmatch(sout)
	if ms == nil {
		t.Fatalf("ackserver output %q lacks the counts", sout)
	}
	unique, dups := atoi(t, ms[1]), atoi(t, ms[2])

	if sent != count || acked != count {
		t.Errorf("sender: sent %d, acked %d; want %d each", sent, acked, count)
	}
	if unique != count {
		t.Errorf("ackserver received %d unique messages, want %d: messages were lost", unique, count)
	}
	// Every duplicate the server saw is a copy the sender wrote again;
	// some resent copies die with their connection and never arrive.
	if dups > resent {
		t.Errorf("ackserver saw %d duplicates but the sender resent only %d", dups, resent)
	}
	// The Gate holds the sender while the link is down, so dials into an
	// outage are rare: at most one per outage (a dial racing the loss).
	// Without the Gate a sender redials with backoff all through them.
	if dialFailures := atoi(t, m[5]); dialFailures > outages {
		t.Errorf("%d failed dials through %d outages; the Gate should hold the sender instead", dialFailures, outages)
	}
	if !flowing {
		// Not a netmon failure, but the test would have proven less than
		// it claims: the last outages hit an idle link.
		t.Errorf("the sender had finished before the last outage began; the pacing (%.0f/s) is too fast", rate)
	}
}

// replaySeed returns a new seed for a random plan, or the one
// NETMON_E2E_SEED gives to replay a run, and logs it.
func replaySeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(envSeed); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: want an unsigned integer", envSeed, v)
		}
	}
	t.Logf("seed %d (replay with %s=%d)", seed, envSeed, seed)
	return seed
}

// lab makes the two namespaces of the topology drawn on
// TestIntegrationSenderSurvivesOutages: the sender's s (vs 10.1.0.2/24,
// default via 10.1.0.1) and the ackserver's a (va 10.1.0.1/24 and
// 10.2.0.1/24, the server's 10.9.0.1/32 on lo).
func lab(t *testing.T) (s, a *netnstest.NS) {
	t.Helper()
	s, a = netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, s, "vs", a, "va")
	a.IP("addr", "add", "10.1.0.1/24", "dev", "va")
	a.IP("addr", "add", "10.2.0.1/24", "dev", "va")
	a.IP("addr", "add", "10.9.0.1/32", "dev", "lo")
	s.IP("addr", "add", "10.1.0.2/24", "dev", "vs")
	s.IP("route", "add", "default", "via", "10.1.0.1")
	return s, a
}

// build compiles the example program name into dir and returns its path.
func build(t *testing.T, dir, name string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	pkg := "github.com/seed-a56be422/netmon/examples/" + name
	t.Logf("$ go build -o %s %s", out, pkg)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

func atoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("%q: %v", s, err)
	}
	return n
}

// proc is a program running in a namespace: its standard output is kept
// for the assertions, its standard error goes to the test log line by
// line.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{} // closed when the program has exited
	err  error         // its exit error; read after done

	mu    sync.Mutex // guards out, lines and want
	out   bytes.Buffer
	lines []string // stderr lines seen, for waitLine
	want  chan struct{}
}

// start runs path in ns; it is killed at the end of the test if it is
// still running.
func start(t *testing.T, ns *netnstest.NS, name, path string, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{}), want: make(chan struct{}, 1)}
	p.cmd = ns.Command(context.Background(), path, args...)
	p.cmd.Stdout = writerFunc(func(b []byte) {
		p.mu.Lock()
		p.out.Write(b)
		p.mu.Unlock()
	})
	p.cmd.Stderr = &lineWriter{fn: func(line string) {
		t.Log(name + ": " + line)
		p.mu.Lock()
		p.lines = append(p.lines, line)
		p.mu.Unlock()
		select {
		case p.want <- struct{}{}:
		default:
		}
	}}
	// Its own process group, so that cleanup can kill `ip netns exec` and
	// the program together; Pdeathsig covers a test binary that dies.
	p.cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	t.Logf("$ ip netns exec %s %s %s", ns.Name, path, strings.Join(args, " "))
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		_ = unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
		<-p.done // Wait also waits for the output copiers, so no log after the test
	})
	return p
}

// exited reports whether the program has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// wait waits up to d for the program to end and reports whether it did.
func (p *proc) wait(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-p.done:
		return true
	case <-t.C:
		return false
	}
}

// waitLine waits, with one deadline, for a line of standard error that
// contains sub.
func (p *proc) waitLine(t *testing.T, sub string, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		for _, l := range p.lines {
			if strings.Contains(l, sub) {
				p.mu.Unlock()
				return
			}
		}
		p.mu.Unlock()
		select {
		case <-p.want:
		case <-p.done:
			t.Fatalf("program exited (%v) before logging %q", p.err, sub)
		case <-deadline.C:
			t.Fatalf("no line containing %q within %v", sub, d)
		}
	}
}

// stdout returns what the program wrote to standard output so far.
func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// writerFunc is an io.Writer that hands every write to a function.
type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

// lineWriter splits what is written into lines for fn.
type lineWriter struct {
	fn  func(string)
	buf []byte
}

func (w *lineWriter) Write(b []byte) (int, error) {
	w.buf = append(w.buf, b...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			return len(b), nil
		}
		w.fn(string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
}
