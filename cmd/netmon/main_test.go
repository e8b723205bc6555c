package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// goleak.VerifyTestMain exits, so the binary's directory is removed
	// by a wrapper around the tests instead.
	goleak.VerifyTestMain(cleanupMain{m})
}

// cleanupMain runs the tests, then removes the binary built for them.
type cleanupMain struct{ m *testing.M }

func (c cleanupMain) Run() int {
	code := c.m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	return code
}

// binDir holds the netmon binary the integration tests run; binOnce
// builds it the first time a test needs it.
var (
	binDir  string
	binOnce sync.Once
	binPath string
	binErr  error
)

// buildNetmon builds this command once per test binary and returns its
// path. Building takes seconds, so every test shares the one build.
func buildNetmon(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "netmon-cmd-test-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "netmon")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = err
			t.Logf("go build: %s", out)
		}
	})
	if binErr != nil {
		t.Fatalf("build netmon: %v", binErr)
	}
	return binPath
}
