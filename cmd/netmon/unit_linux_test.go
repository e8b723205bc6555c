package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// maxExposure is the most `systemd-analyze security` may score the unit
// (0 is the tightest, 10 the loosest); it scored 2.3 before issue 20's
// hardening, 2.0 after, and 1.7 after issue 27's (which added CAP_NET_RAW
// and AF_PACKET for the neighbour probe; the unit's comment says what each
// remaining point costs).
const maxExposure = 1.7

// TestSystemdUnit checks contrib/netmon.service with systemd's own tools:
// `systemd-analyze verify` finds nothing wrong (the binary path replaced
// by this build's), and `systemd-analyze security` scores its exposure at
// most maxExposure.
func TestSystemdUnit(t *testing.T) {
	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		netnstest.Skip(t, "no systemd-analyze (Debian package systemd)")
	}
	unit, err := os.ReadFile("../../contrib/netmon.service")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "netmon.service")
	text := strings.ReplaceAll(string(unit), "/usr/local/bin/netmon", buildNetmon(t))
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(sa, "verify", path).CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v: %s", err, out)
	}
	out, err := exec.Command(sa, "security", "--offline=true", path).CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v: %s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for netmon.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no exposure level in %s", out)
	}
	score, _ := strconv.ParseFloat(string(m[1]), 64)
	t.Logf("systemd-analyze security: exposure %.1f", score)
	if score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
}
