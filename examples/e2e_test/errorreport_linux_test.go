//go:build linux

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestIntegrationErrorReport runs examples/errorreport against a peer
// with nothing listening, once with the network up (the send fails with
// ECONNREFUSED) and once without a default route (the send is held and
// the hold expires), and checks the report: the annotated error on
// standard output, and a JSON log line with the explanation and the
// snapshot's fields.
func TestIntegrationErrorReport(t *testing.T) {
	netnstest.RequirePrivileged(t)
	netnstest.RequireCommand(t, "ip", "iproute2")
	t.Parallel()
	bin := build(t, t.TempDir(), "errorreport")

	tests := []struct {
		name       string
		route      bool     // give the sender a default route
		args       []string // beyond --addr and --iface
		wantStdout string   // a regexp for the one line on standard output
		wantMsg    string
		wantNet    map[string]any // fields the "net" object must have
		wantErrno  string         // the explanation's errno, "" for no explanation
	}{
		{
			name:       "refused while up",
			route:      true,
			wantStdout: `^send telemetry: dial tcp 10\.9\.0\.1:7000: connect: connection refused \[netmon: up vs [0-9.]+m?s ago\]$`,
			wantMsg:    "telemetry send failed",
			wantNet:    map[string]any{"state": "up", "iface": "vs", "carrier": true},
			wantErrno:  "ECONNREFUSED",
		},
		{
			name:       "held while there is no default route",
			route:      false,
			args:       []string{"--hold", "300ms"},
			wantStdout: `^send telemetry: gate: held [0-9.]+m?s: no-default-route on vs: .*\[netmon: down no-default-route vs [0-9.]+m?s ago\]$`,
			wantMsg:    "telemetry send held too long",
			wantNet:    map[string]any{"state": "down", "reason": "no-default-route", "iface": "vs"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, a := netnstest.New(t), netnstest.New(t)
			netnstest.Veth(t, s, "vs", a, "va")
			a.IP("addr", "add", "10.1.0.1/24", "dev", "va")
			a.IP("addr", "add", "10.9.0.1/32", "dev", "lo")
			s.IP("addr", "add", "10.1.0.2/24", "dev", "vs")
			if tt.route {
				s.IP("route", "add", "default", "via", "10.1.0.1")
			}

			ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
			defer cancel()
			args := append([]string{"--addr", "10.9.0.1:7000", "--iface", "vs"}, tt.args...)
			cmd := s.Command(ctx, bin, args...)
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			t.Logf("$ ip netns exec %s %s %s", s.Name, bin, strings.Join(args, " "))
			err := cmd.Run()
			t.Logf("stdout:\n%s\nstderr:\n%s", stdout.String(), stderr.String())
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 {
				t.Fatalf("errorreport: %v, want exit status 1 (a reported failure)", err)
			}
			if out := strings.TrimSpace(stdout.String()); !regexp.MustCompile(tt.wantStdout).MatchString(out) {
				t.Errorf("stdout %q does not match %q", out, tt.wantStdout)
			}

			var report map[string]any
			for line := range strings.Lines(stderr.String()) {
				var m map[string]any
				if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == tt.wantMsg {
					report = m
				}
			}
			if report == nil {
				t.Fatalf("no JSON log line with msg %q on stderr", tt.wantMsg)
			}
			if report["level"] != "error" || report["error"] != strings.TrimSpace(stdout.String()) {
				t.Errorf("log line: level %v, error %q; want error, and the annotated error printed on stdout", report["level"], report["error"])
			}
			net, _ := report["net"].(map[string]any)
			for k, v := range tt.wantNet {
				if net[k] != v {
					t.Errorf("net.%s = %v, want %v (net: %v)", k, net[k], v, net)
				}
			}
			if tt.wantErrno != "" {
				ex, _ := report["explanation"].(map[string]any)
				if ex["errno"] != tt.wantErrno || ex["class"] != "connection" {
					t.Errorf("explanation %v, want errno %s, class connection", ex, tt.wantErrno)
				}
			}
		})
	}
}
