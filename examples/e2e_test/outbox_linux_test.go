//go:build linux

package e2e

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// TestIntegrationOutboxSurvivesKills is the outbox's promise on the real
// network: examples/sender --outbox in a namespace, sending through the
// link of TestIntegrationSenderSurvivesOutages, is SIGKILLed at random
// points (some of them during an outage) and started again with the same
// flags each time, while the link goes down, the address moves and the
// route goes. Every message 1..count must reach the server, under one
// epoch, and the last run must end by itself with status 0.
func TestIntegrationOutboxSurvivesKills(t *testing.T) {
	netnstest.RequirePrivileged(t)
	netnstest.RequireCommand(t, "ip", "iproute2")
	t.Parallel()

	count, kills := 3000, 6
	seed := replaySeed(t)
	r := rand.New(rand.NewPCG(seed, seed^0x51ed270b27a0f3d1))
	steps := plan(r, 4)
	// Kills at random points: between the outages, and during some.
	type step struct {
		outage
		kill       bool // a SIGKILL instead of an outage
		killInside bool // a SIGKILL in the middle of the outage
	}
	var sched []step
	for _, o := range steps {
		sched = append(sched, step{outage: o, killInside: o.down > 0 && r.IntN(2) == 0})
	}
	for len(sched) < len(steps)+kills {
		sched = append(sched, step{outage: outage{up: 300*time.Millisecond + time.Duration(r.Int64N(int64(1200*time.Millisecond)))}, kill: true})
	}
	r.Shuffle(len(sched), func(i, j int) { sched[i], sched[j] = sched[j], sched[i] })
	var total time.Duration
	for _, s := range sched {
		total += s.up + s.down
	}
	rate := float64(count) / total.Seconds()

	bin := t.TempDir()
	sender := build(t, bin, "sender")
	ackserver := build(t, bin, "ackserver")
	dir := t.TempDir()

	s, a := lab(t)
	subnet, host := 1, 2

	srv := start(t, a, "ackserver", ackserver, "--listen", "10.9.0.1:7000")
	srv.waitLine(t, "listening", 30*time.Second)
	args := []string{"--addr", "10.9.0.1:7000", "--count", strconv.Itoa(count), "--id", "robot",
		"--rate", strconv.FormatFloat(rate, 'f', 1, 64), "--ack-timeout", "2s", "--outbox", dir}
	runs := 1
	snd := start(t, s, "sender#1", sender, args...)
	t.Logf("sender paced at %.0f messages/s", rate)
	kill := func() {
		if snd.exited() {
			t.Fatalf("sender #%d exited before it was killed (%v): %q", runs, snd.err, snd.stdout())
		}
		_ = unix.Kill(-snd.cmd.Process.Pid, unix.SIGKILL)
		if !snd.wait(10 * time.Second) {
			t.Fatal("sender did not die within 10s of SIGKILL")
		}
		t.Logf("killed sender #%d: %q", runs, strings.TrimSpace(snd.stdout()))
		runs++
		snd = start(t, s, fmt.Sprintf("sender#%d", runs), sender, args...)
	}
	var epochs []string
	epochOf := func(p *proc) {
		m := regexp.MustCompile(`(?m)^sending robot:(\d+):1 `).FindStringSubmatch(p.stdout())
		if m != nil {
			epochs = append(epochs, m[1])
		}
	}

	for i, st := range sched {
		time.Sleep(st.up) // the plan's schedule, not a wait for an event
		what := st.kind
		if st.kill {
			what = "SIGKILL"
		}
		t.Logf("step %d/%d: %s for %v", i+1, len(sched), what, st.down.Round(time.Millisecond))
		half := func() {
			if st.killInside {
				time.Sleep(st.down / 2)
				epochOf(snd)
				kill()
				time.Sleep(st.down - st.down/2)
			} else {
				time.Sleep(st.down)
			}
		}
		switch {
		case st.kill:
			epochOf(snd)
			kill()
		case st.kind == peerDown:
			a.IP("link", "set", "va", "down")
			half()
			a.IP("link", "set", "va", "up")
		case st.kind == addrReplaced:
			s.IP("addr", "del", fmt.Sprintf("10.%d.0.%d/24", subnet, host), "dev", "vs")
			half()
			subnet, host = 3-subnet, host+1
			s.IP("addr", "add", fmt.Sprintf("10.%d.0.%d/24", subnet, host), "dev", "vs")
			s.IP("route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", subnet))
		case st.kind == routeRemoved:
			s.IP("route", "del", "default")
			half()
			s.IP("route", "add", "default", "via", fmt.Sprintf("10.%d.0.1", subnet))
		case st.kind == serverReset:
			if err := unix.Kill(srv.cmd.Process.Pid, unix.SIGUSR1); err != nil {
				t.Fatalf("signal ackserver: %v", err)
			}
		}
	}
	if !snd.wait(3 * time.Minute) {
		t.Fatalf("sender #%d still running 3m after the last step; output so far: %q", runs, snd.stdout())
	}
	epochOf(snd)
	if err := unix.Kill(srv.cmd.Process.Pid, unix.SIGTERM); err != nil {
		t.Fatalf("signal ackserver: %v", err)
	}
	if !srv.wait(30 * time.Second) {
		t.Fatal("ackserver did not exit within 30s of SIGTERM")
	}
	out, sout := snd.stdout(), srv.stdout()
	t.Logf("sender #%d (last): %s", runs, strings.ReplaceAll(strings.TrimSpace(out), "\n", "; "))
	t.Logf("ackserver: %s", strings.TrimSpace(sout))
	if snd.err != nil {
		t.Errorf("the last sender exited with %v, want status 0", snd.err)
	}
	for _, e := range epochs {
		if e != epochs[0] {
			t.Errorf("runs used epochs %v; want one (the outbox's) for all %d runs", epochs, runs)
			break
		}
	}
	ms := regexp.MustCompile(`(?m)^received (\d+) unique, (\d+) duplicates$`).FindStringSubmatch(sout)
	if ms == nil {
		t.Fatalf("ackserver output %q lacks the counts", sout)
	}
	if unique := atoi(t, ms[1]); unique != count {
		t.Errorf("ackserver received %d unique messages over %d runs of the sender, want %d: messages were lost", unique, runs, count)
	}
	t.Logf("%d runs (%d SIGKILLs), %s duplicates at the server", runs, runs-1, ms[2])
}
