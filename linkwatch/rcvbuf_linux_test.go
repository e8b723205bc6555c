package linkwatch

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// envRcvbuf makes the test binary run a Watcher asking for the receive
// buffer it names and print what it logged (TestHelperReceiveBuffer).
const envRcvbuf = "LINKWATCH_TEST_RCVBUF"

// TestHelperReceiveBuffer is not a test: run by TestReceiveBufferWarning
// as an unprivileged user, it runs a Watcher until its baseline and prints
// its warnings.
func TestHelperReceiveBuffer(t *testing.T) {
	v := os.Getenv(envRcvbuf)
	if v == "" {
		t.Skip("a helper process of TestReceiveBufferWarning")
	}
	n, _ := strconv.Atoi(v)
	core, logs := observer.New(zap.WarnLevel)
	w, err := New(Config{ReceiveBuffer: n, Logger: zap.New(core)})
	if err != nil {
		fmt.Println("new:", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for ev := range w.Events() {
		if _, ok := ev.(Baseline); ok {
			break
		}
	}
	cancel()
	for range w.Events() {
	}
	<-done
	for _, e := range logs.All() {
		fmt.Printf("warn: %s %v\n", e.Message, e.ContextMap())
	}
}

// TestReceiveBufferWarning: without CAP_NET_ADMIN the kernel caps the
// receive buffer at net.core.rmem_max; the Watcher then says once what it
// was granted, instead of silently overflowing sooner.
func TestReceiveBufferWarning(t *testing.T) {
	netnstest.RequirePrivileged(t)
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Fatal(err)
	}
	rmemMax, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	exe := netnstest.SelfForAnyUser(t) // this test binary, which nobody may run
	ns := netnstest.New(t)
	asked := 2 * rmemMax
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Inside the namespace, setpriv drops to nobody with no capabilities
	// before it runs the helper.
	cmd := ns.Command(ctx, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		exe, "-test.run=^TestHelperReceiveBuffer$")
	cmd.Env = append(os.Environ(), envRcvbuf+"="+strconv.Itoa(asked))
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v: %s", err, out)
	}
	want := fmt.Sprintf("not the %d KiB asked", asked>>10)
	if !strings.Contains(string(out), "warn: linkwatch: netlink receive buffer "+strconv.Itoa(rmemMax>>10)+" KiB") || !strings.Contains(string(out), want) {
		t.Fatalf("helper output %q, want the warning that %d KiB were granted of %d", out, rmemMax>>10, asked>>10)
	}
}
