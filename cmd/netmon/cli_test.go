package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"testing"
)

// TestRunExitCodes pins the exit codes and the first line of the messages
// for bad input, which need no privileges: usage errors exit 2 with a
// message on stderr; -h exits 0.
func TestRunExitCodes(t *testing.T) {
	tests := []struct {
		name       string
		args       []string
		want       int
		wantStderr []string // substrings
		wantStdout []string
	}{
		{name: "no command", args: nil, want: exitUsage, wantStderr: []string{"usage: netmon COMMAND"}},
		{name: "unknown command", args: []string{"wach"}, want: exitUsage, wantStderr: []string{`unknown command "wach"`, "usage: netmon COMMAND"}},
		{name: "help", args: []string{"-h"}, want: exitOK, wantStdout: []string{"watch", "status", "wait-online", "version"}},
		{name: "watch help", args: []string{"watch", "-h"}, want: exitOK, wantStderr: []string{"-metrics-addr ADDR", "-log-format console|json", "-iface NAME"}},
		{name: "status help", args: []string{"status", "-h"}, want: exitOK, wantStderr: []string{"-json", "Exit status: 0 when traffic"}},
		{name: "unknown flag", args: []string{"watch", "--bogus"}, want: exitUsage, wantStderr: []string{"flag provided but not defined: -bogus", "usage: netmon watch"}},
		{name: "malformed duration", args: []string{"wait-online", "--timeout", "5 parsecs"}, want: exitUsage, wantStderr: []string{`invalid value "5 parsecs" for flag -timeout`}},
		{name: "negative timeout", args: []string{"wait-online", "--timeout=-1s"}, want: exitUsage, wantStderr: []string{"--timeout -1s: want a duration >= 0"}},
		{name: "zero wifi poll", args: []string{"watch", "--wifi-poll=0s"}, want: exitUsage, wantStderr: []string{"--wifi-poll 0s: want a positive duration"}},
		{name: "bad choice", args: []string{"watch", "--sockerr=maybe"}, want: exitUsage, wantStderr: []string{`invalid value "maybe" for flag -sockerr: want one of auto, on, off`}},
		{name: "bad log format", args: []string{"watch", "--log-format=xml"}, want: exitUsage, wantStderr: []string{"want one of console, json"}},
		{name: "bad log level", args: []string{"watch", "--log-level=loud"}, want: exitUsage, wantStderr: []string{`invalid value "loud" for flag -log-level`}},
		{name: "stray argument", args: []string{"status", "eth0"}, want: exitUsage, wantStderr: []string{`unexpected argument "eth0"`}},
		{name: "empty iface", args: []string{"status", "--iface="}, want: exitUsage, wantStderr: []string{"empty value"}},
		{name: "negative stabilize", args: []string{"watch", "--stabilize=-1s"}, want: exitUsage,
			wantStderr: []string{`invalid value "-1s" for flag -stabilize: want a duration >= 0`}},
		{name: "bad target", args: []string{"status", "--target", "10.0.0.300"}, want: exitUsage,
			wantStderr: []string{`invalid value "10.0.0.300" for flag -target: target "10.0.0.300": not a valid IP address`}},
		{name: "target port", args: []string{"wait-online", "--target", "server:99999"}, want: exitUsage,
			wantStderr: []string{`port "99999" is not a number from 1 to 65535`}},
		{name: "zoned target", args: []string{"watch", "--target", "fe80::1%eth0"}, want: exitUsage,
			wantStderr: []string{"an address with a zone (link-local) has no routed path"}},
		{name: "target twice", args: []string{"status", "--target", "10.1.0.5", "--target", "10.1.0.5"}, want: exitUsage,
			wantStderr: []string{`target "10.1.0.5" given twice`}},
		{name: "too many targets", args: append([]string{"status"}, manyTargets(65)...), want: exitUsage,
			wantStderr: []string{`invalid value "10.0.0.65" for flag -target: more than 64 targets`}},
		{name: "malformed glob", args: []string{"status", "--iface=wl["}, want: exitUsage, wantStderr: []string{`--iface "wl[": malformed glob`}},
		// An unknown interface names itself and lists what exists; every
		// namespace has lo.
		{name: "unknown interface", args: []string{"status", "--iface", "nosuch0"}, want: exitUsage, wantStderr: []string{`netmon status: --iface "nosuch0": no such interface; interfaces here: `, "lo"}},
		{name: "unknown interface watch", args: []string{"watch", "--iface", "nosuch0"}, want: exitUsage, wantStderr: []string{`--iface "nosuch0": no such interface`}},
		{name: "sockerr flags help", args: []string{"watch", "-h"}, want: exitOK, wantStderr: []string{"-sockerr-cgroup PATH", "-sockerr-dst PREFIX", "-sockerr-comm NAME"}},
		{name: "bad prefix length", args: []string{"watch", "--sockerr-dst", "10.0.0.0/33"}, want: exitUsage,
			wantStderr: []string{`invalid value "10.0.0.0/33" for flag -sockerr-dst: want an IP prefix such as 10.0.0.0/8 or 2001:db8::/32, or an address`, "usage: netmon watch"}},
		{name: "dst not an address", args: []string{"watch", "--sockerr-dst=robot.local"}, want: exitUsage,
			wantStderr: []string{`invalid value "robot.local" for flag -sockerr-dst: want an IP prefix`}},
		{name: "dst with zone", args: []string{"watch", "--sockerr-dst", "fe80::1%eth0"}, want: exitUsage,
			wantStderr: []string{`invalid value "fe80::1%eth0" for flag -sockerr-dst: want an IP prefix`, "without a zone"}},
		{name: "second dst bad", args: []string{"watch", "--sockerr-dst", "192.0.2.1", "--sockerr-dst", "2001:db8::/129"}, want: exitUsage,
			wantStderr: []string{`invalid value "2001:db8::/129" for flag -sockerr-dst`}},
		// The kernel's comm holds 15 bytes: a longer name would never
		// match, so it fails the flag instead of the tracer's load.
		{name: "comm too long", args: []string{"watch", "--sockerr-comm", "robot-telemetry1"}, want: exitUsage,
			wantStderr: []string{`invalid value "robot-telemetry1" for flag -sockerr-comm: want a process name (the kernel's comm) of 1 to 15 bytes, got 16 bytes`}},
		{name: "comm empty", args: []string{"watch", "--sockerr-comm="}, want: exitUsage, wantStderr: []string{`for flag -sockerr-comm: want a process name`}},
		{name: "zero log interval", args: []string{"watch", "--sockerr-log-interval=0s"}, want: exitUsage,
			wantStderr: []string{"--sockerr-log-interval 0s: want a positive duration"}},
		{name: "empty cgroup", args: []string{"watch", "--sockerr-cgroup="}, want: exitUsage, wantStderr: []string{`invalid value "" for flag -sockerr-cgroup: empty value`}},
		// Cgroup paths are checked after parsing: one line naming the flag
		// and the path, before watching starts.
		{name: "missing cgroup", args: []string{"watch", "--sockerr-cgroup", "/nonexistent/robot.service"}, want: exitUsage,
			wantStderr: []string{"netmon watch: --sockerr-cgroup /nonexistent/robot.service: " + onLinux("no such file or directory")}},
		{name: "not a cgroup", args: []string{"watch", "--sockerr-cgroup", "/"}, want: exitUsage,
			wantStderr: []string{"netmon watch: --sockerr-cgroup /: " + onLinux("not a cgroup v2 directory")}},
		{name: "version", args: []string{"version"}, want: exitOK, wantStdout: []string{"netmon ", "go1."}},
		{name: "version stray", args: []string{"version", "x"}, want: exitUsage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			got := run(context.Background(), tt.args, &stdout, &stderr)
			if got != tt.want {
				t.Errorf("run(%q) = %d, want %d\nstderr: %s", tt.args, got, tt.want, stderr.String())
			}
			for _, s := range tt.wantStderr {
				if !strings.Contains(stderr.String(), s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr.String())
				}
			}
			for _, s := range tt.wantStdout {
				if !strings.Contains(stdout.String(), s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout.String())
				}
			}
		})
	}
}

