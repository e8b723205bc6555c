package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/gate"
)

// source is what the metrics read at scrape time; *netmon.Monitor
// provides it through monitorSource, tests through a fake.
type source interface {
	Snapshot() netmon.Snapshot
	Stats() netmon.Stats
	GateStats() gate.Stats
	SockErrorsByProcess() []netmon.ProcessErrors
}

// monitorSource adapts a Monitor to source.
type monitorSource struct{ m *netmon.Monitor }

func (s monitorSource) Snapshot() netmon.Snapshot                   { return s.m.Snapshot() }
func (s monitorSource) Stats() netmon.Stats                         { return s.m.Stats() }
func (s monitorSource) GateStats() gate.Stats                       { return s.m.Gate().Stats() }
func (s monitorSource) SockErrorsByProcess() []netmon.ProcessErrors { return s.m.SockErrorsByProcess() }

// metrics is netmon's Prometheus collector. Gauges and the Monitor's own
// counters are read from the Monitor when Prometheus scrapes, so they are
// never stale and cost nothing between scrapes; flaps by cause and the
// outage histogram are fed from flap events, because the Monitor keeps
// only a bounded journal of flaps.
type metrics struct {
	src source
	// logDropped, when set, counts the events `netmon watch` could not
	// log because stdout fell behind.
	logDropped func() uint64
	// apiDropped, when set, counts the events the local API's event
	// streams missed because they fell behind and were cut off.
	apiDropped func() uint64

	flaps  *prometheus.CounterVec
	outage prometheus.Histogram

	state, since, carrier, usable, signal, leaseLeft                                  *prometheus.Desc
	held, holds, reports, gaps, downTime, sockErrs, sockDrops, sockFiltered, noRoutes *prometheus.Desc
	target, eventDrops                                                                *prometheus.Desc
	// The Gate's bound, release and retries (gate.Stats).
	heldBytes, longestHold, releases, full, interrupted, retries *prometheus.Desc

	// gate, when set, exports the Gate's metrics: only where the Gate has
	// senders (the local API's waiters); `netmon watch` without --socket
	// has none, and metrics that are always 0 would say nothing.
	gate bool

	watcherUp, watcherInfo, buildInfo *prometheus.Desc
}

// outageCauses are the reasons an outage can begin with: netmon_flaps_total
// has each from the start, at 0, so that the first flap of a cause shows
// in increase() and rate() (a counter that appears at 1 has no increase).
var outageCauses = []netmon.Reason{netmon.ReasonNoInterface, netmon.ReasonAdminDown, netmon.ReasonCarrierLost,
	netmon.ReasonWifiDisconnect, netmon.ReasonNoAddress, netmon.ReasonNoDefaultRoute, netmon.ReasonLeaseExpired,
	netmon.ReasonSendErrors, netmon.ReasonGatewayFailed, netmon.ReasonNoRoute, netmon.ReasonNoUnderlay,
	netmon.ReasonUnresolved}

// numCauses is how many netmon.Cause values exist (CauseNone to
// CauseUnexplained).
const numCauses = int(netmon.CauseUnexplained) + 1

// newMetrics returns the collectors for src.
func newMetrics(src source) *metrics {
	x := newCollectors(src)
	for _, c := range outageCauses {
		x.flaps.WithLabelValues(string(c))
	}
	return x
}

