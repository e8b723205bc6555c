package wifilab

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// ForTest builds (or takes from the cache) the image, boots it with opts
// and closes the VM when t ends, printing the console's last lines if t
// failed. Without root or QEMU it skips t with the reason; under
// NETMON_REQUIRE_PRIVILEGED=1 such a skip fails t instead.
func ForTest(t testing.TB, opts Options) *Lab {
	t.Helper()
	if os.Geteuid() != 0 {
		netnstest.Skip(t, "the Wi-Fi lab needs root (apt-get download, and the guest's files owned by root)")
	}
	if _, err := exec.LookPath("qemu-system-x86_64"); err != nil {
		netnstest.Skip(t, "qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cache, err := CacheDir()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	img, err := BuildImage(ctx, cache)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wifilab: image %s (kernel %s, cached %v) in %v", img.Key, img.Release, img.Cached, time.Since(start).Round(time.Millisecond))
	lab, err := Boot(ctx, img, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wifilab: booted in %v", lab.BootTime.Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("wifilab: console, last lines:\n%s", lab.Console(40))
		}
		lab.Close()
	})
	return lab
}
