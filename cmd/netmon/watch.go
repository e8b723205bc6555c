package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/sockwatch"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
)

func runWatch(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("watch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf monitorFlags
	mf.register(fs)
	wifiPoll := fs.Duration("wifi-poll", 2*time.Second, "Wi-Fi station poll interval (signal, bitrate)")
	sockerr := choice{v: "auto", allowed: []string{"auto", "on", "off"}}
	fs.Var(&sockerr, "sockerr", "trace failed sends of every process with eBPF: `auto|on|off`; auto uses it when permitted (CAP_BPF and CAP_PERFMON), on fails without it")
	sockSyscalls := fs.Bool("sockerr-syscalls", false, "also trace connect/sendto/sendmsg exits, to see errors returned at once (ENETUNREACH from a UDP send or a connect); costs about 5% on sends and 6x on failing connects (measured), so off by default")
	var sockComms commList
	fs.Var(&sockComms, "sockerr-comm", "trace only processes with this `NAME` (the kernel's comm, 15 bytes at most); repeatable (default: every process)")
	var sockCgroups stringList
	fs.Var(&sockCgroups, "sockerr-cgroup", "trace only processes in the cgroup v2 directory `PATH`, e.g. /sys/fs/cgroup/system.slice/robot.service (processes in that cgroup itself, not in cgroups below it); repeatable (default: every cgroup)")
	var sockDsts prefixList
	fs.Var(&sockDsts, "sockerr-dst", "trace only failures towards `PREFIX`, e.g. 10.0.0.0/8 or 2001:db8::/32; an address means that host; repeatable (default: every destination)")
	sockLogEvery := fs.Duration("sockerr-log-interval", defaultSockLogInterval, "log the first failure of a process, errno and destination at once and its repeats within this `INTERVAL` as one summary line with their count (the metrics count every failure)")
	format := choice{v: "console", allowed: []string{"console", "json"}}
	fs.Var(&format, "log-format", "output format: `console|json`; json writes one object per line (the JSON-lines contract)")
	level := zapcore.InfoLevel
	fs.Var(&level, "log-level", "lowest `LEVEL` logged: debug, info (the default), warn or error")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9810 (default: off)")
	socketPath := fs.String("socket", "", "serve the local API (HTTP with JSON: /v1/state, /v1/wait, /v1/events, /v1/report; /metrics without --metrics-addr) on the Unix socket `PATH`, e.g. /run/netmon/netmon.sock (default: off)")
	sockMode := socketMode(0o660)
	fs.Var(&sockMode, "socket-mode", "permission bits of the --socket file, in octal (`MODE`): who may connect")
	socketGroup := fs.String("socket-group", "", "group of the --socket file (`NAME` or ID), whose members may connect with the default mode (default: netmon's own group)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: netmon watch [flags]")
		fmt.Fprintln(fs.Output(), "\nLogs the baseline state, then every link, address, route, Wi-Fi, DHCP and")
		fmt.Fprintln(fs.Output(), "state event, and one line per outage when it ends. On SIGINT or SIGTERM it")
		fmt.Fprintln(fs.Output(), "logs a summary (outages, total down time) and exits 0.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *wifiPoll <= 0 {
		fmt.Fprintf(stderr, "netmon watch: --wifi-poll %v: want a positive duration\n", *wifiPoll)
		return exitUsage
	}
	if err := checkCgroups(sockCgroups); err != nil {
		return fail(stderr, "watch", err)
	}
	if *sockLogEvery <= 0 {
		fmt.Fprintf(stderr, "netmon watch: --sockerr-log-interval %v: want a positive duration, e.g. 10s\n", *sockLogEvery)
		return exitUsage
	}
	if sockerr.v != "off" {
		// What the tracer would refuse when it loads (after the baseline)
		// is refused now, as a usage error: a name too long for the
		// kernel's comm, too many prefixes.
		cfg := sockwatch.Config{Comms: sockComms, Destinations: sockDsts, SyscallTracing: *sockSyscalls}
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "netmon watch: --sockerr-comm/--sockerr-dst: %v\n", err)
			return exitUsage
		}
	}

	gid := -1
	if *socketGroup != "" {
		if *socketPath == "" {
			fmt.Fprintln(stderr, "netmon watch: --socket-group needs --socket")
			return exitUsage
		}
		var err error
		if gid, err = lookupGroup(*socketGroup); err != nil {
			return fail(stderr, "watch", usageError{err})
		}
	}

	log, err := newLogger(format.v, level, stdout)
	if err != nil {
		return fail(stderr, "watch", usageError{err})
	}
	defer func() { _ = log.Sync() }()
	// The Monitor's own diagnostics go to stderr, so that stdout holds
	// event lines only; its notices are events too, hence warn and above
	// unless debugging.
	diag, _ := newLogger(format.v, max(level, zapcore.WarnLevel), stderr)
	if level == zapcore.DebugLevel {
		diag, _ = newLogger(format.v, level, stderr)
	}
	defer func() { _ = diag.Sync() }()

	o := mf.options(diag)
	o.WifiPollInterval = *wifiPoll
	o.SockErrors = sockerr.v
	o.SockSyscalls = *sockSyscalls
	o.SockComms = []string(sockComms)
	o.SockCgroups = sockCgroups
	o.SockDestinations = sockDsts
	m, err := newMonitor(o)
	if err != nil {
		return fail(stderr, "watch", err)
	}
	met := newMetrics(monitorSource{m})
	// Lines are written on their own goroutine: a stalled stdout delays
	// (and at worst drops) lines, never the reading of events, and so
	// never the flap metrics fed from them below.
	w := startLogWriter(log)
	defer w.close()
	met.logDropped = w.dropped
	g, gctx := errgroup.WithContext(ctx)
	if *metricsAddr != "" {
		l, err := listenMetrics(*metricsAddr)
		if err != nil {
			return fail(stderr, "watch", fmt.Errorf("--metrics-addr %s: %w", *metricsAddr, err))
		}
		if a, ok := l.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
			diag.Warn(fmt.Sprintf("--metrics-addr %s: the metrics are served beyond loopback, to every host that can reach %v; bind 127.0.0.1 unless a remote Prometheus scrapes them", *metricsAddr, a))
		}
		g.Go(func() error { return serveMetrics(gctx, l, met.registry()) })
	}
	var hub *eventHub
	if *socketPath != "" {
		l, err := listenSocket(*socketPath, os.FileMode(sockMode), gid)
		if err != nil {
			return fail(stderr, "watch", err) // the path is well formed: a failure to run, not a usage error
		}
		hub = newEventHub()
		met.apiDropped = hub.dropped.Load
		met.gate = true // the API's waiters are the Gate's senders
		a := &api{m: m, targets: mf.targets, hub: hub}
		if *metricsAddr == "" {
			a.metrics = metricsHandler(met.registry())
		}
		g.Go(func() error { return serveAPI(gctx, l, a) })
	}

	start := time.Now()
	events := m.Events()
	var runErr error
	g.Go(func() error {
		runErr = m.Run(gctx)
		if ctx.Err() != nil {
			return nil // ended by a signal: the normal way out
		}
		if runErr == nil {
			runErr = errors.New("monitor stopped")
		}
		return runErr
	})
	byCause := map[netmon.Reason]int{}
	var last netmon.Status // the last state logged; after Run, m.Status() says shutdown
	// Failed sends are logged through agg: the first of a process, errno
	// and destination at once, its repeats as one summary line per
	// interval, so that a reset storm cannot trip journald's rate limit
	// and take the state and flap lines with it. The API's event stream
	// and the metrics get every failure.
	agg := newSockAgg(*sockLogEvery, sockAggKeys)
	tick := time.NewTicker(*sockLogEvery)
	defer tick.Stop()
	for open := true; open; {
		select {
		case ev, ok := <-events:
			if !ok {
				open = false
				break
			}
			// Metrics first: whoever reads the flap line and then
			// scrapes must find it counted.
			if ev.Kind == netmon.EventFlap && ev.Flap != nil {
				met.observeFlap(*ev.Flap)
				byCause[ev.Flap.Cause]++
			}
			if ev.Kind == netmon.EventBaseline || ev.Kind == netmon.EventState {
				last = ev.Status
			}
			if hub != nil {
				hub.publish(ev)
			}
			if agg.add(ev) {
				w.add(ev)
			}
		case now := <-tick.C:
			for _, s := range agg.flush(now, false) {
				w.add(s)
			}
		}
	}
	for _, s := range agg.flush(time.Now(), true) {
		w.add(s)
	}
	w.close() // the lines still queued go out before the summary, once stdout takes them
	err = g.Wait()
	if ctx.Err() == nil || (err != nil && !errors.Is(err, context.Canceled)) {
		if err == nil {
			err = runErr
		}
		return fail(stderr, "watch", err)
	}
	logSummary(log, time.Since(start), m.Stats(), last, byCause)
	return exitOK
}

