package scenarios_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/wifilab"
)

// The lab's network: two access points in the VM's first namespace (wlan0
// and wlan1, both SSID "lab" when a scenario wants two) and the station,
// the robot, on phy2 moved into the namespace "sta" with netmon.
const (
	staNS    = "sta"
	staIface = "wlan2"
	ap1      = "wlan0"
	ap2      = "wlan1"
	ap1BSSID = "02:00:00:00:00:00" // mac80211_hwsim's address for radio 0
	ap2BSSID = "02:00:00:00:01:00"
)

// rig is one booted lab shared by the scenarios of a test.
type rig struct {
	lab *wifilab.Lab
}

// sh runs a guest script (under set -e) for t and fails t with its output
// on error.
func (r *rig) sh(t testing.TB, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := r.lab.Sh(ctx, "set -e\n"+script)
	if err != nil {
		t.Fatalf("%v", err)
	}
	return out
}

// start starts argv in the guest under name, and stops it when t ends.
func (r *rig) start(t testing.TB, name string, argv ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := r.lab.Start(ctx, name, argv...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		r.stop(t, name)
		if t.Failed() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			log, _ := r.lab.ReadFile(ctx, wifilab.LogPath(name))
			t.Logf("%s's log, last lines:\n%s", name, wifilab.LastLines(log, 60))
		}
	})
}

// stop ends the process started under name, if it still runs.
func (r *rig) stop(t testing.TB, name string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code, err := r.lab.Stop(ctx, name, 5*time.Second)
	if err != nil && !strings.Contains(err.Error(), "no process named") {
		t.Errorf("%v", err)
	}
	return code
}

// inSta prefixes argv to run it in the station's namespace.
func inSta(argv ...string) []string {
	return append([]string{"ip", "netns", "exec", staNS}, argv...)
}

// ap starts hostapd on iface with the lines of conf added to an open (or,
// with wpa lines in conf, protected) network "lab" on channel 1.
func (r *rig) ap(t testing.TB, name, iface string, conf ...string) {
	t.Helper()
	path := "/etc/lab/" + name + ".conf"
	r.sh(t, fmt.Sprintf("mkdir -p /etc/lab /var/run/hostapd && cat > %s <<'EOF'\n%s\nEOF", path, strings.Join(append([]string{
		"interface=" + iface, "driver=nl80211", "ssid=lab", "hw_mode=g", "channel=1",
		"ctrl_interface=/var/run/hostapd", "bridge=br0",
	}, conf...), "\n")))
	r.start(t, name, "hostapd", "-t", path)
	r.waitLog(t, name, "AP-ENABLED", 30*time.Second)
}

// station starts wpa_supplicant on the station with one network block.
// The background scan looks for a better AP every 2 s once the signal is
// below -65 dBm, as a roaming robot's supplicant is set up.
func (r *rig) station(t testing.TB, network ...string) *journal {
	t.Helper()
	r.sh(t, fmt.Sprintf("mkdir -p /etc/lab && cat > /etc/lab/sta.conf <<'EOF'\nctrl_interface=/var/run/wpa_supplicant\nnetwork={\n\tssid=\"lab\"\n\tbgscan=\"simple:2:-65:30\"\n\t%s\n}\nEOF",
		strings.Join(network, "\n\t")))
	r.start(t, "wpa", inSta("wpa_supplicant", "-t", "-D", "nl80211", "-i", staIface, "-c", "/etc/lab/sta.conf")...)
	return &journal{r: r, name: "wpa"}
}

// waitLog waits for a line matching pattern anywhere in name's log.
func (r *rig) waitLog(t testing.TB, name, pattern string, timeout time.Duration) string {
	t.Helper()
	j := &journal{r: r, name: name}
	return j.line(t, pattern, timeout)
}

// journal reads the log of one guest process in order.
type journal struct {
	r    *rig
	name string
	off  int64
}

// line waits for the next line matching pattern and returns it.
func (j *journal) line(t testing.TB, pattern string, timeout time.Duration) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout+30*time.Second)
	defer cancel()
	line, end, err := j.r.lab.Wait(ctx, wifilab.LogPath(j.name), pattern, j.off, timeout)
	if err != nil {
		t.Fatalf("%s: %v", j.name, err)
	}
	j.off = end
	return line
}

