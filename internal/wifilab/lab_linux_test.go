package wifilab_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/wifilab"
)

func TestBootLoadsHwsim(t *testing.T) {
	lab := wifilab.ForTest(t, wifilab.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := lab.Run(ctx, "modprobe", "mac80211_hwsim", "radios=2"); err != nil {
		t.Fatal(err)
	}
	out, err := lab.Sh(ctx, "iw dev")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"phy#0", "phy#1", "Interface wlan0", "Interface wlan1"} {
		if !strings.Contains(out, want) {
			t.Errorf("iw dev has no %q:\n%s", want, out)
		}
	}
	t.Logf("boot %v", lab.BootTime)
}