// logSummary logs the line watch ends with: how long it watched, the
// outages that ended and their total down time, outages by cause, the
// outage in progress if the state is down now, and the sends that found
// no route (netmon_no_route_sends_total) if any.
func logSummary(log *zap.Logger, watched time.Duration, st netmon.Stats, now netmon.Status, byCause map[netmon.Reason]int) {
	var causes []string
	for _, c := range slices.Sorted(maps.Keys(byCause)) {
		causes = append(causes, fmt.Sprintf("%s=%d", c, byCause[c]))
	}
	fields := []zap.Field{
		zap.String("event", "summary"),
		zap.Duration("watched", watched.Round(time.Millisecond)),
		zap.Uint64("outages", st.Flaps),
		zap.Duration("down_time", st.DownTime.Round(time.Millisecond)),
		zap.String("causes", strings.Join(causes, ",")),
		zap.String("final_state", now.State.String()), // "state" is for baseline and state lines only
	}
	if !now.State.CanSend() {
		fields = append(fields, zap.String("reason", string(now.Reason)), zap.String("iface", now.Iface),
			zap.Duration("down_for", time.Since(now.Since).Round(time.Millisecond)))
	}
	if st.NoRouteSends > 0 {
		// Every one, also those held for the next no-route line when
		// watch stopped: the Monitor's last events may not be delivered.
		fields = append(fields, zap.Uint64("no_route_sends", st.NoRouteSends))
	}
	log.Info(fmt.Sprintf("stopped: %d outages, %v down in total", st.Flaps, st.DownTime.Round(time.Millisecond)), fields...)
}
