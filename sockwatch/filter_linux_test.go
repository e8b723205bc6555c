package sockwatch

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// TestIntegrationFilters checks Config.Cgroups and Config.Destinations on
// the real kernel. In each case one thread of this process, in a fresh
// namespace with no routes, makes a TCP connect to 192.0.2.1:443 fail with
// ENETUNREACH and then provokes the marker failure (to 198.51.100.7). The
// connect's event is delivered without a filter and with matching ones,
// and with non-matching ones it is not delivered but counted in
// Stats.Filtered, never in Stats.Events.
func TestIntegrationFilters(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	self := selfCgroupID(t)
	other := otherCgroupID(t)
	markerPfx := netip.PrefixFrom(markerAddr.Addr(), 32)
	pfx := netip.MustParsePrefix
	for _, tc := range []struct {
		name       string
		cfg        Config
		needCgroup bool // the case names this process's cgroup
		delivered  bool // the connect's event is delivered
		noMarker   bool // the marker is filtered out too
	}{
		{name: "none", delivered: true},
		{name: "destination match", cfg: Config{Destinations: []netip.Prefix{pfx("192.0.2.0/24"), markerPfx}}, delivered: true},
		{name: "destination host", cfg: Config{Destinations: []netip.Prefix{pfx("192.0.2.1/32"), markerPfx}}, delivered: true},
		{name: "destination miss", cfg: Config{Destinations: []netip.Prefix{pfx("192.0.2.128/25"), pfx("2001:db8::/32"), markerPfx}}},
		{name: "cgroup match", cfg: Config{Cgroups: []uint64{other, self}}, needCgroup: true, delivered: true},
		{name: "cgroup miss", cfg: Config{Cgroups: []uint64{other}}, noMarker: true},
		// Both filters: an event must match both.
		{name: "cgroup match destination miss", cfg: Config{Cgroups: []uint64{self}, Destinations: []netip.Prefix{markerPfx}}, needCgroup: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tc.needCgroup && self == 0 {
				netnstest.Skip(t, "this process's cgroup v2 ID is unknown (no cgroup2 mount in /proc/self/mounts)")
			}
			tc.cfg.SyscallTracing = true
			h := attach(t, tc.cfg)
			ns := netnstest.New(t)
			var want []Event
			h.do(ns, func(tid int) error {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 443}); !errors.Is(err, unix.ENETUNREACH) {
					return fmt.Errorf("tcp connect: %v, want ENETUNREACH", err)
				}
				if tc.delivered {
					want = append(want, h.syscallEvent(ns, tid, OpConnect, syscall.ENETUNREACH, "192.0.2.1:443"))
				}
				return marker()
			})

			// Two failures went into the ring buffer: the connect and the
			// marker. Wait until the reader has handled both.
			wantStats := Stats{Events: uint64(len(want)) + 1}
			if tc.noMarker {
				wantStats.Events = 0
				// Nothing is delivered to wait for: wait for the counter.
				waitStats(t, h.w, func(s Stats) bool { return s.Events+s.Filtered >= 2 })
			} else {
				h.expect(h.untilMarker(len(want)), want)
			}
			wantStats.Filtered = 2 - wantStats.Events
			if rest := h.stop(); len(rest) > 0 {
				t.Errorf("events after the marker: %v", rest)
			}
			if got := h.w.Stats(); got != wantStats {
				t.Errorf("Stats = %+v, want %+v", got, wantStats)
			}
		})
	}
}

// waitStats waits until ok holds for w's counters, failing the test after
// waitTimeout. Counters change without a notification, so they are read
// every few milliseconds until then.
func waitStats(t *testing.T, w *Watcher, ok func(Stats) bool) Stats {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		s := w.Stats()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: Stats %+v", waitTimeout, s)
		}
		<-tick.C
	}
}

// otherCgroupID returns the ID of a cgroup no process is in: a fresh
// cgroup v2 directory, removed at the end of the test. Where none can be
// created it returns an ID the kernel never hands out.
func otherCgroupID(t *testing.T) uint64 {
	t.Helper()
	for _, mnt := range cgroup2Mounts() {
		dir := filepath.Join(mnt, "sockwatch-test-"+uniqueComm())
		if err := os.Mkdir(dir, 0o755); err != nil {
			continue
		}
		t.Cleanup(func() {
			if err := os.Remove(dir); err != nil {
				t.Errorf("remove test cgroup: %v", err)
			}
		})
		var st unix.Stat_t
		if err := unix.Stat(dir, &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	return ^uint64(0)
}
