package outbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestOpenSyncsTheDirectoriesItCreates: Open of a directory that does not
// exist yet creates it (and its missing parents); for a store accepted
// in it to survive a power loss, each new directory's entry must be
// durable too, so the parent of each one is fsynced, as the directory
// holding the new store file is. Which fsyncs happen is what strace sees
// of a child process that opens the outbox: a file system that loses an
// unsynced entry (ext4 happens not to, when the file's fsync commits its
// journal) cannot be had here.
func TestOpenSyncsTheDirectoriesItCreates(t *testing.T) {
	strace := netnstest.RequireCommand(t, "strace", "strace")
	top := t.TempDir()
	dir := filepath.Join(top, "a", "b")
	trace := filepath.Join(t.TempDir(), "trace")
	cmd := exec.Command(strace, "-f", "-y", "-e", "trace=fsync", "-o", trace, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), openChildEnv+"="+dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the child opening %s under strace: %v\n%s", dir, err, out)
	}
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	synced := map[string]bool{}
	for _, m := range regexp.MustCompile(`fsync\(\d+<([^>]*)>\)\s*=\s*0`).FindAllStringSubmatch(string(b), -1) {
		synced[m[1]] = true
	}
	for _, d := range []string{top, filepath.Join(top, "a"), dir} {
		if !synced[d] {
			t.Errorf("Open did not fsync %s; fsynced: %s", d, strings.Join(keys(synced), ", "))
		}
	}
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}