// TestUnknownInterfaceIsOneLine checks that bad input after parsing gives
// one line, not the flag list that would bury it.
func TestUnknownInterfaceIsOneLine(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if got := run(context.Background(), []string{"status", "--iface", "nosuch0"}, &stdout, &stderr); got != exitUsage {
		t.Fatalf("exit %d, want %d", got, exitUsage)
	}
	if n := strings.Count(stderr.String(), "\n"); n != 1 {
		t.Errorf("stderr has %d lines, want 1:\n%s", n, stderr.String())
	}
}

// TestMetricsAddrInUse checks that an address that cannot be bound is a
// one-line failure to run (exit 1: the flag's value is well formed)
// naming the flag, reported before watching starts; a malformed one is a
// usage error (exit 2).
func TestMetricsAddrInUse(t *testing.T) {
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	got := run(context.Background(), []string{"watch", "--sockerr=off", "--wifi=off", "--metrics-addr", ln.Addr().String()}, &stdout, &stderr)
	if got != exitFail {
		t.Errorf("exit %d, want %d; stderr: %s", got, exitFail, stderr.String())
	}
	var e2, o2 bytes.Buffer
	if got := run(context.Background(), []string{"watch", "--sockerr=off", "--wifi=off", "--metrics-addr", "127.0.0.1"}, &o2, &e2); got != exitUsage {
		t.Errorf("--metrics-addr without a port: exit %d, want %d; stderr: %s", got, exitUsage, e2.String())
	}
	want := "netmon watch: --metrics-addr " + ln.Addr().String() + ": listen tcp"
	if !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("stderr = %q, want prefix %q and \"address already in use\"", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing: watching must not start", stdout.String())
	}
}

