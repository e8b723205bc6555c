package dhcpwatch

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// startFiles runs a LeaseFiles watcher until the test ends and returns it
// with the observed log.
func startFiles(t *testing.T, patterns []FilePattern) (*LeaseFiles, *observer.ObservedLogs) {
	t.Helper()
	core, logs := observer.New(zap.WarnLevel)
	w, err := NewLeaseFiles(FilesConfig{Patterns: patterns, Logger: zap.New(core), MaxFileSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want context.Canceled", err)
		}
	})
	return w, logs
}

// nextLease waits for the next lease, with one deadline for the wait.
func nextLease(t *testing.T, w *LeaseFiles, what string) Lease {
	t.Helper()
	select {
	case l, ok := <-w.Events():
		if !ok {
			t.Fatalf("waiting for %s: channel closed", what)
		}
		return l
	case <-time.After(10 * time.Second):
		t.Fatalf("waiting for %s: no lease within 10s", what)
	}
	return Lease{}
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

const dhclientSample = `lease {
  interface "wlan0";
  fixed-address 10.1.2.%s;
  option subnet-mask 255.255.0.0;
  option dhcp-lease-time 600;
  expire epoch 1795075800;
}
`

func TestLeaseFilesReadsExistingAndChangedFiles(t *testing.T) {
	dir := t.TempDir()
	dh := filepath.Join(dir, "dhclient.wlan0.leases")
	appendFile(t, dh, strings.Replace(dhclientSample, "%s", "3", 1))
	nd := filepath.Join(dir, "netif", "leases") // created later
	w, logs := startFiles(t, []FilePattern{
		{Glob: filepath.Join(dir, "dhclient*.leases"), Kind: Dhclient},
		{Glob: filepath.Join(nd, "*"), Kind: Networkd},
	})

	if l := nextLease(t, w, "the existing file"); l.Addr != netip.MustParsePrefix("10.1.2.3/16") || l.Source != dh {
		t.Errorf("first lease %+v: want 10.1.2.3/16 from %s", l, dh)
	}

	// dhclient appends a block when it renews; a half-written block is
	// ignored until it is complete.
	appendFile(t, dh, "lease {\n  interface \"wlan0\";\n  fixed-address 10.1.2.4;\n")
	appendFile(t, dh, "  option dhcp-lease-time 600;\n  expire epoch 1795075800;\n}\n")
	if l := nextLease(t, w, "the appended block"); l.Addr.Addr() != netip.MustParseAddr("10.1.2.4") {
		t.Errorf("lease after append %+v: want 10.1.2.4", l)
	}

	// networkd's directory appears later and its file arrives by rename.
	if err := os.MkdirAll(nd, 0o755); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp-lease")
	if err := os.WriteFile(tmp, []byte("ADDRESS=192.168.5.5\nLIFETIME=10min\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(nd, "7")); err != nil {
		t.Fatal(err)
	}
	if l := nextLease(t, w, "the networkd file"); l.Index != 7 || l.Length != 10*time.Minute {
		t.Errorf("networkd lease %+v: want ifindex 7 and a 10min lease", l)
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d warnings for good files: %v", n, logs.All())
	}
}

func TestLeaseFilesWarnsAboutBadFilesAndGoesOn(t *testing.T) {
	dir := t.TempDir()
	glob := filepath.Join(dir, "*.lease")
	// Present at start: garbage, too big, and not a regular file.
	garbage := filepath.Join(dir, "garbage.lease")
	if err := os.WriteFile(garbage, []byte("\x00\xff not a DHCP message"), 0o644); err != nil {
		t.Fatal(err)
	}
	huge := filepath.Join(dir, "huge.lease")
	if err := os.WriteFile(huge, make([]byte, 5000), 0o644); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo.lease")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	w, logs := startFiles(t, []FilePattern{{Glob: glob, Kind: Dhcpcd}})

	good := filepath.Join(dir, "eth0.lease")
	if err := os.WriteFile(good, mustRead(t, "dhcpcd-dwc2.lease"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l := nextLease(t, w, "the good file"); l.Iface != "eth0" || l.Length != 2*time.Minute {
		t.Errorf("lease %+v: want eth0 with a 2m lease", l)
	}
	// A truncated rewrite of a good file is a warning too.
	if err := os.WriteFile(good, mustRead(t, "dhcpcd-dwc2.lease")[:100], 0o644); err != nil {
		t.Fatal(err)
	}
	// The watcher still runs: a new good file arrives.
	if err := os.WriteFile(filepath.Join(dir, "eth1.lease"), mustRead(t, "dhcpcd-dwc2.lease"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l := nextLease(t, w, "a second good file"); l.Iface != "eth1" {
		t.Errorf("lease %+v: want eth1", l)
	}
	warned := map[string]bool{}
	for _, e := range logs.All() {
		warned[e.ContextMap()["file"].(string)] = true
	}
	for _, f := range []string{garbage, huge, fifo, good} {
		if !warned[f] {
			t.Errorf("no warning naming %s; warnings: %v", f, logs.All())
		}
	}
}

// TestLeaseFilesWarnsAboutUnreadableFiles checks files that match a pattern
// but cannot be opened: each is one warning naming it, with the error, and
// the other leases still arrive, at start and later. The watcher opens
// files with O_NOFOLLOW, so a symbolic link fails with ELOOP even when it
// points to a good lease file, and so does a dangling one. A mode-000 file
// stops only users without CAP_DAC_OVERRIDE: the tests run as root, for
// whom it is read like any other (as dhcpcd's 0640 root files are).
func TestLeaseFilesWarnsAboutUnreadableFiles(t *testing.T) {
	dir := t.TempDir()
	good := mustRead(t, "dhcpcd-dwc2.lease")
	target := filepath.Join(dir, "target.data") // outside the pattern
	if err := os.WriteFile(target, good, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link.lease")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	dangling := filepath.Join(dir, "dangling.lease")
	if err := os.Symlink(filepath.Join(dir, "nowhere"), dangling); err != nil {
		t.Fatal(err)
	}
	locked := filepath.Join(dir, "locked.lease")
	if err := os.WriteFile(locked, good, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(locked, 0); err != nil {
		t.Fatal(err)
	}
	_, err := os.ReadFile(locked)
	lockedReadable := err == nil // as root
	// Good files; the initial scan reads files in name order, so zz's
	// lease says that it is over.
	for _, n := range []string{"eth0.lease", "zz.lease"} {
		if err := os.WriteFile(filepath.Join(dir, n), good, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w, logs := startFiles(t, []FilePattern{{Glob: filepath.Join(dir, "*.lease"), Kind: Dhcpcd}})
	var got []string
	for len(got) == 0 || got[len(got)-1] != "zz" {
		got = append(got, nextLease(t, w, "the leases of the initial scan").Iface)
	}

	// A link that appears while the watcher runs (named to sort before
	// eth1.lease, so that it is read first even in one batch of events),
	// then a good file.
	late := filepath.Join(dir, "a-late.lease")
	if err := os.Symlink(target, late); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "eth1.lease"), good, 0o644); err != nil {
		t.Fatal(err)
	}
	for got[len(got)-1] != "eth1" {
		got = append(got, nextLease(t, w, "the lease of eth1.lease").Iface)
	}
	want := []string{"eth0", "zz", "eth1"}
	if lockedReadable {
		want = []string{"eth0", "locked", "zz", "eth1"}
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("leases from %v, want %v (mode-000 file readable: %v)", got, want, lockedReadable)
	}

	warned := map[string]error{}
	for _, e := range logs.All() {
		if e.Message != "dhcpwatch: lease file unreadable" {
			t.Errorf("warning %q %v: want \"dhcpwatch: lease file unreadable\"", e.Message, e.ContextMap())
			continue
		}
		var file string
		var ferr error
		for _, f := range e.Context {
			switch f.Key {
			case "file":
				file = f.String
			case "error":
				ferr, _ = f.Interface.(error)
			}
		}
		if _, dup := warned[file]; dup {
			t.Errorf("two warnings for %s", file)
		}
		warned[file] = ferr
	}
	wantErr := map[string]error{link: syscall.ELOOP, dangling: syscall.ELOOP, late: syscall.ELOOP}
	if !lockedReadable {
		wantErr[locked] = syscall.EACCES
	}
	for f, werr := range wantErr {
		if err, ok := warned[f]; !ok || !errors.Is(err, werr) {
			t.Errorf("warning for %s: %v (logged: %v); want one with %v", f, err, ok, werr)
		}
	}
	if len(warned) != len(wantErr) {
		t.Errorf("warnings for %d files, want %d: %v", len(warned), len(wantErr), warned)
	}
}

func TestLeaseFilesRunStopsAndClosesEvents(t *testing.T) {
	w, err := NewLeaseFiles(FilesConfig{Patterns: []FilePattern{{Glob: filepath.Join(t.TempDir(), "*"), Kind: Dhclient}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("test over")
	cancel(stop)
	if err := w.Run(ctx); !errors.Is(err, stop) {
		t.Errorf("Run = %v, want the context's cause", err)
	}
	if _, ok := <-w.Events(); ok {
		t.Error("Events not closed after Run returned")
	}
	if err := w.Run(context.Background()); err == nil {
		t.Error("second Run: want an error")
	}
}

func TestNewLeaseFilesRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  FilesConfig
		want string
	}{
		{"relative", FilesConfig{Patterns: []FilePattern{{Glob: "leases/*", Kind: Dhclient}}}, "Patterns[0].Glob"},
		{"wildcard directory", FilesConfig{Patterns: []FilePattern{{Glob: "/var/*/x", Kind: Dhclient}}}, "without wildcards"},
		{"bad glob", FilesConfig{Patterns: []FilePattern{{Glob: "/var/[", Kind: Dhclient}}}, "Patterns[0].Glob"},
		{"no kind", FilesConfig{Patterns: []FilePattern{{Glob: "/var/x"}}}, "Patterns[0].Kind"},
		{"negative size", FilesConfig{MaxFileSize: -1}, "MaxFileSize"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := NewLeaseFiles(tt.cfg); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("NewLeaseFiles = %v, want an error naming %s", err, tt.want)
			}
		})
	}
	if _, err := NewLeaseFiles(FilesConfig{}); err != nil {
		t.Errorf("zero FilesConfig: %v", err)
	}
}

// TestLeaseFilesReportsDeletedFiles covers clients that unlink their
// lease on release (dhcpcd, systemd-networkd; issue 14): IN_DELETE and
// IN_MOVED_FROM give a removal for the file, so that its facts leave the
// snapshot. Ready is closed once the files present at start were sent.
func TestLeaseFilesReportsDeletedFiles(t *testing.T) {
	dir := t.TempDir()
	dh := filepath.Join(dir, "dhclient.wlan0.leases")
	appendFile(t, dh, strings.Replace(dhclientSample, "%s", "3", 1))
	nd := filepath.Join(dir, "leases")
	if err := os.MkdirAll(nd, 0o755); err != nil {
		t.Fatal(err)
	}
	ndFile := filepath.Join(nd, "7")
	if err := os.WriteFile(ndFile, []byte("ADDRESS=192.168.5.5\nLIFETIME=10min\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	w, logs := startFiles(t, []FilePattern{
		{Glob: filepath.Join(dir, "dhclient*.leases"), Kind: Dhclient},
		{Glob: filepath.Join(nd, "*"), Kind: Networkd},
	})
	select {
	case <-w.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("Ready not closed within 10s of start")
	}
	// Both files' leases were sent before Ready: they are in the buffer.
	got := map[string]bool{}
	for range 2 {
		l := nextLease(t, w, "an existing file")
		if l.Removed() {
			t.Fatalf("lease %+v at start: want a lease, not a removal", l)
		}
		got[l.Source] = true
	}
	if !got[dh] || !got[ndFile] {
		t.Fatalf("leases at start from %v: want %s and %s", got, dh, ndFile)
	}

	if err := os.Remove(dh); err != nil { // IN_DELETE
		t.Fatal(err)
	}
	if l := nextLease(t, w, "the removal of "+dh); !l.Removed() || l.Source != dh || l.Kind != Dhclient {
		t.Errorf("after deleting %s: %+v, want a removal of it", dh, l)
	}
	// networkd replaces its file by rename; a file renamed away is gone.
	if err := os.Rename(ndFile, filepath.Join(dir, "moved-away")); err != nil { // IN_MOVED_FROM
		t.Fatal(err)
	}
	if l := nextLease(t, w, "the removal of "+ndFile); !l.Removed() || l.Source != ndFile || l.Kind != Networkd {
		t.Errorf("after renaming %s away: %+v, want a removal of it", ndFile, l)
	}
	// A file that never gave a lease goes without a word; the next
	// event is the next lease.
	empty := filepath.Join(nd, "9")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(empty); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nd, "8"), []byte("ADDRESS=192.168.5.8\nLIFETIME=10min\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if l := nextLease(t, w, "the lease of file 8"); l.Removed() || l.Index != 8 {
		t.Errorf("after an empty file came and went, then file 8: %+v, want file 8's lease", l)
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d warnings: %v", n, logs.All())
	}
}
