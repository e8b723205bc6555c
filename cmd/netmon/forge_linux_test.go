package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// envForge makes the test binary a process that names its thread with
// the name it gives, then fails a connect to the address it gives
// (TestHelperForgedName).
const envForge = "NETMON_TEST_FORGE"

// forgedName is a process name that would forge a second line and colour
// the terminal if written raw.
const forgedName = "ok\nFAKE\x1b[31m"

// TestHelperForgedName is not a test: run by TestIntegrationConsoleForgery
// inside a namespace, it sets its thread's comm to forgedName
// (prctl(PR_SET_NAME), as any local user may) and fails a connect on that
// thread.
func TestHelperForgedName(t *testing.T) {
	addr := os.Getenv(envForge)
	if addr == "" {
		t.Skip("a helper process of TestIntegrationConsoleForgery")
	}
	runtime.LockOSThread() // the name and the connect on one thread
	name := append([]byte(forgedName), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptrOf(name), 0, 0, 0); err != nil {
		fmt.Println("prctl:", err)
		return
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		fmt.Println("socket:", err)
		return
	}
	defer unix.Close(fd)
	var sa unix.SockaddrInet4
	copy(sa.Addr[:], []byte{10, 9, 0, 2})
	sa.Port = 1
	fmt.Println("connect:", unix.Connect(fd, &sa))
}

// TestIntegrationConsoleForgery: a process named "ok\nFAKE\x1b[31m" fails a
// connect while `netmon watch --sockerr-syscalls` writes console lines:
// the output has only the lines netmon meant, each starting with its
// timestamp, the name escaped in the message and in the fields.
func TestIntegrationConsoleForgery(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	p := newPair(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
	defer cancel()
	cmd, stdout, stderrDone := startNetmon(t, ctx, p.a, "watch", "--sockerr=on", "--sockerr-syscalls", "--wifi=off")
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		<-stderrDone
	}()
	lines := make(chan string, 256)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	lineStart := regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\t(INFO|WARN|ERROR|DEBUG)\t`)
	check := func(l string) {
		t.Logf("stdout: %q", l)
		if !lineStart.MatchString(l) {
			t.Errorf("a line netmon did not mean: %q", l)
		}
		if strings.ContainsRune(l, 0x1b) {
			t.Errorf("a raw escape sequence: %q", l)
		}
	}
	// Fail a connect every 200 ms until netmon reports one: the tracer
	// attaches a moment after the baseline.
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(waitTimeout)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("netmon's output ended")
			}
			check(l)
			if strings.Contains(l, "FAKE") {
				if !strings.Contains(l, `ok\nFAKE\x1b[31m[`) || !strings.Contains(l, `"comm": "ok\nFAKE\u001b[31m"`) {
					t.Errorf("the failed connect's line does not show the name escaped: %q", l)
				}
				return
			}
		case <-tick.C:
			h := p.a.Command(ctx, os.Args[0], "-test.run=^TestHelperForgedName$")
			h.Env = append(os.Environ(), envForge+"=10.9.0.2:1")
			if out, err := h.CombinedOutput(); err != nil || !strings.Contains(string(out), "connection refused") {
				t.Fatalf("helper: %v: %s", err, out)
			}
		case <-deadline:
			t.Fatalf("no sockerr line within %v", waitTimeout)
		}
	}
}

// uintptrOf returns the address of b's first byte for a system call.
func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(&b[0])) }
