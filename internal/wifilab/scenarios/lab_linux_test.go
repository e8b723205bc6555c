package scenarios_test

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/wifilab"
)

// TestWifiLab boots one VM and runs the scenarios in order; each leaves
// the lab as it found it (no AP, no station, no netmon running).
func TestWifiLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	netmon := artifact(t, "netmon")
	start := time.Now()
	if err := wifilab.GoBuild(ctx, netmon, "github.com/seed-a56be422/netmon/cmd/netmon"); err != nil {
		t.Fatal(err)
	}
	t.Logf("built netmon in %v", time.Since(start).Round(time.Millisecond))
	r := &rig{lab: wifilab.ForTest(t, wifilab.Options{Files: map[string]string{"/bin/netmon": netmon}})}
	r.sh(t, `modprobe mac80211_hwsim radios=3
ip netns add `+staNS+`
iw phy phy2 set netns name `+staNS+`
ip netns exec `+staNS+` ip link set lo up
ip addr add 10.8.0.1/24 dev `+ap1)
	scenarios := []struct {
		name string
		run  func(*testing.T, *rig)
	}{
		{"association", testAssociation},
		{"deauthentication", testDeauthentication},
		{"p2p-device-later", testP2PDeviceLater},
		{"wpa2-psk", testWPA2},
	}
	for _, s := range scenarios {
		start := time.Now()
		ok := t.Run(s.name, func(t *testing.T) { s.run(t, r) })
		t.Logf("scenario %s: %v in %v", s.name, map[bool]string{true: "ok", false: "FAILED"}[ok], time.Since(start).Round(time.Millisecond))
	}
}

// connectStatic gives the associated station its address and default
// route through AP1.
func (r *rig) connectStatic(t testing.TB) {
	t.Helper()
	r.sh(t, `ip netns exec `+staNS+` ip link set `+staIface+` up
ip netns exec `+staNS+` ip addr replace 10.8.0.2/24 dev `+staIface+`
ip netns exec `+staNS+` ip route replace default via 10.8.0.1 dev `+staIface)
}

// testAssociation: wpa_supplicant (with its P2P-device wdev, which has no
// network interface) runs before netmon starts; netmon runs, and status
// and the baseline line carry the association.
func testAssociation(t *testing.T, r *rig) {
	r.ap(t, "ap1", ap1)
	wpa := r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	r.connectStatic(t)
	if out := r.sh(t, "ip netns exec "+staNS+" iw dev"); !strings.Contains(out, "P2P-device") {
		t.Fatalf("no P2P-device wdev in the station's namespace:\n%s", out)
	}
	nm := r.netmon(t)
	base := nm.entry(t, `"event":"baseline"`, 30*time.Second)
	if base.str("state") != "up" || base.str("iface") != staIface {
		t.Errorf("baseline %v, want state up on %s", base, staIface)
	}
	if base.str("ssid") != "lab" || base.str("bssid") != ap1BSSID {
		t.Errorf("baseline line without the association (want ssid lab, bssid %s): %v", ap1BSSID, base)
	}
	st := r.status(t)
	w := wifiOf(st, staIface)
	if w == nil {
		t.Fatalf("status --json has no wifi object for %s: %v", staIface, st)
	}
	if w["associated"] != true || w["ssid"] != "lab" || w["bssid"] != ap1BSSID || w["freq_mhz"] != float64(2412) {
		t.Errorf("status wifi = %v, want associated to lab, %s, 2412 MHz", w, ap1BSSID)
	}
	if s, _ := w["signal_dbm"].(float64); s >= 0 || s < -100 {
		t.Errorf("status signal_dbm = %v, want a real signal", w["signal_dbm"])
	}
	if st["wifi_watcher"] != "on" {
		t.Errorf("wifi_watcher = %v, want on", st["wifi_watcher"])
	}
	// netmon still runs: the P2P-device wdev did not stop it.
	if out := r.sh(t, "pidof netmon || true"); strings.TrimSpace(out) == "" {
		t.Fatalf("netmon watch stopped:\n%s", r.sh(t, "cat "+wifilab.LogPath("netmon")))
	}
}

var wpaDisconnectRE = regexp.MustCompile(`CTRL-EVENT-DISCONNECTED bssid=(\S+) reason=(\d+)`)

