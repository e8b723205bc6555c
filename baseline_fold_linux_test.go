package netmon

import (
	"net/netip"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/wifiwatch"
	"go.uber.org/zap/zapcore"
)

// These tests cover issue 14's Monitor side: every watcher's baseline is
// state from the first read (not only its later events), the baseline
// event waits for the watchers (bounded), and Report ranks a roam or a
// reconnect above a DHCP blip.

// newDHCPMonitor is newTestMonitor with the DHCP tracker on (lease files
// are fed by the test through applyLeaseLocked).
func newDHCPMonitor(t *testing.T) *Monitor {
	t.Helper()
	m := newTestMonitor(t, Options{})
	m.dhcp = dhcpwatch.NewTracker(dhcpwatch.Config{})
	m.dhcpNote = "on"
	return m
}

// leasedBaseline is baselineUp read at at, with wlan0's address leased:
// 119 s left, as dhclient installs it from dnsmasq's 2-minute lease a
// second earlier.
func leasedBaseline(at time.Time) linkwatch.Baseline {
	b := baselineUp()
	b.At = at
	a := &b.State.Addrs[0]
	a.Flags, a.Valid, a.Preferred, a.Observed = 0, 119*time.Second, 119*time.Second, at
	return b
}

// fieldsOf returns an event's zap fields by key.
func fieldsOf(ev Event) map[string]any {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range ev.Fields {
		f.AddTo(enc)
	}
	return enc.Fields
}

func TestMonitorKnowsTheBaselineLease(t *testing.T) {
	m := newDHCPMonitor(t)
	m.apply(leasedBaseline(t0))
	evs := m.drain()
	if len(evs) != 1 || evs[0].Kind != EventBaseline {
		t.Fatalf("events %+v: want only the baseline (the lease found at baseline is no edge)", evs)
	}
	f := fieldsOf(evs[0])
	if f["dhcp_phase"] != "bound" || f["lease_left"] != 119*time.Second {
		t.Errorf("baseline fields %v: want dhcp_phase bound and lease_left 1m59s", f)
	}
	m.mu.Lock()
	s := m.snapshotLocked(t0.Add(4 * time.Second))
	m.mu.Unlock()
	d := s.Interfaces[0].DHCP
	if d == nil || d.Phase != "bound" || d.LeftSec != 115 || d.Source != "kernel" {
		t.Fatalf("snapshot dhcp %+v: want bound with 115 s left, from the kernel", d)
	}
	if s.DHCP != "on" {
		t.Errorf("dhcp_watcher %q, want on", s.DHCP)
	}
}

func TestMonitorBaselineWaitsForWatchers(t *testing.T) {
	assoc := wifiwatch.Link{Index: 2, Iface: "wlan0", Associated: true, SSID: "robots", SignalDBm: -58,
		BSSID: []byte{0xaa, 0xbb, 0xcc, 0, 0, 1}}
	tests := []struct {
		name string
		// then is what arrives after the kernel's baseline, at t0+1s.
		then      func(m *Monitor)
		wantNote  string
		wantField map[string]any
	}{
		{
			name:      "Wi-Fi baseline",
			then:      func(m *Monitor) { m.applyWifiLocked(wifiwatch.Baseline{Time: t0, Links: []wifiwatch.Link{assoc}}) },
			wantNote:  "on",
			wantField: map[string]any{"ssid": "robots", "signal_dbm": int64(-58), "dhcp_phase": "bound"},
		},
		{
			name: "Wi-Fi unavailable",
			then: func(m *Monitor) {
				m.applyWifiLocked(wifiwatch.Unavailable{Time: t0, Reason: "no nl80211 family"})
			},
			wantNote:  "unavailable: no nl80211 family",
			wantField: map[string]any{"dhcp_phase": "bound"},
		},
		{
			name:      "nothing within BaselineWait",
			then:      func(m *Monitor) { m.baselineEventLocked(t0.Add(DefaultBaselineWait)) },
			wantNote:  "starting",
			wantField: map[string]any{"dhcp_phase": "bound"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newDHCPMonitor(t)
			m.wifiNote = "starting"
			m.awaiting["wifi"] = true
			m.apply(leasedBaseline(t0))
			wantStatus(t, m, Up, ReasonNone) // the Gate does not wait
			if evs := m.drain(); len(evs) != 0 {
				t.Fatalf("events before the Wi-Fi baseline: %+v; want none", evs)
			}
			m.mu.Lock()
			tt.then(m)
			m.mu.Unlock()
			evs := m.drain()
			if len(evs) == 0 || evs[0].Kind != EventBaseline {
				t.Fatalf("events %+v: want the baseline first", evs)
			}
			f := fieldsOf(evs[0])
			for k, v := range tt.wantField {
				if f[k] != v {
					t.Errorf("baseline field %s = %v (%T), want %v", k, f[k], f[k], v)
				}
			}
			for _, ev := range evs {
				if ev.Kind == EventState {
					t.Errorf("state event %q beside the baseline: the baseline reports the state", ev.Msg)
				}
			}
			if got := m.Snapshot().Wifi; got != tt.wantNote {
				t.Errorf("wifi_watcher %q, want %q", got, tt.wantNote)
			}
		})
	}
}

