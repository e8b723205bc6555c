package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestIntegrationLeaseFromTheFirstSecond runs a real dnsmasq and a real
// DHCP client (dhclient with Debian's dhclient-script, and dhcpcd) in
// namespaces, then netmon in the client's namespace (issue 14): the first
// snapshot `status --json` prints, and the baseline line of `watch`, carry
// the lease (bound, with its time left) long before its first renewal at
// T1 (60 s), and status names every watcher as on, off or unavailable,
// never still starting.
func TestIntegrationLeaseFromTheFirstSecond(t *testing.T) {
	t.Parallel()
	dnsmasq := netnstest.RequireCommand(t, "dnsmasq", "dnsmasq-base")
	for i, client := range []string{"dhclient", "dhcpcd"} {
		t.Run(client, func(t *testing.T) {
			t.Parallel()
			srvIf, cliIf := fmt.Sprintf("nds%d", i), fmt.Sprintf("ndc%d", i)
			srv, cli := netnstest.New(t), netnstest.New(t)
			netnstest.Veth(t, srv, srvIf, cli, cliIf)
			net := fmt.Sprintf("10.7%d.0.", i)
			srv.IP("addr", "add", net+"1/24", "dev", srvIf)
			dir := t.TempDir()
			conf := filepath.Join(dir, "dnsmasq.conf")
			// A 2-minute lease (dnsmasq's minimum): T1 at 60 s, far after
			// the snapshot; no DNS, so no client touches resolv.conf.
			if err := os.WriteFile(conf, []byte("port=0\ninterface="+srvIf+"\nbind-interfaces\ndhcp-authoritative\n"+
				"dhcp-range="+net+"50,"+net+"59,255.255.255.0,2m\ndhcp-option=option:router,"+net+"1\n"+
				"dhcp-leasefile="+filepath.Join(dir, "dnsmasq.leases")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			srv.Start(dnsmasq, "-k", "-C", conf, "--user=root", "--pid-file="+filepath.Join(dir, "dnsmasq.pid"))
			startClient(t, cli, client, cliIf, dir)

			// The lease is there once the client's address and default
			// route make the namespace online.
			if code, _, _ := runNetmon(t, cli, "wait-online", "--iface", cliIf, "--timeout", "60s"); code != 0 {
				t.Fatalf("wait-online: exit %d, want 0: no lease from dnsmasq", code)
			}

			start := time.Now()
			code, stdout, _ := runNetmon(t, cli, "status", "--json", "--iface", cliIf)
			t.Logf("status printed its snapshot %v after it started", time.Since(start).Round(time.Millisecond))
			if code != 0 {
				t.Fatalf("status: exit %d, want 0", code)
			}
			var snap struct {
				Interfaces []struct {
					Name string
					DHCP *struct {
						Phase  string
						Left   float64 `json:"time_left_seconds"`
						Source string
					}
				}
				Wifi       string `json:"wifi_watcher"`
				DHCP       string `json:"dhcp_watcher"`
				LeaseFiles string `json:"lease_files_watcher"`
				SockErrors string `json:"sockerr_watcher"`
			}
			if err := json.Unmarshal([]byte(stdout), &snap); err != nil {
				t.Fatalf("status --json: %v", err)
			}
			if len(snap.Interfaces) != 1 || snap.Interfaces[0].DHCP == nil {
				t.Fatalf("status --json interfaces %+v: want %s with a dhcp object", snap.Interfaces, cliIf)
			}
			if d := snap.Interfaces[0].DHCP; d.Phase != "bound" || d.Left <= 60 || d.Left > 120 || d.Source != "kernel" {
				t.Errorf("status dhcp %+v: want bound, from the kernel, with 60 to 120 s left", *d)
			}
			// This machine may or may not have cfg80211: either way Wi-Fi
			// is settled before the snapshot.
			if snap.Wifi != "on" && !strings.HasPrefix(snap.Wifi, "unavailable: ") {
				t.Errorf("wifi_watcher %q: want on or unavailable with a reason", snap.Wifi)
			}
			if snap.DHCP != "on" || snap.LeaseFiles != "on" || snap.SockErrors != "off" {
				t.Errorf("watchers dhcp %q, lease files %q, sockerr %q: want on, on, off", snap.DHCP, snap.LeaseFiles, snap.SockErrors)
			}

			w := startWatch(t, cli, "watch", "--log-format", "json", "--sockerr=off", "--iface", cliIf)
			base := waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
			if base["dhcp_phase"] != "bound" || base["lease_left"] == nil || base["iface"] != cliIf {
				t.Errorf("baseline line %v: want iface %s with dhcp_phase bound and lease_left", base, cliIf)
			}
		})
	}
}

// startClient starts a DHCP client on dev in ns, in a private mount
// namespace in which its hooks and state cannot reach the host's: /run is
// a fresh tmpfs, and dhcpcd's compiled-in lease directory is dir (dhcpcd
// 9.4.1 cannot be told another). dhclient's files go to dir by flag.
func startClient(t *testing.T, ns *netnstest.NS, client, dev, dir string) {
	t.Helper()
	prog := netnstest.RequireCommand(t, client, map[string]string{"dhclient": "isc-dhcp-client", "dhcpcd": "dhcpcd-base"}[client])
	var mounts string
	var args []string
	switch client {
	case "dhclient":
		if _, err := os.Stat("/sbin/dhclient-script"); err != nil {
			netnstest.Skip(t, "no /sbin/dhclient-script (apt-get install isc-dhcp-client)")
		}
		args = []string{"-d", "-4", "-lf", filepath.Join(dir, "dhclient.leases"), "-pf", filepath.Join(dir, "dhclient.pid"),
			"-sf", "/sbin/dhclient-script", dev}
	case "dhcpcd":
		const db = "/var/lib/dhcpcd"
		if st, err := os.Stat(db); err != nil || !st.IsDir() {
			mounts = "mount -t tmpfs none /var/lib && mkdir " + db + " && "
		}
		mounts += "mount --bind " + dir + " " + db + " && "
		// No configuration, no hook scripts, no IPv4LL.
		args = []string{"-B", "-4", "-L", "-d", "-f", "/dev/null", "-c", "/bin/true", dev}
	}
	ns.Start("unshare", append([]string{"-m", "--propagation", "slave", "sh", "-c",
		"mount -t tmpfs none /run && " + mounts + `exec "$0" "$@"`, prog}, args...)...)
}
