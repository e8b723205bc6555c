//go:build linux

// Package python_test runs the Python client's tests (examples/python,
// python3 -m unittest) from go test, so that `go test ./...` and CI run
// them against freshly built netmon and ackserver binaries.
package python_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// envRequirePrivileged turns a skip into a failure, as in internal/netnstest.
const envRequirePrivileged = "NETMON_REQUIRE_PRIVILEGED"

// TestPython builds cmd/netmon and examples/ackserver and runs every
// test_*.py in this directory with them (NETMON_BIN, ACKSERVER_BIN). The
// Python tests that need root skip by themselves when not root, and fail
// under NETMON_REQUIRE_PRIVILEGED=1, which is passed through.
func TestPython(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		reason := "python3 not installed (apt-get install python3)"
		if os.Getenv(envRequirePrivileged) == "1" {
			t.Fatalf("%s=1 but this test would skip: %s", envRequirePrivileged, reason)
		}
		t.Skip(reason)
	}
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	netmon := build(t, bin, "netmon", "github.com/seed-a56be422/netmon/cmd/netmon")
	ackserver := build(t, bin, "ackserver", "github.com/seed-a56be422/netmon/examples/ackserver")

	cmd := exec.Command(py, "-m", "unittest", "discover", "-v", "-s", dir, "-p", "test_*.py")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(),
		"NETMON_BIN="+netmon,
		"ACKSERVER_BIN="+ackserver,
		"PYTHONDONTWRITEBYTECODE=1", // no __pycache__ left in the source tree
		"PYTHONUNBUFFERED=1",
	)
	// If this test binary dies (a -timeout panic), python3 dies too, and
	// with it the programs it runs (they have their own death signal); the
	// namespaces it leaves are swept by the next run (_nslab).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t.Logf("$ %s", cmd)
	began := time.Now()
	err = cmd.Run()
	t.Logf("python3 -m unittest ran %v:\n%s", time.Since(began).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatalf("python3 -m unittest: %v (its output is above)", err)
	}
}

// build compiles pkg into dir/name and returns its path.
func build(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	t.Logf("$ go build -o %s %s", out, pkg)
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}
