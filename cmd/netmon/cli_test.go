package main

import (
	"bytes"
	"context"
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
		{name: "malformed glob", args: []string{"status", "--iface=wl["}, want: exitUsage, wantStderr: []string{`--iface "wl[": malformed glob`}},
		// An unknown interface names itself and lists what exists; every
		// namespace has lo.
		{name: "unknown interface", args: []string{"status", "--iface", "nosuch0"}, want: exitUsage, wantStderr: []string{`netmon status: --iface "nosuch0": no such interface; interfaces here: `, "lo"}},
		{name: "unknown interface watch", args: []string{"watch", "--iface", "nosuch0"}, want: exitUsage, wantStderr: []string{`--iface "nosuch0": no such interface`}},
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
// one-line usage error naming the flag, reported before watching starts.
func TestMetricsAddrInUse(t *testing.T) {
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stdout, stderr bytes.Buffer
	got := run(context.Background(), []string{"watch", "--sockerr=off", "--wifi=off", "--metrics-addr", ln.Addr().String()}, &stdout, &stderr)
	if got != exitUsage {
		t.Errorf("exit %d, want %d; stderr: %s", got, exitUsage, stderr.String())
	}
	want := "netmon watch: --metrics-addr " + ln.Addr().String() + ": listen tcp"
	if !strings.HasPrefix(stderr.String(), want) || !strings.Contains(stderr.String(), "address already in use") {
		t.Errorf("stderr = %q, want prefix %q and \"address already in use\"", stderr.String(), want)
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q, want nothing: watching must not start", stdout.String())
	}
}
