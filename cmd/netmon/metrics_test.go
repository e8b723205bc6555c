package main

import (
	"context"
	"io"
	"net/http"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/gate"
)

// fakeSource is a source with fixed values.
type fakeSource struct {
	snap  netmon.Snapshot
	stats netmon.Stats
	gate  gate.Stats
	procs []netmon.ProcessErrors
}

func (f fakeSource) Snapshot() netmon.Snapshot                   { return f.snap }
func (f fakeSource) Stats() netmon.Stats                         { return f.stats }
func (f fakeSource) GateStats() gate.Stats                       { return f.gate }
func (f fakeSource) SockErrorsByProcess() []netmon.ProcessErrors { return f.procs }

func testSource() fakeSource {
	var st netmon.Stats
	st.Reports[classify.Network][netmon.CauseLinkDown] = 3
	st.Reports[classify.Connection][netmon.CausePeer] = 1
	st.Gaps = 2
	st.DownTime = 1500 * time.Millisecond
	st.SockErrors, st.SockErrorsDropped, st.SockErrorsFiltered = 7, 2, 3
	st.NoRouteSends = 5
	st.EventsDropped = 11
	return fakeSource{
		snap: netmon.Snapshot{
			State: netmon.Degraded, Reason: netmon.ReasonWeakSignal, Iface: "wlan0",
			Since: time.Unix(1700000000, 500_000_000),
			Wifi:  "on", DHCP: "on", LeaseFiles: "unavailable: no lease directory", SockErrors: "off",
			Interfaces: []netmon.IfaceSnapshot{
				{Name: "eth0", Carrier: false, Usable: false},
				{Name: "wlan0", Carrier: true, Usable: true,
					Wifi: &netmon.WifiInfo{Associated: true, SignalDBm: -78},
					DHCP: &netmon.DHCPSnapshot{Phase: "bound", LeaseSec: 3600, LeftSec: 1200}},
			},
			Targets: []netmon.TargetSnapshot{
				{Target: "10.1.0.5:8883", Reachable: true, Iface: "wlan0"},
				{Target: "broker.example.com:8883", Reason: netmon.ReasonUnresolved},
			},
		},
		stats: st,
		gate: gate.Stats{HeldNow: 4, Holds: 9, HeldBytes: 2048, LongestHold: 90 * time.Second, Releases: 3,
			Rejected: 1, Dropped: 2, Interrupted: 6, Retries: 7},
		// They add up to st.SockErrors, as the Monitor's do.
		procs: []netmon.ProcessErrors{
			{Comm: "", Cause: netmon.CausePeer, Count: 1},
			{Comm: netmon.OtherComm, Cause: netmon.CauseUnexplained, Count: 2},
			{Comm: "python3", Cause: netmon.CauseLinkDown, Count: 3},
			{Comm: "python3", Cause: netmon.CauseDHCPRenewing, Count: 1},
		},
	}
}

// gather returns every sample of reg whose family starts with netmon_,
// as "name{k=v,...} value" lines, sorted.
func gather(t *testing.T, reg *prometheus.Registry) []string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var out []string
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "netmon_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			var v float64
			switch {
			case m.Gauge != nil:
				v = m.GetGauge().GetValue()
			case m.Counter != nil:
				v = m.GetCounter().GetValue()
			case m.Histogram != nil:
				v = float64(m.GetHistogram().GetSampleCount())
			}
			out = append(out, mf.GetName()+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'f', -1, 64))
		}
	}
	sort.Strings(out)
	return out
}

