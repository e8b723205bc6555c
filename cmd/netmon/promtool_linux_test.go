package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// promtool returns Debian's promtool, taken from the prometheus package
// without installing it (installing would start a Prometheus server):
// apt-get download, then dpkg-deb -x, cached by the package's version
// under $XDG_CACHE_HOME (or ~/.cache)/netmon-promtool.
func promtool(t *testing.T) string {
	t.Helper()
	for _, c := range []string{"apt-get", "apt-cache", "dpkg-deb"} {
		if _, err := exec.LookPath(c); err != nil {
			netnstest.Skip(t, "no "+c+": promtool comes from Debian's prometheus package")
		}
	}
	out, err := exec.Command("apt-cache", "policy", "prometheus").Output()
	if err != nil {
		t.Fatalf("apt-cache policy prometheus: %v", err)
	}
	var version string
	for _, l := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Candidate: "); ok && v != "(none)" {
			version = v
		}
	}
	if version == "" {
		netnstest.Skip(t, "Debian's package lists have no prometheus package (apt-get update)")
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "netmon-promtool", strings.NewReplacer("/", "_", ":", "_").Replace(version))
	bin := filepath.Join(dir, "usr", "bin", "promtool")
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), "tmp-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	get := exec.Command("apt-get", "download", "prometheus="+version)
	get.Dir = tmp
	if out, err := get.CombinedOutput(); err != nil {
		t.Fatalf("apt-get download prometheus=%s: %v: %s", version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(tmp, "prometheus_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("apt-get download left %v", debs)
	}
	x := filepath.Join(tmp, "x")
	if out, err := exec.Command("dpkg-deb", "-x", debs[0], x).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v: %s", err, out)
	}
	// Publish whole: a concurrent test process sees the directory with
	// promtool in it, or none.
	if err := os.Rename(x, dir); err != nil && !os.IsExist(err) {
		if _, serr := os.Stat(bin); serr != nil {
			t.Fatalf("publishing promtool: %v", err)
		}
	}
	return bin
}

// TestMetricsLint checks netmon's metrics as Prometheus's own tools do:
// client_golang's linter (the code promtool uses) and Debian's `promtool
// check metrics` on a scrape in the text format, both with the Gate's
// metrics on.
func TestMetricsLint(t *testing.T) {
	x := newMetrics(testSource())
	x.gate = true
	x.logDropped = func() uint64 { return 0 }
	x.apiDropped = func() uint64 { return 0 }
	problems, err := testutil.CollectAndLint(x)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}

	tool := promtool(t)
	rec := httptest.NewRecorder()
	metricsHandler(x.registry()).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "netmon_flaps_total") {
		t.Fatalf("scrape: %d %.200s", rec.Code, rec.Body.String())
	}
	cmd := exec.Command(tool, "check", "metrics")
	cmd.Stdin = rec.Body
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v:\n%s", err, out)
	}
}