func newCollectors(src source) *metrics {
	return &metrics{
		watcherUp: prometheus.NewDesc("netmon_watcher_up",
			"1 when the watcher runs, 0 when it is off, unavailable or not started yet: link (rtnetlink), wifi (nl80211), dhcp (leases from address lifetimes), lease_files, sockerr (eBPF).",
			[]string{"watcher"}, nil),
		watcherInfo: prometheus.NewDesc("netmon_watcher_info",
			"Always 1; status says why a watcher is not up (\"on\", \"off\", \"starting\", \"unavailable: <reason>\").",
			[]string{"watcher", "status"}, nil),
		buildInfo: prometheus.NewDesc("netmon_build_info",
			"Always 1; the labels say which netmon build runs.", []string{"version", "goversion"}, nil),
		src: src,
		flaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "netmon_flaps_total",
			Help: "Outages that ended, by the reason they began with (carrier-lost, no-default-route, ...).",
		}, []string{"cause"}),
		outage: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "netmon_outage_duration_seconds",
			Help: "Duration of outages that ended.",
			// From a DHCP blip (well under a second) to a robot parked
			// out of coverage for ten minutes.
			Buckets: []float64{0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600},
		}),
		state: prometheus.NewDesc("netmon_state",
			"Connectivity state: 1 for the current state, 0 for the others.", []string{"state"}, nil),
		since: prometheus.NewDesc("netmon_state_since_timestamp_seconds",
			"When the current state (and reason) began, as a Unix time.", nil, nil),
		carrier: prometheus.NewDesc("netmon_interface_carrier",
			"1 when the interface has carrier (IFF_LOWER_UP).", []string{"iface"}, nil),
		usable: prometheus.NewDesc("netmon_interface_usable",
			"1 when the interface has carrier, a usable address and a default route.", []string{"iface"}, nil),
		signal: prometheus.NewDesc("netmon_wifi_signal_dbm",
			"Signal of the associated access point, in dBm (wireless interfaces that are associated only).", []string{"iface"}, nil),
		leaseLeft: prometheus.NewDesc("netmon_dhcp_lease_remaining_seconds",
			"Time left on the DHCP lease (interfaces with a known lease expiry only).", []string{"iface"}, nil),
		held: prometheus.NewDesc("netmon_gate_held_senders",
			"Senders held at the Gate now.", nil, nil),
		holds: prometheus.NewDesc("netmon_gate_holds_total",
			"Waits at the Gate that found it closed and held the sender.", nil, nil),
		heldBytes: prometheus.NewDesc("netmon_gate_held_bytes",
			"Sum of the sizes senders gave (gate.Call.Size) of the sends held at the Gate now.", nil, nil),
		longestHold: prometheus.NewDesc("netmon_gate_longest_hold_seconds",
			"How long the oldest sender held at the Gate now has waited; 0 when none is held.", nil, nil),
		releases: prometheus.NewDesc("netmon_gate_releases_total",
			"Held senders the Gate let go when it opened.", nil, nil),
		full: prometheus.NewDesc("netmon_gate_full_total",
			"Sends the Gate did not keep because its policy's MaxHeld (or MaxHeldBytes) was reached: action=\"rejected\" those refused with ErrFull, action=\"dropped\" held ones dropped for a newer send of the same or a higher priority.",
			[]string{"action"}, nil),
		interrupted: prometheus.NewDesc("netmon_gate_interrupted_total",
			"Send attempts whose context the Gate cancelled because it closed while they ran; each is held and sent again.", nil, nil),
		retries: prometheus.NewDesc("netmon_gate_retries_total",
			"Send attempts through the Gate after the first of their call.", nil, nil),
		reports: prometheus.NewDesc("netmon_send_errors_total",
			"Failed sends, by error class and by what the network was doing: those senders reported to the Monitor and those eBPF observed in any process; a failure both reported and observed counts once.", []string{"class", "cause"}, nil),
		gaps: prometheus.NewDesc("netmon_netlink_gaps_total",
			"Times kernel messages (rtnetlink, or nl80211 for Wi-Fi) were lost and the state was re-read.", nil, nil),
		downTime: prometheus.NewDesc("netmon_down_seconds_total",
			"Total duration of the outages that ended.", nil, nil),
		sockErrs: prometheus.NewDesc("netmon_socket_errors_total",
			"Failed socket operations observed with eBPF, by process name (comm; \"\" when the process is unknown, \"other\" beyond the first 64 names) and by what the network was doing.",
			[]string{"comm", "cause"}, nil),
		sockFiltered: prometheus.NewDesc("netmon_socket_errors_filtered_total",
			"Failed socket operations left out by the --sockerr-cgroup and --sockerr-dst filters.", nil, nil),
		sockDrops: prometheus.NewDesc("netmon_socket_errors_dropped_total",
			"Failed socket operations lost because the eBPF ring buffer was full.", nil, nil),
		noRoutes: prometheus.NewDesc("netmon_no_route_sends_total",
			"Sends that found no route (the kernel's OutNoRoutes and Ip6OutNoRoutes, ENETUNREACH of any process) while the state was up or degraded and no --sockerr-syscalls tracing named their processes.", nil, nil),
		target: prometheus.NewDesc("netmon_target_reachable",
			"1 when the kernel's path to the target can carry traffic (--target, or internet-ipv4 and internet-ipv6 without targets); iface is the interface judged (the underlay of a tunnel).",
			[]string{"target", "iface"}, nil),
		eventDrops: prometheus.NewDesc("netmon_events_dropped_total",
			"Events lost because their reader fell behind: queue=\"monitor\" those the Monitor dropped for its subscriber, queue=\"log\" those not logged because stdout fell behind, queue=\"api\" those the local API's event streams missed when they fell behind and were cut off. The state and these metrics never wait for any of them.",
			[]string{"queue"}, nil),
	}
}

