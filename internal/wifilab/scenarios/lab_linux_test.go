package scenarios_test

import (
	"context"
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/internal/wifilab"
)

// TestWifiLab boots one VM and runs the scenarios in order; each leaves
// the lab as it found it (no AP, no station, no netmon running, every
// radio pair at the medium's default signal).
func TestWifiLab(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	files := map[string]string{}
	start := time.Now()
	for guest, pkg := range map[string]string{
		"/bin/netmon":    "github.com/seed-a56be422/netmon/cmd/netmon",
		"/bin/medium":    "github.com/seed-a56be422/netmon/internal/wifilab/medium",
		"/bin/sender":    "github.com/seed-a56be422/netmon/examples/sender",
		"/bin/ackserver": "github.com/seed-a56be422/netmon/examples/ackserver",
	} {
		bin := artifact(t, filepath.Base(guest))
		if err := wifilab.GoBuild(ctx, bin, pkg); err != nil {
			t.Fatal(err)
		}
		files[guest] = bin
	}
	t.Logf("built the guest's binaries in %v", time.Since(start).Round(time.Millisecond))
	r := &rig{lab: wifilab.ForTest(t, wifilab.Options{Files: files})}
	// Three radios: AP1 (phy0, wlan0) and AP2 (phy1, wlan1) bridged into
	// one network on br0, and the station (phy2, wlan2) in its own
	// namespace. The medium starts before phy2 moves, so that it knows
	// every radio by its phy and interface names.
	r.sh(t, `modprobe mac80211_hwsim radios=3
ip link add br0 type bridge
ip link set br0 up
ip addr add 10.8.0.1/24 dev br0`)
	r.start(t, "medium", "/bin/medium", "serve")
	r.waitLog(t, "medium", "ready", 20*time.Second)
	r.sh(t, `ip netns add `+staNS+`
iw phy phy2 set netns name `+staNS+`
ip netns exec `+staNS+` ip link set lo up`)
	scenarios := []struct {
		name string
		run  func(*testing.T, *rig)
	}{
		{"association", testAssociation},
		{"deauthentication", testDeauthentication},
		{"fade-and-beacon-loss", testFade},
		{"roam", testRoam},
		{"p2p-device-later", testP2PDeviceLater},
		{"wpa2-psk", testWPA2},
		{"dhcp-dhclient", testDHCPDhclient},
		{"dhcp-dhcpcd", testDHCPDhcpcd},
		{"sockwatch-on-6.1", testSockwatch},
		{"sender", testSender},
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

// online associates the station with an open network, gives it its static
// address and starts netmon (with args), up at its baseline.
func (r *rig) online(t testing.TB, args ...string) (wpa, nm *journal) {
	t.Helper()
	wpa = r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	r.connectStatic(t)
	nm = r.netmon(t, args...)
	nm.entry(t, `"event":"baseline".*"state":"up"`, 30*time.Second)
	return wpa, nm
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
	w := ifaceObj(st, staIface, "wifi")
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
	wpa, nm := r.online(t)
	// ip monitor beside netmon: when the kernel's own link message came.
	r.start(t, "ipmon", inSta("ip", "-ts", "monitor", "link")...)
	ipmon := &journal{r: r, name: "ipmon"}
	mac := r.staMAC(t)
	for _, cmd := range []string{"deauthenticate", "disassociate"} {
		ipmon.skip(t)
		sent := r.run(t, "hostapd_cli", "-i", ap1, cmd, mac).Start
		m := wpaDisconnectRE.FindStringSubmatch(wpa.line(t, "CTRL-EVENT-DISCONNECTED", 20*time.Second))
		wantReason, _ := strconv.Atoi(m[2])
		disc := nm.entry(t, `"wifi":"disconnected"`, 20*time.Second)
		if int(disc.num("reason")) != wantReason || disc.str("bssid") != ap1BSSID {
			t.Errorf("%s: journal %v, want reason %d from %s as wpa_supplicant saw it", cmd, disc, wantReason, ap1BSSID)
		}
		// The AP sent the frame: the kernel says so (by_ap), and a robot's
		// log tells "the AP sent us away" from "we left".
		if disc["by_ap"] != true {
			t.Errorf("%s: journal %v, want by_ap true (the AP's %s frame)", cmd, disc, cmd)
		}
		down := nm.entry(t, `"event":"state".*"state":"down"`, 20*time.Second)
		if down.str("reason") != "wifi-disconnected" {
			t.Errorf("%s: state line %v, want reason wifi-disconnected", cmd, down)
		}
		kernel := ipmonTime(t, ipmon.line(t, `NO-CARRIER|state DOWN`, 10*time.Second))
		t.Logf("%s: state down %v after the AP's command (disconnect line %v; ip monitor's carrier loss %v)", cmd,
			down.ts(t).Sub(sent).Round(time.Millisecond), disc.ts(t).Sub(sent).Round(time.Millisecond),
			kernel.Sub(sent).Round(time.Millisecond))
		wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
		// The flap line comes first, then the state line of the return.
		flap := nm.entry(t, `"event":"flap"`, 30*time.Second)
		if flap.str("cause") != "wifi-disconnected" || flap.str("detail") != "802.11 reason "+m[2] {
			t.Errorf("%s: flap %v, want cause wifi-disconnected, detail 802.11 reason %s", cmd, flap, m[2])
		}
		nm.entry(t, `"event":"state".*"state":"up"`, 10*time.Second)
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
	from := nm.off
	assoc := nm.entry(t, `"wifi":"associated"`, 20*time.Second)
	if assoc.str("bssid") != ap1BSSID {
		t.Errorf("associated line %v, want bssid %s", assoc, ap1BSSID)
	}
	// The state goes up with the operstate, which may come before
	// nl80211's association line (no hold delays a return): look for it
	// from before that line.
	nm.off = from
	nm.entry(t, `"event":"state".*"state":"up"`, 20*time.Second)
	w := ifaceObj(r.status(t), staIface, "wifi")
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
	// The AP gives up the 4-way handshake (the station's key is wrong) and
	// sends the station away with reason 15, 4-way handshake timeout;
	// wpa_supplicant, seeing it before the handshake completed, blames
	// the key.
	m := wpaDisconnectRE.FindStringSubmatch(wpa.line(t, "CTRL-EVENT-DISCONNECTED", 40*time.Second))
	wpa.line(t, "reason=WRONG_KEY", 20*time.Second)
	disc := nm.entry(t, `"wifi":"disconnected"`, 20*time.Second)
	t.Logf("wrong key: %v", disc)
	// The journal says why: the 802.11 reason (15: the handshake failed),
	// the one wpa_supplicant saw, sent by the AP; and the state line's
	// reason is that disconnect.
	if want, _ := strconv.Atoi(m[2]); want != 15 || int(disc.num("reason")) != want || disc["by_ap"] != true {
		t.Errorf("wrong key: journal %v, want reason 15 (4-way handshake timeout, as wpa_supplicant saw: %s) by the AP", disc, m[0])
	}
	if down := nm.entry(t, `"event":"state"`, 20*time.Second); down.str("state") != "down" || down.str("reason") != "wifi-disconnected" {
		t.Errorf("wrong key: state line %v, want down with reason wifi-disconnected", down)
	}
	for _, e := range r.entries(t, "netmon") {
		if e.str("event") == "state" && e.str("state") == "up" {
			t.Errorf("the Gate opened with a wrong key: %v", e)
		}
	}
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

// ipmonTime reads the timestamp `ip -ts monitor` puts before a line (the
// guest's clock is UTC).
func ipmonTime(t testing.TB, line string) time.Time {
	t.Helper()
	end := strings.IndexByte(line, ']')
	if !strings.HasPrefix(line, "[") || end < 0 {
		t.Fatalf("ip monitor line without a timestamp: %q", line)
	}
	at, err := time.Parse("2006-01-02T15:04:05.000000", line[1:end])
	if err != nil {
		t.Fatalf("ip monitor timestamp %q: %v", line[1:end], err)
	}
	return at
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

// testFade: the station drives away from the AP: the signal falls from -40
// to -88 dBm, through the bands (each change once, thanks to the deadband)
// to a degraded weak-signal state; then the AP vanishes (the medium cuts
// the link: beacon loss), a disconnect the station's kernel detects; when
// the AP comes back the station reconnects and the state is up again.
func testFade(t *testing.T, r *rig) {
	r.resetMedium(t)
	r.medium(t, "signal", "phy0", "phy2", "-40")
	r.ap(t, "ap1", ap1)
	wpa, nm := r.online(t)
	r.medium(t, "ramp", "phy0", "phy2", "-40", "-88", "12s")
	for _, band := range []string{"good -> fair", "fair -> weak", "weak -> critical"} {
		e := nm.entry(t, `"wifi":"signal"`, 30*time.Second)
		if !strings.Contains(e.str("msg"), band) {
			t.Errorf("signal line %v, want %q next", e, band)
		}
	}
	nm.skip(t)
	st := r.status(t)
	if st["reason"] != "weak-signal" {
		t.Errorf("status at -88 dBm: state %v reason %v, want weak-signal", st["state"], st["reason"])
	}
	nm.skip(t)
	cut := r.run(t, "/bin/medium", "link", "phy0", "phy2", "off").Start
	m := wpaDisconnectRE.FindStringSubmatch(wpa.line(t, "CTRL-EVENT-DISCONNECTED", 30*time.Second))
	disc := nm.entry(t, `"wifi":"disconnected"`, 20*time.Second)
	if want, _ := strconv.Atoi(m[2]); int(disc.num("reason")) != want || disc["by_ap"] != false {
		t.Errorf("beacon loss: journal %v, want reason %d (as wpa_supplicant saw it), not by the AP", disc, want)
	}
	down := nm.entry(t, `"event":"state".*"state":"down"`, 20*time.Second)
	t.Logf("beacon loss: the kernel's disconnect %v after the cut, state down %v after it",
		disc.ts(t).Sub(cut).Round(time.Millisecond), down.ts(t).Sub(disc.ts(t)).Round(time.Millisecond))
	if down.str("reason") != "wifi-disconnected" {
		t.Errorf("state line %v, want reason wifi-disconnected", down)
	}
	r.medium(t, "signal", "phy0", "phy2", "-45")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 60*time.Second)
	nm.entry(t, `"event":"state".*"state":"up"`, 30*time.Second)
}

// testRoam: two APs of one SSID on one network; the station fades from AP1
// while AP2 comes closer, and its supplicant roams. The journal says
// Roamed with both BSSIDs, and the state never goes down: the Gate stays
// open.
func testRoam(t *testing.T, r *rig) {
	r.resetMedium(t)
	r.medium(t, "signal", "phy0", "phy2", "-45")
	r.medium(t, "signal", "phy1", "phy2", "-85")
	// AP2 out of reach until the station is with AP1: a scan that missed
	// AP1's beacons on a loaded machine would pick the far AP.
	r.medium(t, "link", "phy1", "phy2", "off")
	r.ap(t, "ap1", ap1)
	r.ap(t, "ap2", ap2)
	wpa := r.station(t, "key_mgmt=NONE")
	if l := wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second); !strings.Contains(l, ap1BSSID) {
		t.Fatalf("station connected to the far AP: %s", l)
	}
	r.medium(t, "link", "phy1", "phy2", "on")
	r.connectStatic(t)
	nm := r.netmon(t)
	nm.entry(t, `"event":"baseline".*"state":"up"`, 30*time.Second)
	med := &journal{r: r, name: "medium"}
	med.skip(t)
	r.medium(t, "ramp", "phy0", "phy2", "-45", "-80", "8s")
	r.medium(t, "ramp", "phy1", "phy2", "-85", "-40", "8s")
	l := wpa.line(t, "CTRL-EVENT-CONNECTED|CTRL-EVENT-DISCONNECTED", 90*time.Second)
	if !strings.Contains(l, "CONNECTED - Connection to "+ap2BSSID) {
		t.Fatalf("wpa_supplicant: %s, want a roam to %s", l, ap2BSSID)
	}
	e := nm.entry(t, `"wifi":"roamed"|"event":"state".*"state":"down"`, 20*time.Second)
	if e.str("wifi") != "roamed" {
		t.Fatalf("journal %v before the roam, want Roamed without an outage", e)
	}
	if e.str("from") != ap1BSSID || e.str("to") != ap2BSSID {
		t.Errorf("roamed %v, want from %s to %s", e, ap1BSSID, ap2BSSID)
	}
	t.Logf("roam: %v (downtime %v)", e.str("msg"), e.str("downtime"))
	// After the roam: both ramps end (AP2 strong, AP1 faint), AP1 goes
	// out of reach (the station has nowhere else to go), then AP2 fades to
	// -80 dBm, and netmon's signal line for that fade closes the window.
	// An outage netmon declared late (a roam taken for a disconnect once
	// the roam window passed, a carrier loss after the association) is in
	// the journal before that line.
	med.line(t, `ramp .* done at -80 dBm`, 60*time.Second)
	med.line(t, `ramp .* done at -40 dBm`, 60*time.Second)
	r.medium(t, "link", "phy0", "phy2", "off")
	r.medium(t, "signal", "phy1", "phy2", "-80")
	after := nm.entry(t, `"wifi":"signal"|"event":"state".*"state":"down"`, 60*time.Second)
	if after.str("event") == "state" {
		t.Errorf("the state went down after the roam: %v", after)
	}
	if st := r.status(t); st["state"] == "down" {
		t.Errorf("status after the roam: %v", st["state"])
	}
	// Never down, over the whole run: from the baseline to the end.
	for _, e := range r.entries(t, "netmon") {
		if e.str("event") == "state" && e.str("state") == "down" {
			t.Errorf("the state went down during the roam scenario: %v", e)
		}
	}
}

// testSockwatch: on Debian 12's 6.1 kernel (robots run kernels older than
// the 6.18 the unit tests use), sockwatch loads and reports a refused
// connection across the Wi-Fi link, correlated with the station's state.
func testSockwatch(t *testing.T, r *rig) {
	r.ap(t, "ap1", ap1)
	_, nm := r.online(t, "--sockerr=on")
	nm.entry(t, `"msg":"socket-error tracer on`, 30*time.Second) // it loads after the baseline
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Nothing listens on port 9 of the AP's network: the connection is
	// refused across the air.
	res, _ := r.lab.Run(ctx, inSta("nc", "10.8.0.1", "9")...)
	if !strings.Contains(res.Stderr, "refused") {
		t.Fatalf("nc 10.8.0.1 9: %q %q, want connection refused", res.Stdout, res.Stderr)
	}
	e := nm.entry(t, `"event":"sockerr"`, 20*time.Second)
	if e.str("errno") != "ECONNREFUSED" || e.str("iface") != staIface || e.str("dst") != "10.8.0.1:9" || e.str("comm") != "nc" {
		t.Errorf("sockerr line %v, want ECONNREFUSED from nc to 10.8.0.1:9 on %s", e, staIface)
	}
}

// testSender: the example sender sends numbered messages through the Gate
// to the ackserver behind the APs while the AP deauthenticates the
// station, the AP vanishes for a while and the station roams: every
// message arrives, none is lost, and the Gate held the sender while the
// network was down. Each event waits for the sender's acknowledgements
// before it and after it, so that all of them fall inside the send window
// (checked against the sender's own timestamps at the end).
func testSender(t *testing.T, r *rig) {
	// 50 messages a second for at least 80 s: longer than the events take
	// on a loaded machine (about 30 s alone); a run where the sender ends
	// first fails, saying so, rather than testing nothing.
	const count = 4000
	r.resetMedium(t)
	r.medium(t, "signal", "phy0", "phy2", "-45")
	r.medium(t, "signal", "phy1", "phy2", "-85")
	// AP2 out of reach until the roam, so that the station comes back to
	// AP1 after the deauthentication and the beacon loss.
	r.medium(t, "link", "phy1", "phy2", "off")
	r.ap(t, "ap1", ap1)
	r.ap(t, "ap2", ap2)
	wpa := r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	r.connectStatic(t)
	r.start(t, "ackserver", "/bin/ackserver", "--listen", "10.8.0.1:7000")
	r.waitLog(t, "ackserver", "listening", 20*time.Second)
	r.start(t, "sender", inSta("/bin/sender", "--addr", "10.8.0.1:7000", "--count", strconv.Itoa(count), "--rate", "50",
		"--ack-timeout", "3s", "--log-level", "debug")...)
	snd := &journal{r: r, name: "sender"}
	// acked waits for the sender's next progress line written after now
	// (acknowledgements that came after the event before it).
	acked := func(after string) {
		t.Helper()
		snd.skip(t)
		l := snd.line(t, `\tacknowledged\t|sent \d+, acked \d+`, 90*time.Second)
		if !strings.Contains(l, "\tacknowledged\t") {
			t.Fatalf("the sender ended before any message was acknowledged after %s: %s; make --count larger", after, l)
		}
	}
	acked("the start")
	mac := r.staMAC(t)
	type event struct {
		name string
		at   time.Time
	}
	var events []event
	// happened waits for wpa_supplicant's next line matching pattern and
	// keeps its time under name.
	happened := func(name, pattern string, timeout time.Duration) {
		t.Helper()
		l := wpa.line(t, pattern, timeout)
		events = append(events, event{name, parseEpoch(t, strings.TrimSuffix(strings.Fields(l)[0], ":"))})
	}
	// A deauthentication, then the AP vanishing, then a roam.
	r.run(t, "hostapd_cli", "-i", ap1, "deauthenticate", mac)
	happened("deauthentication", "CTRL-EVENT-DISCONNECTED", 20*time.Second)
	happened("reconnect after the deauthentication", "CTRL-EVENT-CONNECTED", 30*time.Second)
	acked("the deauthentication")
	r.medium(t, "link", "phy0", "phy2", "off")
	happened("beacon loss", "CTRL-EVENT-DISCONNECTED", 30*time.Second)
	r.medium(t, "link", "phy0", "phy2", "on")
	happened("reconnect after the beacon loss", "CTRL-EVENT-CONNECTED", 60*time.Second)
	acked("the beacon loss")
	r.medium(t, "link", "phy1", "phy2", "on")
	r.medium(t, "ramp", "phy0", "phy2", "-45", "-80", "6s")
	r.medium(t, "ramp", "phy1", "phy2", "-85", "-40", "6s")
	happened("roam", "CTRL-EVENT-CONNECTED - Connection to "+ap2BSSID, 90*time.Second)
	acked("the roam")
	done := snd.line(t, `sent \d+, acked \d+`, 3*time.Minute)
	t.Logf("sender: %s", done)
	if !strings.Contains(done, fmt.Sprintf("sent %d, acked %d,", count, count)) {
		t.Errorf("sender: %s, want all %d acknowledged", done, count)
	}
	m := regexp.MustCompile(`held ([^,]+),`).FindStringSubmatch(done)
	if m == nil {
		t.Fatalf("sender: %s, no time held", done)
	}
	if held, err := time.ParseDuration(m[1]); err != nil || held <= 0 {
		t.Errorf("sender: %s, want a time held at the Gate (the network was down three times)", done)
	}
	// The send window: from the sender's first acknowledgement to its
	// last, by the sender's own clock (the guest's, as wpa_supplicant's).
	first, last := r.senderAcks(t, count)
	for _, e := range events {
		t.Logf("%s at %v of the send window's %v", e.name, e.at.Sub(first).Round(time.Millisecond), last.Sub(first).Round(time.Millisecond))
		if !e.at.After(first) || !e.at.Before(last) {
			t.Errorf("%s at %v, outside the send window %v to %v", e.name, e.at.Format(time.StampMilli), first.Format(time.StampMilli), last.Format(time.StampMilli))
		}
	}
	r.stop(t, "ackserver")
	got := r.waitLog(t, "ackserver", "received", 10*time.Second)
	if !strings.Contains(got, fmt.Sprintf("received %d unique", count)) {
		t.Errorf("ackserver: %s, want %d unique", got, count)
	}
}

// senderAcks returns the times of the sender's first and last progress
// lines (zap's console format: time, level, name, message, fields); the
// last must say that all count messages were acknowledged.
func (r *rig) senderAcks(t testing.TB, count int) (first, last time.Time) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log, err := r.lab.ReadFile(ctx, wifilab.LogPath("sender"))
	if err != nil {
		t.Fatal(err)
	}
	var lastLine string
	for _, l := range strings.Split(log, "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 5 || f[3] != "acknowledged" {
			continue
		}
		at, err := time.Parse("2006-01-02T15:04:05.000Z0700", f[0])
		if err != nil {
			t.Fatalf("sender: a line without a time: %q", l)
		}
		if first.IsZero() {
			first = at
		}
		last, lastLine = at, l
	}
	if want := fmt.Sprintf(`{"acked": %d, "of": %d}`, count, count); !strings.HasSuffix(lastLine, want) {
		t.Fatalf("sender: last progress line %q, want %s", lastLine, want)
	}
	return first, last
}

// dhcpServer starts dnsmasq behind the APs (on br0) with 2-minute leases,
// dnsmasq's shortest.
func (r *rig) dhcpServer(t testing.TB) {
	t.Helper()
	r.start(t, "dnsmasq", "dnsmasq", "-d", "-p", "0", "-u", "root", "--interface=br0", "--bind-interfaces",
		"--dhcp-range=10.8.0.50,10.8.0.99,2m", "--dhcp-option=3,10.8.0.1", "--dhcp-leasefile=/tmp/dnsmasq.leases")
	r.waitLog(t, "dnsmasq", "DHCP, IP range", 20*time.Second)
}

// dhcpStation starts AP1 with the DHCP server behind it and associates the
// station without an address, for a DHCP client to give it one; when t
// ends the station's address and the client's lease files (glob) go.
func (r *rig) dhcpStation(t testing.TB, leases string) *journal {
	t.Helper()
	r.ap(t, "ap1", ap1)
	r.dhcpServer(t)
	wpa := r.station(t, "key_mgmt=NONE")
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	r.unaddressed(t)
	t.Cleanup(func() { r.unaddressed(t); r.sh(t, "rm -f "+leases) })
	return wpa
}

// unaddressed leaves the station without an address or route: the DHCP
// client gives them.
func (r *rig) unaddressed(t testing.TB) {
	r.sh(t, `ip netns exec `+staNS+` ip addr flush dev `+staIface+` scope global
ip netns exec `+staNS+` ip route flush dev `+staIface)
}

// testDHCPDhclient: a lease dhclient got over Wi-Fi before netmon started is
// visible at once, on the baseline line and in status.
func testDHCPDhclient(t *testing.T, r *rig) {
	r.dhcpStation(t, "/var/lib/dhcp/dhclient*.leases")
	r.start(t, "dhclient", inSta("dhclient", "-d", "-v", "-lf", "/var/lib/dhcp/dhclient.wlan2.leases", staIface)...)
	r.waitLog(t, "dhclient", "bound to", 60*time.Second)
	nm := r.netmon(t)
	base := nm.entry(t, `"event":"baseline"`, 30*time.Second)
	if base.str("state") != "up" || base.str("dhcp_phase") != "bound" || base.str("lease_left") == "" {
		t.Errorf("baseline %v, want up with the lease bound and its time left", base)
	}
	d := ifaceObj(r.status(t), staIface, "dhcp")
	if d == nil || d["phase"] != "bound" {
		t.Fatalf("status --json dhcp object %v, want bound", d)
	}
	t.Logf("status dhcp: %v", d)
}

// testDHCPDhcpcd: dhcpcd's lease is visible at start; a renewal is
// reported as one; a deauthentication makes dhcpcd drop the address and
// take it again on the reconnect, which is a Wi-Fi reconnect, not a DHCP
// blip.
func testDHCPDhcpcd(t *testing.T, r *rig) {
	wpa := r.dhcpStation(t, "/var/lib/dhcpcd/*.lease")
	r.start(t, "dhcpcd", inSta("dhcpcd", "-B", "-4", "-d", "--noipv4ll", staIface)...)
	r.waitLog(t, "dhcpcd", "leased 10.8.0", 60*time.Second)
	leased := time.Now()
	nm := r.netmon(t)
	base := nm.entry(t, `"event":"baseline"`, 30*time.Second)
	if base.str("state") != "up" || base.str("dhcp_phase") != "bound" {
		t.Errorf("baseline %v, want up with the lease bound", base)
	}
	// A renewal moves the lease's end; one within dhcpwatch's slack (3 s)
	// of the old end is not told apart from clock jitter, so the renewal
	// is asked for a few seconds into the lease, as a real client's (at
	// T1) is well after it.
	time.Sleep(time.Until(leased.Add(2 * dhcpwatch.DefaultSlack)))
	nm.skip(t)
	r.run(t, inSta("dhcpcd", "-4", "-n", staIface)...)
	ren := nm.entry(t, `"event":"dhcp".*"lease":"renewed"`, 30*time.Second)
	t.Logf("renewal: %v", ren.str("msg"))
	r.run(t, "hostapd_cli", "-i", ap1, "deauthenticate", r.staMAC(t))
	wpa.line(t, "CTRL-EVENT-DISCONNECTED", 20*time.Second)
	wpa.line(t, "CTRL-EVENT-CONNECTED", 30*time.Second)
	from := nm.off
	e := nm.entry(t, `"lease":"(blip|reconnected)"`, 60*time.Second)
	if e.str("lease") != "reconnected" {
		t.Errorf("a reconnect's flushed address was taken for a DHCP blip: %v", e)
	}
	t.Logf("reconnect: %v", e.str("msg"))
	nm.off = from // the state line may come before the lease line
	nm.entry(t, `"event":"state".*"state":"up"`, 60*time.Second)
}