// TestMonitorLeaseFileRemovalLeavesSnapshot: a lease file unlinked on
// release takes its server and router out of the snapshot.
func TestMonitorLeaseFileRemovalLeavesSnapshot(t *testing.T) {
	m := newDHCPMonitor(t)
	m.apply(leasedBaseline(t0))
	const src = "/var/lib/dhcpcd/wlan0.lease"
	m.mu.Lock()
	m.applyLeaseLocked(t0, dhcpwatch.Lease{Iface: "wlan0", Addr: netip.MustParsePrefix("10.0.0.5/24"), Start: t0.Add(-time.Second),
		Length: 2 * time.Minute, Server: netip.MustParseAddr("10.0.0.1"), Router: netip.MustParseAddr("10.0.0.1"), Source: src, Kind: dhcpwatch.Dhcpcd})
	s := m.snapshotLocked(t0)
	m.mu.Unlock()
	if d := s.Interfaces[0].DHCP; d == nil || d.Server != "10.0.0.1" || d.Router != "10.0.0.1" || d.LeaseFile != src {
		t.Fatalf("snapshot dhcp %+v: want server and router 10.0.0.1 from %s", d, src)
	}
	m.mu.Lock()
	m.applyLeaseLocked(t0.Add(time.Second), dhcpwatch.Lease{Source: src, Kind: dhcpwatch.Dhcpcd})
	s = m.snapshotLocked(t0.Add(time.Second))
	m.mu.Unlock()
	if d := s.Interfaces[0].DHCP; d == nil || d.Server != "" || d.Router != "" || d.LeaseFile != "" || d.Phase != "bound" {
		t.Fatalf("snapshot dhcp %+v after the file's removal: want the kernel's lease alone", d)
	}
}

// TestMonitorReconnectIsNotABlip: addresses flushed while Wi-Fi is
// disconnected and re-added on the reconnect are a reconnect, and Report
// explains a failure then by it, not by a DHCP blip; a roam ranks above
// a blip too.
func TestMonitorReconnectIsNotABlip(t *testing.T) {
	now := time.Now() // Report reads the clock: the events happen now
	m := newDHCPMonitor(t)
	m.apply(leasedBaseline(now))
	lease := leasedBaseline(now).State.Addrs[0]
	m.mu.Lock()
	m.applyWifiLocked(wifiwatch.Disconnected{Time: now, Index: 2, Iface: "wlan0", Reason: 4})
	m.mu.Unlock()
	gone := lease
	gone.Observed = now
	m.apply(linkwatch.AddrEvent{At: now, Op: linkwatch.AddrRemoved, Addr: gone})
	m.mu.Lock()
	m.applyWifiLocked(wifiwatch.Associated{Time: now, Link: wifiwatch.Link{Index: 2, Iface: "wlan0", Associated: true, SSID: "robots"}})
	m.mu.Unlock()
	back := lease
	back.Observed, back.Valid, back.Preferred = now, 120*time.Second, 120*time.Second
	m.apply(linkwatch.AddrEvent{At: now, Op: linkwatch.AddrAdded, Addr: back})
	var kinds []string
	for _, ev := range m.drain() {
		if ev.Kind == EventDHCP {
			kinds = append(kinds, fieldsOf(ev)["lease"].(string))
		}
	}
	if len(kinds) != 1 || kinds[0] != "reconnected" {
		t.Fatalf("dhcp events %q: want one reconnected, no blip", kinds)
	}
	if ex := m.Report(unreach()); ex.Cause != CauseRecentOutage {
		t.Errorf("Report after the reconnect: %v (%s), want recent-outage", ex.Cause, ex)
	}

	// A blip and a roam at the same moment: the roam explains it.
	m.mu.Lock()
	m.dhcpInfo[2].LastReconnect = time.Time{}
	m.dhcpInfo[2].LastBlip = now
	m.wifiInfo[2].LastRoam = now
	m.evaluateLocked(now)
	m.mu.Unlock()
	if ex := m.Report(unreach()); ex.Cause != CauseRoam {
		t.Errorf("Report after a roam and a blip: %v, want roam", ex.Cause)
	}
	m.mu.Lock()
	m.wifiInfo[2].LastRoam = time.Time{}
	m.mu.Unlock()
	if ex := m.Report(unreach()); ex.Cause != CauseDHCPBlip {
		t.Errorf("Report after a blip alone: %v, want dhcp-blip", ex.Cause)
	}
}