// onLinux returns s on Linux and "" elsewhere, for the part of a message
// that only Linux gives (other systems have no cgroups).
func onLinux(s string) string {
	if runtime.GOOS != "linux" {
		return ""
	}
	return s
}

func TestPrefixListFlag(t *testing.T) {
	var l prefixList
	for _, v := range []string{"10.0.0.0/8", "192.0.2.1", "2001:db8::/32", "2001:db8::1", "10.1.2.3/16"} {
		if err := l.Set(v); err != nil {
			t.Fatalf("Set(%q): %v", v, err)
		}
	}
	want := "10.0.0.0/8,192.0.2.1/32,2001:db8::/32,2001:db8::1/128,10.1.2.3/16"
	if got := l.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// manyTargets returns n --target flags, 10.0.0.1 and up.
func manyTargets(n int) []string {
	var args []string
	for i := 1; i <= n; i++ {
		args = append(args, "--target", fmt.Sprintf("10.0.0.%d", i))
	}
	return args
}

// TestStatusUnreadable: status exits 3 when it cannot read the network's
// state (here: the Monitor stops before its first read), 1 when
// interrupted.
func TestStatusExitCodes(t *testing.T) {
	var stdout, stderr bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := run(ctx, []string{"status", "--wifi=off"}, &stdout, &stderr); got != exitFail {
		t.Errorf("interrupted status: exit %d, want %d; stderr %q", got, exitFail, stderr.String())
	}
}

// TestStatusUnreadable: with no file descriptor left for a netlink socket
// (RLIMIT_NOFILE 4: the three standard streams and the runtime's epoll),
// status cannot read the network and exits 3, not 1 (down) or 2 (usage).
func TestStatusUnreadable(t *testing.T) {
	bin := buildNetmon(t)
	cmd := exec.Command("sh", "-c", `ulimit -n 4 && exec "$0" status`, bin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitUnreadable {
		t.Fatalf("status without descriptors: %v, want exit %d; stderr %q", err, exitUnreadable, stderr.String())
	}
	if !strings.Contains(stderr.String(), "too many open files") {
		t.Errorf("stderr %q does not say why", stderr.String())
	}
}