// TestMetricsFromMonitor checks every metric against the values of a fake
// Monitor: state as a state set, per-interface gauges only where they
// apply, the Gate and the Monitor's counters, and flaps fed by events.
func TestMetricsFromMonitor(t *testing.T) {
	x := newMetrics(testSource())
	x.gate = true // the Gate has senders (watch --socket)
	x.logDropped = func() uint64 { return 5 }
	x.observeFlap(netmon.Flap{Cause: netmon.ReasonCarrierLost, Duration: 2 * time.Second})
	x.observeFlap(netmon.Flap{Cause: netmon.ReasonCarrierLost, Duration: 300 * time.Millisecond})
	x.observeFlap(netmon.Flap{Cause: netmon.ReasonNoDefaultRoute, Duration: 40 * time.Second})
	all := gather(t, x.registry())
	// The zeros every cause and class start with are counted apart, and
	// the build's version varies.
	var got []string
	zeroFlaps, zeroReports := 0, 0
	for _, l := range all {
		switch {
		case strings.HasPrefix(l, "netmon_flaps_total{") && strings.HasSuffix(l, "} 0"):
			zeroFlaps++
		case strings.HasPrefix(l, "netmon_send_errors_total{") && strings.HasSuffix(l, "} 0"):
			zeroReports++
		case strings.HasPrefix(l, "netmon_build_info{"):
			if !strings.Contains(l, "goversion="+runtime.Version()) || !strings.HasSuffix(l, "} 1") {
				t.Errorf("build info %q", l)
			}
		default:
			got = append(got, l)
		}
	}
	if zeroFlaps != len(outageCauses)-2 {
		t.Errorf("%d causes of outages at 0, want %d (all but the 2 seen)", zeroFlaps, len(outageCauses)-2)
	}
	if zeroReports != 10*numCauses-2 {
		t.Errorf("%d class and cause pairs of failed sends at 0, want %d (10 classes x %d causes, but the 2 seen)", zeroReports, 10*numCauses-2, numCauses)
	}
	want := []string{
		"netmon_dhcp_lease_remaining_seconds{iface=wlan0} 1200",
		"netmon_down_seconds_total{} 1.5",
		"netmon_events_dropped_total{queue=log} 5",
		"netmon_events_dropped_total{queue=monitor} 11",
		"netmon_flaps_total{cause=carrier-lost} 2",
		"netmon_flaps_total{cause=no-default-route} 1",
		"netmon_gate_full_total{action=dropped} 2",
		"netmon_gate_full_total{action=rejected} 1",
		"netmon_gate_held_bytes{} 2048",
		"netmon_gate_held_senders{} 4",
		"netmon_gate_holds_total{} 9",
		"netmon_gate_interrupted_total{} 6",
		"netmon_gate_longest_hold_seconds{} 90",
		"netmon_gate_releases_total{} 3",
		"netmon_gate_retries_total{} 7",
		"netmon_interface_carrier{iface=eth0} 0",
		"netmon_interface_carrier{iface=wlan0} 1",
		"netmon_interface_usable{iface=eth0} 0",
		"netmon_interface_usable{iface=wlan0} 1",
		"netmon_netlink_gaps_total{} 2",
		"netmon_no_route_sends_total{} 5",
		"netmon_outage_duration_seconds{} 3",
		"netmon_send_errors_total{cause=link-down,class=network} 3",
		"netmon_send_errors_total{cause=peer,class=connection} 1",
		"netmon_socket_errors_dropped_total{} 2",
		"netmon_socket_errors_filtered_total{} 3",
		"netmon_socket_errors_total{cause=dhcp-renewing,comm=python3} 1",
		"netmon_socket_errors_total{cause=link-down,comm=python3} 3",
		"netmon_socket_errors_total{cause=peer,comm=} 1",
		"netmon_socket_errors_total{cause=unexplained,comm=other} 2",
		"netmon_state_since_timestamp_seconds{} 1700000000.5",
		"netmon_state{state=degraded} 1",
		"netmon_state{state=down} 0",
		"netmon_state{state=unknown} 0",
		"netmon_state{state=up} 0",
		"netmon_target_reachable{iface=,target=broker.example.com:8883} 0",
		"netmon_target_reachable{iface=wlan0,target=10.1.0.5:8883} 1",
		"netmon_watcher_info{status=off,watcher=sockerr} 1",
		"netmon_watcher_info{status=on,watcher=dhcp} 1",
		"netmon_watcher_info{status=on,watcher=link} 1",
		"netmon_watcher_info{status=on,watcher=wifi} 1",
		"netmon_watcher_info{status=unavailable: no lease directory,watcher=lease_files} 1",
		"netmon_watcher_up{watcher=dhcp} 1",
		"netmon_watcher_up{watcher=lease_files} 0",
		"netmon_watcher_up{watcher=link} 1",
		"netmon_watcher_up{watcher=sockerr} 0",
		"netmon_watcher_up{watcher=wifi} 1",
		"netmon_wifi_signal_dbm{iface=wlan0} -78",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("metrics (-want +got):\n%s", diff)
	}
}

// TestMetricsServe scrapes the HTTP endpoint in the text format and
// checks that serveMetrics returns once its context ends.
func TestMetricsServe(t *testing.T) {
	ln, err := listenMetrics("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveMetrics(ctx, ln, newMetrics(testSource()).registry()) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, line := range []string{
		`netmon_state{state="degraded"} 1`,
		`netmon_wifi_signal_dbm{iface="wlan0"} -78`,
		"# TYPE netmon_send_errors_total counter",
		`netmon_socket_errors_total{cause="link-down",comm="python3"} 3`,
		"# TYPE netmon_outage_duration_seconds histogram",
		"go_goroutines ",
	} {
		if !strings.Contains(string(body), line) {
			t.Errorf("scrape lacks %q", line)
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("serveMetrics after cancel = %v, want nil", err)
	}
}
