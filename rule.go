package netmon

import (
	"net/netip"
	"sort"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// WifiInfo is the radio side of one wireless interface, as the Monitor
// last learned it from wifiwatch.
type WifiInfo struct {
	Associated bool      `json:"associated"`
	SSID       string    `json:"ssid,omitempty"`
	BSSID      string    `json:"bssid,omitempty"`
	FreqMHz    int       `json:"freq_mhz,omitempty"`
	SignalDBm  int       `json:"signal_dbm,omitempty"`
	Band       string    `json:"band,omitempty"` // good, fair, weak, critical
	TxBitrate  int       `json:"tx_bitrate_bps,omitempty"`
	RxBitrate  int       `json:"rx_bitrate_bps,omitempty"`
	LastRoam   time.Time `json:"last_roam,omitzero"`
	// Disconnected is set by an nl80211 disconnect and cleared by the next
	// association: it closes the Gate before the carrier change arrives.
	Disconnected     bool   `json:"disconnected,omitempty"`
	DisconnectReason uint16 `json:"disconnect_reason,omitempty"`
	// roamUntil is set while the station may be between two access points
	// (see startRoamHold): until then the link counts as usable and the
	// state is degraded, reason roamed. roamFrom is when the hold began:
	// holds that follow each other never reach past roamFrom plus
	// verdictWait plus roamGrace.
	roamUntil, roamFrom time.Time
}

// A station whose supplicant roams through the kernel's own MLME (every
// mac80211 driver; wpa_supplicant's SME) loses its carrier between the two
// access points: mac80211 leaves the old AP (a locally generated
// deauthentication, reason 1) the moment the supplicant starts
// authenticating with the new one, and the carrier returns with the new
// association. In the Wi-Fi lab (internal/wifilab, Debian's 6.1) that gap
// is 80-120 ms; queued TCP data survives it, so the Gate should not close.
// The Monitor holds its verdict over such a gap:
//   - verdictWait: a carrier loss on an associated station waits this long
//     for nl80211 to say why (the disconnect follows the carrier loss by
//     about 50 ms). A disconnect by the AP, or for any other reason than 1,
//     ends the hold at once: a beacon loss (reason 4) or a deauthentication
//     is an outage.
//   - roamGrace: a locally generated disconnect with reason 1 holds this
//     long, for the association to the next AP and (WPA2) its 4-way
//     handshake: a station whose link is up again by then had no outage.
//     Past it a station still without its link is down, from then.
//
// A deliberate disconnect by the supplicant (wpa_cli disconnect, a network
// switch) gives reason 3 and is not held.
const (
	verdictWait = 250 * time.Millisecond
	roamGrace   = time.Second
)

// startRoamHold holds the verdict for d from at, on a station whose link
// was usable just before (linkUp) or that is held already; a hold that
// follows another stays within the first one's bounds.
func (w *WifiInfo) startRoamHold(at time.Time, d time.Duration, linkUp bool) {
	held := at.Before(w.roamUntil)
	if !linkUp && !held {
		w.roamUntil = time.Time{}
		return
	}
	if !held {
		w.roamFrom = at
	}
	w.roamUntil = at.Add(d)
	if limit := w.roamFrom.Add(verdictWait + roamGrace); w.roamUntil.After(limit) {
		w.roamUntil = limit
	}
}

// disconnectHold applies a disconnect to the hold: a locally generated
// reason 1 on a station that was associated with its link up, or that is
// held after its carrier loss, starts a roamGrace; a disconnect without a
// reason (0: found by polling before nl80211's notification, as a loaded
// machine does) leaves a running hold to its bound; anything else ends it.
func (w *WifiInfo) disconnectHold(at time.Time, reason uint16, byAP, linkUp bool) {
	if reason == 0 && !byAP {
		return
	}
	if byAP || reason != 1 {
		w.roamUntil = time.Time{}
		return
	}
	w.startRoamHold(at, roamGrace, w.Associated && linkUp)
}

// DHCPInfo is the lease state of one interface, as the Monitor last learned
// it from dhcpwatch.
type DHCPInfo struct {
	Phase     string        `json:"phase"` // static, bound, renewing, rebinding, expired
	LeaseTime time.Duration `json:"-"`
	// Expires is when the lease runs out (zero when unknown or static).
	Expires time.Time  `json:"-"`
	T1, T2  time.Time  `json:"-"`
	Server  netip.Addr `json:"server,omitzero"`
	Router  netip.Addr `json:"router,omitzero"`
	Source  string     `json:"source,omitempty"` // "kernel" or the lease file
	// LeaseFile is the lease file that enriches a kernel lease (server,
	// router, T1 and T2), "" when none agrees with the kernel.
	LeaseFile string `json:"lease_file,omitempty"`
	// LastBlip is the end of the last renewal blip (address or route gone
	// and back within the blip window).
	LastBlip time.Time `json:"-"`
	// LastReconnect is when the address last came back after the link
	// reconnected (it was flushed while the link had no carrier or Wi-Fi
	// was not associated).
	LastReconnect time.Time `json:"-"`
}

// iface is the Monitor's view of one interface: the kernel's facts plus
// what the Wi-Fi and DHCP watchers said about it.
type iface struct {
	link   linkwatch.Link
	addrs  []linkwatch.Addr
	routes []linkwatch.Route // default routes leaving through it
	neighs []linkwatch.Neigh // its gateways' neighbour entries
	wifi   *WifiInfo
	dhcp   *DHCPInfo
}

func (f *iface) neigh(ip netip.Addr) (linkwatch.Neigh, bool) {
	for _, n := range f.neighs {
		if n.IP == ip {
			return n, true
		}
	}
	return linkwatch.Neigh{}, false
}

// sortedIndexes returns the interfaces' indexes in order.
func sortedIndexes(ifaces map[int]*iface) []int {
	idx := make([]int, 0, len(ifaces))
	for i := range ifaces {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	return idx
}

func addrFamily(a netip.Addr) int {
	if a.Is4() {
		return 4
	}
	return 6
}
