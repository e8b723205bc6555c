package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestWatcherJustNew checks that New starts nothing: goleak in TestMain
// fails the package if it did.
func TestWatcherJustNew(t *testing.T) {
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if s := w.State(); s.Links != nil || !s.Read.IsZero() {
		t.Fatalf("State before Run = %+v, want the zero State", s)
	}
}

// TestNewRejectsBadConfig checks that invalid fields are named.
func TestNewRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"negative buffer", Config{ReceiveBuffer: -1}, "Config.ReceiveBuffer"},
		{"bad glob", Config{Include: []string{"wl["}}, "Config.Include"},
		{"empty exclude", Config{Exclude: []string{""}}, "Config.Exclude"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New(%+v) = %v, want an error naming %s", tt.cfg, err, tt.want)
			}
		})
	}
}

// TestWatcherFilter states which names the filter lets through.
func TestWatcherFilter(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		iface    string
		loopback bool
		want     bool
	}{
		{"default takes ethernet", Config{}, "eth0", false, true},
		{"default skips loopback", Config{}, "lo", true, false},
		{"include glob", Config{Include: []string{"wl*"}}, "wlan0", false, true},
		{"include glob misses", Config{Include: []string{"wl*"}}, "eth0", false, false},
		{"include may name loopback", Config{Include: []string{"l?"}}, "lo", true, true},
		{"exclude wins", Config{Include: []string{"wl*"}, Exclude: []string{"wlan1"}}, "wlan1", false, false},
		{"exclude alone", Config{Exclude: []string{"docker*"}}, "docker0", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &Watcher{cfg: tt.cfg}
			if got := w.include(tt.iface, tt.loopback); got != tt.want {
				t.Errorf("include(%q) = %v, want %v", tt.iface, got, tt.want)
			}
		})
	}
}

// TestIntegrationRunTwice checks that a second Run is refused and does not
// disturb the first.
func TestIntegrationRunTwice(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	if err := r.w.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run = %v, want ErrRunning", err)
	}
	a.IP("link", "set", "va", "mtu", "1280")
	r.waitFor("MTU change", linkEv(LinkChanged, "va", nil))
}

// TestIntegrationStopWithStalledConsumer checks that Run returns on
// cancel even when nobody reads the events and the channel is full, and
// that the channel is then closed.
func TestIntegrationStopWithStalledConsumer(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	w, err := New(Config{NetNS: a.Handle})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	// The baseline first: it proves the socket is subscribed, so every
	// address added below makes an event (added earlier, they would all
	// fold into the baseline and the channel would never fill).
	readBaseline(t, w)
	var batch strings.Builder
	for i := range 2 * EventBuffer {
		fmt.Fprintf(&batch, "addr add 10.8.%d.%d/32 dev va\n", i/250, i%250)
	}
	file := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(file, []byte(batch.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	a.IP("-batch", file)
	// Wait until the channel is full: the watcher is then blocked in a
	// send that only cancellation can end.
	waitFull(t, w)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	n := 0
	for range w.Events() {
		n++
	}
	if n != EventBuffer {
		t.Fatalf("drained %d events after Run returned, want a full buffer of %d", n, EventBuffer)
	}
}

// waitFull waits, with one deadline, until the events channel is full.
func waitFull(t *testing.T, w *Watcher) {
	t.Helper()
	deadline := time.Now().Add(waitTime)
	for len(w.events) < cap(w.events) {
		if time.Now().After(deadline) {
			t.Fatalf("events channel holds %d of %d after %v", len(w.events), cap(w.events), waitTime)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestIntegrationCurrentNamespace watches the test's own namespace
// (Config.NetNS 0) and checks that the baseline lists the interfaces the
// standard library sees, loopback excluded. It changes nothing.
func TestIntegrationCurrentNamespace(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, i := range ifaces {
		if i.Flags&net.FlagLoopback == 0 {
			want = append(want, i.Name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	ev := <-w.Events()
	cancel()
	for range w.Events() {
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, ok := ev.(Baseline)
	if !ok {
		t.Fatalf("first event %T, want Baseline", ev)
	}
	var got []string
	for _, l := range b.State.Links {
		got = append(got, l.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("baseline links %v, net.Interfaces %v", got, want)
	}
}

// TestNewMissingInterface: a plain name that does not exist is an error
// wrapping os.ErrNotExist that lists what exists, unless AwaitNamed.
func TestNewMissingInterface(t *testing.T) {
	_, err := New(Config{Include: []string{"nosuch0"}})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), `"nosuch0"`) || !strings.Contains(err.Error(), "lo") {
		t.Fatalf("New(nosuch0) = %v, want ErrNotExist naming it and listing lo", err)
	}
	if _, err := New(Config{Include: []string{"nosuch0"}, AwaitNamed: true}); err != nil {
		t.Fatalf("New(nosuch0, AwaitNamed) = %v, want nil", err)
	}
}
