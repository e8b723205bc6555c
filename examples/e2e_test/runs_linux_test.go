//go:build linux

package e2e

import (
	"bufio"
	"context"
	"io"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRestartsAndTwoRobots is the bug a new user met first: one ackserver,
// examples/sender --count 300 run three times (a robot that restarted
// twice), and a second robot (another --id) sending at the same time as
// the third run. Every message of every run must be kept and none counted
// twice: "received 1200 unique, D duplicates", D at most what the senders
// resent after the server reset their connections. Before SEQ carried the
// sender's ID and run, the server printed "received 300 unique, 900
// duplicates": 900 real messages acknowledged and thrown away.
//
// The real binaries, on loopback, no namespaces: it needs no privileges.
func TestRestartsAndTwoRobots(t *testing.T) {
	bin := t.TempDir()
	sender := build(t, bin, "sender")
	ackserver := build(t, bin, "ackserver")

	srv := exec.Command(ackserver, "--listen", "127.0.0.1:0")
	var srvOut strings.Builder
	srv.Stdout = &srvOut
	stderr, err := srv.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	srv.SysProcAttr = &unix.SysProcAttr{Pdeathsig: unix.SIGKILL}
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	srvDone := make(chan error, 1)
	t.Cleanup(func() { _ = srv.Process.Kill(); <-srvDone })
	addrC := make(chan string, 1)
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`listening\s.*"addr": "([^"]+)"`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				addrC <- m[1]
			}
			t.Log("ackserver: " + sc.Text())
		}
	}()
	go func() { <-logDone; srvDone <- srv.Wait() }()
	var addr string
	select {
	case addr = <-addrC:
	case <-time.After(30 * time.Second):
		t.Fatal("ackserver did not log \"listening\" within 30s")
	}

	send := func(id string, extra ...string) (epoch string, sent, acked, resent int) {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
		defer cancel()
		args := append([]string{"--addr", addr, "--count", "300", "--id", id, "--monitor=false", "--log-level", "warn"}, extra...)
		out, err := exec.CommandContext(ctx, sender, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("sender --id %s: %v\n%s", id, err, out)
		}
		m := regexp.MustCompile(`(?m)^sending ` + id + `:(\d+):1 to ` + id + `:\d+:300\nsent (\d+), acked (\d+), resent (\d+), held \S+, dial-failures \d+$`).FindStringSubmatch(string(out))
		if m == nil {
			t.Fatalf("sender --id %s printed %q", id, out)
		}
		t.Logf("sender --id %s: %s", id, strings.ReplaceAll(strings.TrimSpace(string(out)), "\n", "; "))
		return m[1], atoi(t, m[2]), atoi(t, m[3]), atoi(t, m[4])
	}

	epochs := map[string]bool{}
	resentTotal := 0
	for run := 1; run <= 2; run++ {
		e, sent, acked, resent := send("robot-a")
		epochs[e] = true
		resentTotal += resent
		if sent != 300 || acked != 300 {
			t.Errorf("robot-a run %d: sent %d, acked %d", run, sent, acked)
		}
	}
	// The third run and the second robot at once, paced (300 messages in
	// about a second), while the server resets every connection every
	// 100 ms: messages are resent, the server sees duplicates, and must
	// still count each message once.
	stopResets := make(chan struct{})
	resets := 0
	var resetter sync.WaitGroup
	resetter.Go(func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stopResets:
				return
			case <-tick.C:
				if srv.Process.Signal(unix.SIGUSR1) == nil {
					resets++
				}
			}
		}
	})
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, id := range []string{"robot-a", "robot-b"} {
		wg.Go(func() {
			_, sent, acked, resent := send(id, "--rate", "300", "--ack-timeout", "1s")
			if sent != 300 || acked != 300 {
				t.Errorf("%s: sent %d, acked %d", id, sent, acked)
			}
			mu.Lock()
			resentTotal += resent
			mu.Unlock()
		})
	}
	wg.Wait()
	close(stopResets)
	resetter.Wait()
	t.Logf("%d resets during the last two runs; %d messages resent in all", resets, resentTotal)
	if len(epochs) != 2 {
		t.Errorf("robot-a's first two runs used epochs %v: want two different ones", epochs)
	}

	// A sender of the protocol before tokens is told what is valid.
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.WriteString(c, "17 hello\n"); err != nil {
		t.Fatal(err)
	}
	answer, err := bufio.NewReader(c).ReadString('\n')
	c.Close()
	if err != nil || !strings.HasPrefix(answer, "ERR ") || !strings.Contains(answer, "ID:EPOCH:N") {
		t.Errorf("a bare number got %q, %v; want an ERR line saying what is valid", answer, err)
	}
	t.Logf("a bare number: %s", strings.TrimSpace(answer))

	if err := srv.Process.Signal(unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-srvDone:
		srvDone <- err
		if err != nil {
			t.Errorf("ackserver exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("ackserver did not exit within 30s of SIGTERM")
	}
	t.Logf("ackserver: %s", strings.TrimSpace(srvOut.String()))
	m := regexp.MustCompile(`(?m)^received (\d+) unique, (\d+) duplicates$`).FindStringSubmatch(srvOut.String())
	if m == nil {
		t.Fatalf("ackserver printed %q", srvOut.String())
	}
	// Every duplicate is a copy a sender wrote again.
	if unique, dups := atoi(t, m[1]), atoi(t, m[2]); unique != 1200 || dups > resentTotal {
		t.Errorf("received %d unique, %d duplicates; want 1200 and at most the %d resent", unique, dups, resentTotal)
	}
}