// testDeauthentication: the AP deauthenticates, then disassociates the
// station; the journal names each as a Wi-Fi disconnect with the reason
// code the station's supplicant saw, the state goes down with
// wifi-disconnected and comes back up on the reconnect. It measures the
// latency from the AP's command to netmon's state line.
func testDeauthentication(t *testing.T, r *rig) {
	r.ap(t, "ap1", ap1)
	wpa := r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	r.connectStatic(t)
	nm := r.netmon(t)
	nm.entry(t, `"event":"baseline".*"state":"up"`, 30*time.Second)
	mac := r.staMAC(t)
	for _, cmd := range []string{"deauthenticate", "disassociate"} {
		out := r.sh(t, "date -u +%s.%N; hostapd_cli -i "+ap1+" "+cmd+" "+mac)
		sent := parseEpoch(t, strings.Fields(out)[0])
		m := wpaDisconnectRE.FindStringSubmatch(wpa.line(t, "CTRL-EVENT-DISCONNECTED", 20*time.Second))
		wantReason, _ := strconv.Atoi(m[2])
		disc := nm.entry(t, `"wifi":"disconnected"`, 20*time.Second)
		if int(disc.num("reason")) != wantReason || disc.str("bssid") != ap1BSSID {
			t.Errorf("%s: journal %v, want reason %d from %s as wpa_supplicant saw it", cmd, disc, wantReason, ap1BSSID)
		}
		down := nm.entry(t, `"event":"state".*"state":"down"`, 20*time.Second)
		if down.str("reason") != "wifi-disconnected" {
			t.Errorf("%s: state line %v, want reason wifi-disconnected", cmd, down)
		}
		t.Logf("%s: state down %v after the AP's command (disconnect line %v)", cmd,
			down.ts(t).Sub(sent).Round(time.Millisecond), disc.ts(t).Sub(sent).Round(time.Millisecond))
		wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
		nm.entry(t, `"event":"state".*"state":"up"`, 30*time.Second)
		flap := nm.entry(t, `"event":"flap"`, 10*time.Second)
		if flap.str("cause") != "wifi-disconnected" {
			t.Errorf("%s: flap %v, want cause wifi-disconnected", cmd, flap)
		}
	}
}

// testP2PDeviceLater: netmon starts first, wpa_supplicant later creates its
// P2P-device wdev and associates; netmon follows the association.
func testP2PDeviceLater(t *testing.T, r *rig) {
	r.ap(t, "ap1", ap1)
	r.connectStatic(t)
	nm := r.netmon(t)
	nm.entry(t, `"event":"baseline"`, 30*time.Second)
	wpa := r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	assoc := nm.entry(t, `"wifi":"associated"`, 20*time.Second)
	if assoc.str("bssid") != ap1BSSID {
		t.Errorf("associated line %v, want bssid %s", assoc, ap1BSSID)
	}
	nm.entry(t, `"event":"state".*"state":"up"`, 20*time.Second)
	w := wifiOf(r.status(t), staIface)
	if w == nil || w["ssid"] != "lab" || w["signal_dbm"] == nil {
		t.Errorf("status after a later P2P-device wdev: wifi %v, want ssid lab with a signal", w)
	}
}

// testWPA2: with WPA2-PSK the Gate stays closed until the 4-way handshake
// has completed (operstate dormant, WEXT link messages in between), a
// wrong key keeps it closed and the journal says why; the right key opens
// it.
func testWPA2(t *testing.T, r *rig) {
	r.ap(t, "ap1", ap1, "wpa=2", "wpa_key_mgmt=WPA-PSK", "rsn_pairwise=CCMP", "wpa_passphrase=robots-on-wifi")
	r.connectStatic(t)
	nm := r.netmon(t)
	nm.entry(t, `"event":"baseline"`, 30*time.Second)
	wpa := r.station(t, "key_mgmt=WPA-PSK", `psk="not-the-key"`)
	wpa.line(t, "WRONG_KEY|CTRL-EVENT-DISCONNECTED", 40*time.Second)
	disc := nm.entry(t, `"wifi":"disconnected"`, 20*time.Second)
	t.Logf("wrong key: %v", disc)
	if st := r.status(t); st["state"] == "up" {
		t.Errorf("state up with a wrong key: %v", st)
	}
	r.stop(t, "wpa")
	nm.skip(t)
	wpa = r.station(t, "key_mgmt=WPA-PSK", `psk="robots-on-wifi"`)
	connected := wpa.line(t, "CTRL-EVENT-CONNECTED", 40*time.Second)
	up := nm.entry(t, `"event":"state".*"state":"up"`, 20*time.Second)
	// wpa_supplicant -t stamps its lines with seconds since the epoch.
	keyed := parseEpoch(t, strings.TrimSuffix(strings.Fields(connected)[0], ":"))
	if up.ts(t).Before(keyed) {
		t.Errorf("state up at %v, before the 4-way handshake completed at %v", up.ts(t), keyed)
	}
}

func parseEpoch(t testing.TB, s string) time.Time {
	t.Helper()
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		t.Fatalf("not a time in seconds: %q", s)
	}
	sec := int64(f)
	return time.Unix(sec, int64((f-float64(sec))*1e9))
}

var _ = fmt.Sprint
