package delivery

import (
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(code int) {
		if netmonDir != "" {
			os.RemoveAll(netmonDir)
		}
		os.Exit(code)
	}))
}

// netmonDir holds the netmon binary built for the daemon, removed by TestMain.
var (
	netmonOnce sync.Once
	netmonDir  string
	netmonBin  string
	netmonErr  error
)

// buildNetmon builds ./cmd/netmon once per test binary.
func buildNetmon(t testing.TB) string {
	t.Helper()
	netmonOnce.Do(func() {
		if netmonDir, netmonErr = os.MkdirTemp("", "delivery-netmon-"); netmonErr != nil {
			return
		}
		netmonBin = filepath.Join(netmonDir, "netmon")
		cmd := exec.Command("go", "build", "-o", netmonBin, "github.com/seed-a56be422/netmon/cmd/netmon")
		if b, err := cmd.CombinedOutput(); err != nil {
			netmonErr = &buildError{err: err, out: string(b)}
		}
	})
	if netmonErr != nil {
		t.Fatalf("go build ./cmd/netmon: %v", netmonErr)
	}
	return netmonBin
}

type buildError struct {
	err error
	out string
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }
