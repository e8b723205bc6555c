package netmon

import (
	"net"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/wifiwatch"
)

// The shapes of these tests are what the Wi-Fi lab (internal/wifilab,
// Debian's 6.1 kernel, mac80211_hwsim, wpa_supplicant) showed: in a roam
// the carrier drops when the supplicant starts authenticating with the
// next AP, nl80211 reports a locally generated disconnect with reason 1
// about 50 ms later, the carrier returns (dormant, then up) and the
// association to the next AP follows, about 110 ms after the carrier loss.

// roamRig is a Monitor with wlan0 up and associated, fed events at base+d.
type roamRig struct {
	t    *testing.T
	m    *Monitor
	base time.Time
}

func newRoamRig(t *testing.T) *roamRig {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	r := &roamRig{t: t, m: m, base: time.Now()}
	m.mu.Lock()
	m.wifiInfo[2] = &WifiInfo{Associated: true, SSID: "robots", BSSID: "02:00:00:00:00:00", SignalDBm: -79, Band: "weak"}
	m.evaluateLocked(r.base)
	m.mu.Unlock()
	return r
}

func (r *roamRig) carrier(d time.Duration, on bool, oper linkwatch.OperState) {
	r.m.mu.Lock()
	before := r.m.ifaces[2].link
	r.m.mu.Unlock()
	l := before
	l.Carrier, l.Oper = on, oper
	r.m.apply(linkwatch.LinkEvent{At: r.base.Add(d), Op: linkwatch.LinkChanged, Link: l, Prev: before})
}

func (r *roamRig) wifi(ev wifiwatch.Event) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	r.m.applyWifiLocked(ev)
}

func (r *roamRig) disconnect(d time.Duration, reason uint16, byAP bool) {
	r.wifi(wifiwatch.Disconnected{Time: r.base.Add(d), Index: 2, Iface: "wlan0", SSID: "robots", Reason: reason, ByAP: byAP})
}

func (r *roamRig) at(d time.Duration) {
	r.m.mu.Lock()
	defer r.m.mu.Unlock()
	r.m.evaluateLocked(r.base.Add(d))
}

func TestMonitorRoamIsNotAnOutage(t *testing.T) {
	r := newRoamRig(t)
	r.carrier(0, false, linkwatch.OperDown)
	wantStatus(t, r.m, Degraded, ReasonRoamed)
	r.disconnect(50*time.Millisecond, 1, false)
	wantStatus(t, r.m, Degraded, ReasonRoamed)
	r.carrier(80*time.Millisecond, true, linkwatch.OperDormant)
	wantStatus(t, r.m, Degraded, ReasonRoamed)
	to, _ := net.ParseMAC("02:00:00:00:01:00")
	r.wifi(wifiwatch.Roamed{Time: r.base.Add(110 * time.Millisecond), Index: 2, Iface: "wlan0",
		From: net.HardwareAddr{2, 0, 0, 0, 0, 0}, To: to,
		Link: wifiwatch.Link{Index: 2, Iface: "wlan0", Associated: true, SSID: "robots", BSSID: to, SignalDBm: -45}})
	// WPA2: the link stays dormant until the 4-way handshake ends.
	r.at(200 * time.Millisecond)
	wantStatus(t, r.m, Degraded, ReasonRoamed)
	r.carrier(300*time.Millisecond, true, linkwatch.OperUp)
	r.at(3 * time.Second)
	wantStatus(t, r.m, Degraded, ReasonRoamed) // the recent roam, no longer the hold
	for _, e := range r.m.drain() {
		if e.Kind == EventState && e.Status.State == Down || e.Kind == EventFlap {
			t.Fatalf("a roam gave %v %q", e.Kind, e.Msg)
		}
	}
	if j := r.m.Snapshot().FlapsTotal; j != 0 {
		t.Fatalf("flaps = %d, want 0", j)
	}
}

func TestMonitorRoamHoldEndsForRealOutages(t *testing.T) {
	for _, tc := range []struct {
		name   string
		reason uint16
		byAP   bool
		then   time.Duration // evaluated at
		want   State
		why    Reason
	}{
		{"beacon loss", 4, false, 60 * time.Millisecond, Down, ReasonWifiDisconnect},
		{"deauthenticated by the AP", 1, true, 60 * time.Millisecond, Down, ReasonWifiDisconnect},
		{"supplicant leaving", 3, false, 60 * time.Millisecond, Down, ReasonWifiDisconnect},
		{"roam that never ends", 1, false, 50*time.Millisecond + roamGrace, Down, ReasonWifiDisconnect},
		{"roam still under way", 1, false, 50*time.Millisecond + roamGrace - time.Millisecond, Degraded, ReasonRoamed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRoamRig(t)
			r.carrier(0, false, linkwatch.OperDown)
			r.disconnect(50*time.Millisecond, tc.reason, tc.byAP)
			r.at(tc.then)
			wantStatus(t, r.m, tc.want, tc.why)
		})
	}
}

func TestMonitorCarrierLossWithoutNl80211Verdict(t *testing.T) {
	r := newRoamRig(t)
	r.carrier(0, false, linkwatch.OperDown)
	r.at(verdictWait - time.Millisecond)
	wantStatus(t, r.m, Degraded, ReasonRoamed)
	r.at(verdictWait)
	wantStatus(t, r.m, Down, ReasonCarrierLost)
}

func TestMonitorWiredCarrierLossIsNotHeld(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	l := upLink(2, "wlan0")
	down := l
	down.Carrier, down.Oper = false, linkwatch.OperDown
	m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged, Link: down, Prev: l})
	wantStatus(t, m, Down, ReasonCarrierLost)
}
