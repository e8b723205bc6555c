package main

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAcceptBacksOffOnEMFILE runs the program in a process limited to 16
// descriptors and connects more peers than it can take. Accept then fails
// with EMFILE for as long as the peers wait; the server must retry after
// 5 ms doubling to 1 s, not spin. Over a window of 3 s after the first
// failure we count the failed accepts (each is logged) and the process's
// CPU time: a spinning loop makes hundreds of thousands of attempts and
// burns a core.
func TestAcceptBacksOffOnEMFILE(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// ulimit in a shell, then exec: only the child gets the low limit.
	cmd := exec.Command("sh", "-c", `ulimit -n 16 && exec "$0"`, exe)
	cmd.Env = append(os.Environ(), envChild+"=1", envChildArgs+"=--listen\n127.0.0.1:0")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()

	lines := make(chan string, 1024)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	next := func(d time.Duration) (string, bool) {
		select {
		case l, ok := <-lines:
			return l, ok
		case <-time.After(d):
			return "", false
		}
	}
	var addr string
	for addr == "" {
		l, ok := next(30 * time.Second)
		if !ok {
			t.Fatal("no \"listening\" line within 30s")
		}
		if m := regexp.MustCompile(`"addr": "([^"]+)"`).FindStringSubmatch(l); m != nil && strings.Contains(l, "listening") {
			addr = m[1]
		}
	}
	var peers []net.Conn
	defer func() {
		for _, c := range peers {
			_ = c.Close()
		}
	}()
	for range 30 { // more than 16 descriptors: the backlog holds the rest
		c, err := net.DialTimeout("tcp", addr, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		peers = append(peers, c)
	}

	// The window starts at the first failure.
	var delays []string
	delayRE := regexp.MustCompile(`"in": "([^"]+)"`)
	for len(delays) == 0 {
		l, ok := next(10 * time.Second)
		if !ok {
			t.Fatal("no failed accept within 10s of 30 connections to a process with 16 descriptors")
		}
		if strings.Contains(l, "accept failed") {
			if !strings.Contains(l, "too many open files") {
				t.Fatalf("accept failed, but not with EMFILE: %s", l)
			}
			delays = append(delays, delayRE.FindStringSubmatch(l)[1])
		}
	}
	cpu0 := cpuTime(t, cmd.Process.Pid)
	const window = 3 * time.Second
	end := time.Now().Add(window)
	for {
		l, ok := next(time.Until(end))
		if !ok {
			break
		}
		if strings.Contains(l, "accept failed") {
			delays = append(delays, delayRE.FindStringSubmatch(l)[1])
		}
	}
	cpu := cpuTime(t, cmd.Process.Pid) - cpu0
	t.Logf("%d accept attempts failed with EMFILE in %v; retry delays %s; CPU time %v", len(delays), window, strings.Join(delays, " "), cpu)
	// 5+10+...+640 ms is 1.3 s, then 1 s each: about 11 in 3 s.
	if len(delays) > 20 {
		t.Errorf("%d failed accepts in %v: the server spins instead of backing off", len(delays), window)
	}
	if len(delays) < 5 || delays[0] != "5ms" || delays[len(delays)-1] != "1s" {
		t.Errorf("retry delays %q, want 5ms doubling to 1s", delays)
	}
	if cpu > 300*time.Millisecond {
		t.Errorf("%v of CPU in %v while out of descriptors", cpu, window)
	}

	// Once descriptors are free again, the waiting peers are served.
	for _, c := range peers[:len(peers)-1] {
		_ = c.Close()
	}
	peers = peers[len(peers)-1:]
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := peers[len(peers)-1].Write([]byte("r:1:1\n")); err != nil {
		t.Fatal(err)
	}
	_ = peers[len(peers)-1].SetReadDeadline(time.Now().Add(10 * time.Second))
	if l, err := bufio.NewReader(peers[len(peers)-1]).ReadString('\n'); err != nil || l != "ACK r:1:1\n" {
		t.Fatalf("the last peer, once descriptors were free: %q, %v", l, err)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("exit: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("no exit within 10s of SIGTERM")
	}
	for range lines {
	}
	if stdout.String() != "received 1 unique, 0 duplicates\n" {
		t.Errorf("stdout %q", stdout.String())
	}
}

// cpuTime returns the user and system time of process pid so far.
func cpuTime(t *testing.T, pid int) time.Duration {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the command name (which is in parentheses): utime and
	// stime are the 12th and 13th, in clock ticks (100 a second on Linux).
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return time.Duration(ut+st) * 10 * time.Millisecond
}