// skip moves past everything written so far.
func (j *journal) skip(t testing.TB) {
	t.Helper()
	out := j.r.sh(t, "wc -c < "+wifilab.LogPath(j.name))
	var n int64
	fmt.Sscan(strings.TrimSpace(out), &n)
	j.off = n
}

// entry is one JSON line of `netmon watch --log-format json`.
type entry map[string]any

func (e entry) str(k string) string {
	s, _ := e[k].(string)
	return s
}

func (e entry) num(k string) float64 {
	f, _ := e[k].(float64)
	return f
}

// ts is the entry's timestamp.
func (e entry) ts(t testing.TB) time.Time {
	t.Helper()
	at, err := time.Parse(time.RFC3339Nano, e.str("ts"))
	if err != nil {
		t.Fatalf("entry without a timestamp: %v", e)
	}
	return at
}

// entry waits for the next JSON line matching pattern and decodes it.
func (j *journal) entry(t testing.TB, pattern string, timeout time.Duration) entry {
	t.Helper()
	line := j.line(t, pattern, timeout)
	var e entry
	if err := json.Unmarshal([]byte(line), &e); err != nil {
		t.Fatalf("%s: not a JSON line: %q: %v", j.name, line, err)
	}
	return e
}

// entries reads the whole log of name and decodes its JSON lines (netmon's
// journal).
func (r *rig) entries(t testing.TB, name string) []entry {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log, err := r.lab.ReadFile(ctx, wifilab.LogPath(name))
	if err != nil {
		t.Fatal(err)
	}
	var es []entry
	for _, l := range strings.Split(strings.TrimSpace(log), "\n") {
		if !strings.HasPrefix(l, "{") {
			continue // a line on standard error, not the journal's
		}
		var e entry
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("%s: not a JSON line: %q: %v", name, l, err)
		}
		es = append(es, e)
	}
	return es
}

// netmon starts `netmon watch` in the station's namespace and returns its
// journal.
func (r *rig) netmon(t testing.TB, args ...string) *journal {
	t.Helper()
	argv := inSta(append([]string{"/bin/netmon", "watch", "--log-format", "json", "--wifi-poll", "500ms"}, args...)...)
	r.start(t, "netmon", argv...)
	return &journal{r: r, name: "netmon"}
}

// run runs argv in the guest and fails t on error.
func (r *rig) run(t testing.TB, argv ...string) wifilab.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	res, err := r.lab.Run(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// medium sends one command to the lab's wireless medium.
func (r *rig) medium(t testing.TB, words ...string) {
	t.Helper()
	r.run(t, append([]string{"/bin/medium"}, words...)...)
}

// resetMedium puts every radio pair back at the medium's default, -50 dBm,
// when t ends.
func (r *rig) resetMedium(t testing.TB) {
	t.Cleanup(func() {
		for _, p := range [][2]string{{"phy0", "phy2"}, {"phy1", "phy2"}, {"phy0", "phy1"}} {
			r.medium(t, "signal", p[0], p[1], "-50")
		}
	})
}

// status runs `netmon status --json` in the station's namespace.
func (r *rig) status(t testing.TB, args ...string) map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := r.lab.Run(ctx, inSta(append([]string{"/bin/netmon", "status", "--json"}, args...)...)...)
	if err != nil && res.Stdout == "" { // exit 1 means down, and still prints
		t.Fatalf("netmon status: %v", err)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(res.Stdout), &st); err != nil {
		t.Fatalf("netmon status --json: %v\n%s%s", err, res.Stdout, res.Stderr)
	}
	return st
}

// ifaceObj returns the object key (wifi, dhcp) of iface in a status
// snapshot.
func ifaceObj(st map[string]any, iface, key string) map[string]any {
	ifs, _ := st["interfaces"].([]any)
	for _, i := range ifs {
		m, _ := i.(map[string]any)
		if m["name"] == iface {
			o, _ := m[key].(map[string]any)
			return o
		}
	}
	return nil
}

// staMAC is the station's address.
func (r *rig) staMAC(t testing.TB) string {
	t.Helper()
	return strings.TrimSpace(r.sh(t, "ip netns exec "+staNS+" cat /sys/class/net/"+staIface+"/address"))
}

// artifact is a host file for the guest, in the test's temporary dir.
func artifact(t testing.TB, name string) string {
	return filepath.Join(t.TempDir(), name)
}
