package netmon

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

var update = flag.Bool("update", false, "rewrite testdata golden files")

// goldenMonitor is a Monitor with a fixed picture: wlan0 up on Wi-Fi with a
// DHCP lease, one past outage, eth0 without carrier.
func goldenMonitor(t *testing.T) *Monitor {
	m := newTestMonitor(t, Options{})
	b := baselineUp()
	b.State.Links[2] = linkwatch.Link{Index: 2, Name: "wlan0", Kind: "wireless", AdminUp: true, Carrier: true,
		Oper: linkwatch.OperUp, MTU: 1500}
	b.State.Links[3] = linkwatch.Link{Index: 3, Name: "eth0", Kind: "veth", AdminUp: true, Oper: linkwatch.OperDown, MTU: 1500}
	lease := globalAddr(2, "wlan0", "10.0.0.9/24")
	lease.Flags, lease.Valid, lease.Preferred = 0, 3600*time.Second, 3600*time.Second
	b.State.Addrs = append(b.State.Addrs, lease)
	b.State.Neighs = []linkwatch.Neigh{{Index: 2, Iface: "wlan0", IP: netip.MustParseAddr("10.0.0.1"), State: 0x02}}
	m.apply(b)
	m.mu.Lock()
	m.wifiInfo[2] = &WifiInfo{Associated: true, SSID: "robots", BSSID: "aa:bb:cc:00:00:01", FreqMHz: 5180,
		SignalDBm: -61, Band: "good", TxBitrate: 866700000, RxBitrate: 650000000}
	m.dhcpInfo[2] = &DHCPInfo{Phase: "bound", LeaseTime: time.Hour, Expires: t0.Add(time.Hour),
		T1: t0.Add(30 * time.Minute), T2: t0.Add(52*time.Minute + 30*time.Second),
		Server: netip.MustParseAddr("10.0.0.1"), Router: netip.MustParseAddr("10.0.0.1"), Source: "kernel",
		LeaseFile: "/var/lib/dhcp/dhclient.wlan0.leases"}
	m.journal.add(Flap{Start: t0.Add(-2 * time.Minute), End: t0.Add(-2*time.Minute + 1500*time.Millisecond),
		Duration: 1500 * time.Millisecond, Iface: "wlan0", Cause: ReasonWifiDisconnect, Detail: "802.11 reason 4",
		SignalBefore: -84, SignalAfter: -61, BSSIDBefore: "aa:bb:cc:00:00:02", BSSIDAfter: "aa:bb:cc:00:00:01"})
	m.evaluateLocked(t0)
	m.mu.Unlock()
	return m
}

func TestSnapshotJSONGolden(t *testing.T) {
	m := goldenMonitor(t)
	m.mu.Lock()
	snap := m.snapshotLocked(t0.Add(10 * time.Second))
	m.mu.Unlock()
	got, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "snapshot.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Fatalf("snapshot JSON (-want +got):\n%s", diff)
	}
	if !bytes.Contains(got, []byte(`"state": "up"`)) {
		t.Fatal("state is not marshalled by name")
	}
}

func TestSnapshotZapFields(t *testing.T) {
	m := goldenMonitor(t)
	m.mu.Lock()
	snap := m.snapshotLocked(t0.Add(10 * time.Second))
	m.mu.Unlock()
	core, logs := observer.New(zapcore.InfoLevel)
	zap.New(core).Error("send failed", zap.Object("net", snap))
	fields := logs.All()[0].ContextMap()["net"].(map[string]any)
	want := map[string]any{"state": "up", "reason": "", "iface": "wlan0", "for": 10 * time.Second, "carrier": true,
		"signal_dbm": -61, "bssid": "aa:bb:cc:00:00:01", "ssid": "robots", "dhcp_phase": "bound",
		"lease_left_seconds": float64(3590), "flaps_5m": 1, "last_flap_cause": "wifi-disconnected",
		"last_flap_ago": 2*time.Minute - 1500*time.Millisecond + 10*time.Second}
	if diff := cmp.Diff(want, fields); diff != "" {
		t.Fatalf("zap fields (-want +got):\n%s", diff)
	}
}