// observeFlap counts an outage that ended.
func (x *metrics) observeFlap(f netmon.Flap) {
	x.flaps.WithLabelValues(string(f.Cause)).Inc()
	x.outage.Observe(f.Duration.Seconds())
}

// Describe implements prometheus.Collector.
func (x *metrics) Describe(ch chan<- *prometheus.Desc) {
	x.flaps.Describe(ch)
	x.outage.Describe(ch)
	for _, d := range []*prometheus.Desc{x.state, x.since, x.carrier, x.usable, x.signal, x.leaseLeft,
		x.reports, x.gaps, x.downTime, x.sockErrs, x.sockDrops, x.sockFiltered, x.noRoutes, x.target, x.eventDrops,
		x.watcherUp, x.watcherInfo, x.buildInfo} {
		ch <- d
	}
	if x.gate {
		for _, d := range []*prometheus.Desc{x.held, x.holds, x.heldBytes, x.longestHold, x.releases, x.full, x.interrupted, x.retries} {
			ch <- d
		}
	}
}

// Collect implements prometheus.Collector.
func (x *metrics) Collect(ch chan<- prometheus.Metric) {
	x.flaps.Collect(ch)
	x.outage.Collect(ch)

	snap := x.src.Snapshot()
	for _, s := range []netmon.State{netmon.Unknown, netmon.Up, netmon.Degraded, netmon.Down} {
		v := 0.0
		if s == snap.State {
			v = 1
		}
		ch <- prometheus.MustNewConstMetric(x.state, prometheus.GaugeValue, v, s.String())
	}
	if !snap.Since.IsZero() {
		ch <- prometheus.MustNewConstMetric(x.since, prometheus.GaugeValue, float64(snap.Since.UnixNano())/1e9)
	}
	for _, is := range snap.Interfaces {
		ch <- prometheus.MustNewConstMetric(x.carrier, prometheus.GaugeValue, b2f(is.Carrier), is.Name)
		ch <- prometheus.MustNewConstMetric(x.usable, prometheus.GaugeValue, b2f(is.Usable), is.Name)
		if w := is.Wifi; w != nil && w.Associated && w.SignalDBm != 0 {
			ch <- prometheus.MustNewConstMetric(x.signal, prometheus.GaugeValue, float64(w.SignalDBm), is.Name)
		}
		if d := is.DHCP; d != nil && d.LeaseSec > 0 {
			ch <- prometheus.MustNewConstMetric(x.leaseLeft, prometheus.GaugeValue, d.LeftSec, is.Name)
		}
	}

	for _, t := range snap.Targets {
		ch <- prometheus.MustNewConstMetric(x.target, prometheus.GaugeValue, b2f(t.Reachable), t.Target, t.Iface)
	}

	// The watchers: the link watcher runs once the kernel has been read.
	link := "on"
	if snap.State == netmon.Unknown {
		link = "starting"
	}
	for _, w := range []struct{ name, status string }{{"link", link}, {"wifi", snap.Wifi}, {"dhcp", snap.DHCP},
		{"lease_files", snap.LeaseFiles}, {"sockerr", snap.SockErrors}} {
		ch <- prometheus.MustNewConstMetric(x.watcherUp, prometheus.GaugeValue, b2f(w.status == "on"), w.name)
		ch <- prometheus.MustNewConstMetric(x.watcherInfo, prometheus.GaugeValue, 1, w.name, w.status)
	}
	ch <- prometheus.MustNewConstMetric(x.buildInfo, prometheus.GaugeValue, 1, buildVersion(), runtime.Version())

	if x.gate {
		x.collectGate(ch)
	}

	st := x.src.Stats()
	// Every class and cause from the start, at 0 (see outageCauses); the
	// matrix is small (10 classes, 10 causes).
	for class := range st.Reports {
		if classify.Class(class) == classify.None {
			continue
		}
		for cause := range numCauses {
			ch <- prometheus.MustNewConstMetric(x.reports, prometheus.CounterValue, float64(st.Reports[class][cause]),
				classify.Class(class).String(), netmon.Cause(cause).String())
		}
	}
	ch <- prometheus.MustNewConstMetric(x.gaps, prometheus.CounterValue, float64(st.Gaps))
	ch <- prometheus.MustNewConstMetric(x.downTime, prometheus.CounterValue, st.DownTime.Seconds())
	for _, p := range x.src.SockErrorsByProcess() {
		ch <- prometheus.MustNewConstMetric(x.sockErrs, prometheus.CounterValue, float64(p.Count), p.Comm, p.Cause.String())
	}
	ch <- prometheus.MustNewConstMetric(x.sockDrops, prometheus.CounterValue, float64(st.SockErrorsDropped))
	ch <- prometheus.MustNewConstMetric(x.sockFiltered, prometheus.CounterValue, float64(st.SockErrorsFiltered))
	ch <- prometheus.MustNewConstMetric(x.noRoutes, prometheus.CounterValue, float64(st.NoRouteSends))
	ch <- prometheus.MustNewConstMetric(x.eventDrops, prometheus.CounterValue, float64(st.EventsDropped), "monitor")
	if x.logDropped != nil {
		ch <- prometheus.MustNewConstMetric(x.eventDrops, prometheus.CounterValue, float64(x.logDropped()), "log")
	}
	if x.apiDropped != nil {
		ch <- prometheus.MustNewConstMetric(x.eventDrops, prometheus.CounterValue, float64(x.apiDropped()), "api")
	}
}

