package main

import (
	"strings"
	"testing"

	"github.com/seed-a56be422/netmon"
)

// TestWriteSnapshotShowsLeaseAndWatchers: the text form of status names
// the lease with its time left and server, and every watcher's note.
func TestWriteSnapshotShowsLeaseAndWatchers(t *testing.T) {
	s := netmon.Snapshot{State: netmon.Up, Iface: "wlan0",
		Interfaces: []netmon.IfaceSnapshot{{Name: "wlan0", Oper: "up", Carrier: true, Usable: true,
			DHCP: &netmon.DHCPSnapshot{Phase: "bound", LeftSec: 119, Server: "10.0.0.1"}}},
		Wifi: "unavailable: no nl80211 family", DHCP: "on", LeaseFiles: "on", SockErrors: "off"}
	var b strings.Builder
	writeSnapshot(&b, s)
	for _, want := range []string{"dhcp=bound(1m59s left) server=10.0.0.1",
		"watchers: wifi unavailable: no nl80211 family; dhcp on; lease files on; socket errors off"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("status output lacks %q:\n%s", want, b.String())
		}
	}
}
