package main

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// TestIntegrationTargetLANOnly: a robot on an access point without a
// default route. Without --target it is never online; with its on-site
// server as the target wait-online returns at once, and once the address
// goes status exits 1 naming the target.
func TestIntegrationTargetLANOnly(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.a.IP("route", "del", "default")
	if code, _, errOut := runNetmon(t, p.a, "wait-online", "--timeout", "500ms", "--wifi=off"); code != exitFail ||
		!strings.Contains(errOut, "down (no-default-route on va)") {
		t.Errorf("without --target: exit %d, %q; want 1, no-default-route", code, errOut)
	}
	if code, out, _ := runNetmon(t, p.a, "wait-online", "--timeout", "20s", "--wifi=off", "--target", "10.9.0.2"); code != exitOK || out != "online: up via va\n" {
		t.Errorf("with --target: exit %d, %q; want 0, \"online: up via va\"", code, out)
	}
	code, out, _ := runNetmon(t, p.a, "status", "--wifi=off", "--target", "10.9.0.2:8883")
	if code != exitOK || !strings.Contains(out, "  target 10.9.0.2:8883 (10.9.0.2) reachable dev va\n") {
		t.Errorf("status --target: exit %d, %q; want 0 and the target's line", code, out)
	}

	p.a.IP("addr", "del", "10.9.0.1/24", "dev", "va")
	code, out, _ = runNetmon(t, p.a, "status", "--json", "--wifi=off", "--target", "10.9.0.2")
	var snap struct {
		State   string `json:"state"`
		Reason  string `json:"reason"`
		Target  string `json:"target"`
		Targets []struct {
			Target    string `json:"target"`
			Reachable bool   `json:"reachable"`
			Reason    string `json:"reason"`
			Error     string `json:"error"`
		} `json:"targets"`
	}
	if err := json.Unmarshal([]byte(out), &snap); err != nil {
		t.Fatalf("status --json: %v", err)
	}
	if code != exitFail || snap.State != "down" || snap.Reason != "no-address" || snap.Target != "10.9.0.2" {
		t.Errorf("after the address went: exit %d, %+v; want 1, down (no-address) for target 10.9.0.2", code, snap)
	}
	if len(snap.Targets) != 1 || snap.Targets[0].Reachable || snap.Targets[0].Reason != "no-route" ||
		!strings.Contains(snap.Targets[0].Error, "network is unreachable") {
		t.Errorf("targets = %+v, want 10.9.0.2 unreachable (no-route, network is unreachable)", snap.Targets)
	}
}

// TestIntegrationWatchJSONOverlay: with wg-quick's full tunnel, the journal
// names the underlay and the tunnel: the baseline says up on va via wg0,
// the underlay's carrier loss is an outage of va, and the flap line says
// so.
func TestIntegrationWatchJSONOverlay(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.a.WGQuick("wg0")
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--wifi=off")
	base := waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	if base["state"] != "up" || base["iface"] != "va" || base["via"] != "wg0" {
		t.Errorf("baseline = %v, want up on va via wg0", base)
	}
	p.b.IP("link", "set", "vb", "down")
	down := waitLine(t, w.lines, "state down", func(m map[string]any) bool { return m["event"] == "state" && m["state"] == "down" })
	if down["reason"] != "carrier-lost" || down["iface"] != "va" || down["via"] != "wg0" {
		t.Errorf("state line = %v, want carrier-lost on va via wg0", down)
	}
	p.b.IP("link", "set", "vb", "up")
	flap := waitLine(t, w.lines, "flap", func(m map[string]any) bool { return m["event"] == "flap" })
	if flap["cause"] != "carrier-lost" || flap["iface"] != "va" {
		t.Errorf("flap line = %v, want carrier-lost on va", flap)
	}
}

// TestIntegrationTargetUnresolved: a host name that does not resolve (the
// namespace reaches no DNS server) is reported as such, with exit 1, once
// the resolver has tried it: status waits for that, not for its timeout.
func TestIntegrationTargetUnresolved(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	// No default route: the resolver's query fails at once, as on a
	// LAN-only network, instead of waiting for a server that never
	// answers.
	p.a.IP("route", "del", "default")
	code, out, _ := runNetmon(t, p.a, "status", "--wifi=off", "--target", "broker.robot.invalid:8883", "--target", "10.9.0.2")
	if code != exitFail || !strings.HasPrefix(out, "degraded target-unreachable va target broker.robot.invalid:8883") ||
		!strings.Contains(out, "  target broker.robot.invalid:8883 unreachable(unresolved)\n") ||
		!strings.Contains(out, "  target 10.9.0.2 reachable dev va\n") {
		t.Errorf("status: exit %d, %q; want 1, degraded for the unresolved name, the address reachable", code, out)
	}
}

// TestIntegrationTargetHostName: a host name target resolved the way a
// robot resolves it. `ip netns exec` shows /etc/netns/NAME/hosts as
// /etc/hosts, so the name is the namespace's own. It has an IPv6 address
// the robot cannot route and an IPv4 one it can: the target is reachable
// through the IPv4 one.
func TestIntegrationTargetHostName(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	dir := "/etc/netns/" + p.a.Name
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	hosts := "2001:db8:99::5 server.robot.test\n10.9.0.2 server.robot.test\n"
	if err := os.WriteFile(dir+"/hosts", []byte(hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runNetmon(t, p.a, "status", "--wifi=off", "--target", "server.robot.test:8883")
	if code != exitOK || !strings.HasPrefix(out, "up va") ||
		!strings.Contains(out, "  target server.robot.test:8883 (10.9.0.2) reachable dev va\n") {
		t.Errorf("status: exit %d, %q; want 0, the name reachable through 10.9.0.2 on va", code, out)
	}
}

// TestIntegrationWatchJSONDualStack: the journal names a lost family.
func TestIntegrationWatchJSONDualStack(t *testing.T) {
	t.Parallel()
	p := newPair(t)
	p.a.IP("addr", "add", "2001:db8:9::1/64", "dev", "va", "nodad")
	p.b.IP("addr", "add", "2001:db8:9::2/64", "dev", "vb", "nodad")
	p.a.IP("-6", "route", "add", "default", "via", "2001:db8:9::2")
	w := startWatch(t, p.a, "watch", "--log-format", "json", "--sockerr=off", "--wifi=off")
	base := waitLine(t, w.lines, "baseline", func(m map[string]any) bool { return m["event"] == "baseline" })
	if base["state"] != "up" || base["iface"] != "va" {
		t.Errorf("baseline = %v, want up on va", base)
	}
	p.a.IP("-4", "route", "del", "default")
	lost := waitLine(t, w.lines, "state degraded", func(m map[string]any) bool { return m["event"] == "state" })
	if lost["state"] != "degraded" || lost["reason"] != "ipv4-lost" || lost["iface"] != "va" || lost["level"] != "warn" {
		t.Errorf("state line = %v, want degraded (ipv4-lost) on va at warn", lost)
	}
	p.a.IP("-4", "route", "add", "default", "via", "10.9.0.2")
	back := waitLine(t, w.lines, "state up", func(m map[string]any) bool { return m["event"] == "state" })
	if back["state"] != "up" || back["reason"] != "" {
		t.Errorf("state line = %v, want up", back)
	}
}