// collectGate collects the Gate's metrics.
func (x *metrics) collectGate(ch chan<- prometheus.Metric) {
	g := x.src.GateStats()
	ch <- prometheus.MustNewConstMetric(x.held, prometheus.GaugeValue, float64(g.HeldNow))
	ch <- prometheus.MustNewConstMetric(x.holds, prometheus.CounterValue, float64(g.Holds))
	ch <- prometheus.MustNewConstMetric(x.heldBytes, prometheus.GaugeValue, float64(g.HeldBytes))
	ch <- prometheus.MustNewConstMetric(x.longestHold, prometheus.GaugeValue, g.LongestHold.Seconds())
	ch <- prometheus.MustNewConstMetric(x.releases, prometheus.CounterValue, float64(g.Releases))
	ch <- prometheus.MustNewConstMetric(x.full, prometheus.CounterValue, float64(g.Rejected), "rejected")
	ch <- prometheus.MustNewConstMetric(x.full, prometheus.CounterValue, float64(g.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(x.interrupted, prometheus.CounterValue, float64(g.Interrupted))
	ch <- prometheus.MustNewConstMetric(x.retries, prometheus.CounterValue, float64(g.Retries))
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// registry returns a registry with netmon's metrics and the usual Go
// runtime and process metrics, which tell a fleet operator whether netmon
// itself is healthy.
func (x *metrics) registry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(x, collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// listenMetrics binds addr now, so that an address that cannot be bound
// is reported before watching starts. A malformed address is a usage
// error; one that is well formed but cannot be bound (in use, not an
// address of this machine, a privileged port) is a failure to run.
func listenMetrics(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		var ae *net.AddrError
		var de *net.DNSError
		if errors.As(err, &ae) || errors.As(err, &de) {
			return nil, usageError{err}
		}
		return nil, err
	}
	return ln, nil
}

// serveMetrics serves reg on ln at /metrics until ctx ends, then shuts
// the server down and returns once it has stopped.
func serveMetrics(ctx context.Context, ln net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", metricsHandler(reg))
	return serveHTTP(ctx, &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}, ln, nil)
}

// metricsHandler serves reg's metrics.
func metricsHandler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// serveHTTP serves srv on ln until ctx ends; then it calls stop (when not
// nil: it ends requests that would otherwise run on, such as long polls),
// shuts the server down, giving requests in flight 5 s, and returns once
// the server has stopped.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, stop func()) error {
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	if stop != nil {
		stop()
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		// Requests still running after 5 s (a client that stalls its
		// own connection): close them rather than fail the stop.
		err = srv.Close()
	}
	if serr := <-errc; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
