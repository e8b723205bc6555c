package netmon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/sockwatch"
	"github.com/seed-a56be422/netmon/wifiwatch"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// sources are the optional watchers: each channel is nil when its watcher
// does not run.
type sources struct {
	wifi   <-chan wifiwatch.Event
	leases <-chan dhcpwatch.Lease
	// filesReady is closed once the lease files present at start were
	// sent on leases (dhcpwatch.LeaseFiles.Ready).
	filesReady <-chan struct{}
	sock       <-chan sockwatch.Event
	// sockReady hands the loop the eBPF watcher once it has loaded (see
	// loadSockwatch); nil when socket errors are off.
	sockReady <-chan *sockwatch.Watcher
}

// startWatchers starts the optional watchers in g. A watcher that is
// unavailable here becomes a notice event, not an error, unless the options
// require it. The baseline event waits for the baselines of those it
// starts (see baselineEventLocked).
func (m *Monitor) startWatchers(ctx context.Context, g *errgroup.Group) (sources, error) {
	var src sources
	o := m.opts
	if o.Wifi != "off" {
		switch {
		case o.NetNS != 0 && m.wifiDial == nil:
			m.mu.Lock()
			m.wifiNote = "unavailable: nl80211 is only read in netmon's own network namespace"
			m.noticeLocked(time.Now(), "wifi", "Wi-Fi not watched: nl80211 is only read in netmon's own network namespace")
			m.mu.Unlock()
		default:
			cfg := wifiwatch.Config{PollInterval: o.WifiPollInterval, Bands: o.WifiBands, Logger: o.Logger.Named("wifiwatch")}
			var ww *wifiwatch.Watcher
			var err error
			if m.wifiDial != nil {
				ww, err = wifiwatch.NewWithDial(cfg, m.wifiDial)
			} else {
				ww, err = wifiwatch.New(cfg)
			}
			if err != nil {
				return src, fmt.Errorf("netmon: %w", err)
			}
			src.wifi = ww.Events()
			m.mu.Lock()
			m.awaiting["wifi"] = true // "starting" until its Baseline or Unavailable
			m.mu.Unlock()
			g.Go(func() error {
				if err := ww.Run(ctx); err != nil && !errors.Is(err, wifiwatch.ErrUnavailable) && ctx.Err() == nil {
					return fmt.Errorf("netmon: %w", err)
				}
				return nil
			})
		}
	}
	if o.DHCP != "off" && m.leaseFiles != nil {
		lf := m.leaseFiles
		src.leases, src.filesReady = lf.Events(), lf.Ready()
		m.mu.Lock()
		m.awaiting["lease files"] = true
		m.mu.Unlock()
		g.Go(func() error {
			if err := lf.Run(ctx); err != nil && ctx.Err() == nil {
				// Lease files only enrich the kernel's view: carry on.
				m.mu.Lock()
				now := time.Now()
				m.filesNote = "unavailable: " + err.Error()
				m.noticeLocked(now, "dhcp", "lease files not watched: "+err.Error())
				m.wakeLocked()
				m.watcherReadyLocked(now, "lease files") // no baseline will come
				m.mu.Unlock()
			}
			return nil
		})
	}
	if o.SockErrors != "off" {
		ready := make(chan *sockwatch.Watcher, 1)
		src.sockReady = ready
		g.Go(func() error { return m.loadSockwatch(ctx, ready) })
	}
	if o.NoRoutePoll > 0 {
		g.Go(func() error { m.noRouteLoop(ctx); return nil })
	}
	return src, nil
}

// sockConfig is the sockwatch configuration the options ask for.
func (m *Monitor) sockConfig() sockwatch.Config {
	o := m.opts
	return sockwatch.Config{Comms: o.SockComms, Cgroups: m.sockCgroup, Destinations: o.SockDestinations,
		SyscallTracing: o.SockSyscalls, Logger: o.Logger.Named("sockwatch")}
}

// loadSockwatch loads the eBPF socket-error tracer once the baseline is
// out, so that neither the baseline nor the Gate waits for the load (BTF
// parse, verification, attach: tens to hundreds of milliseconds), hands it
// to the loop through ready and runs it until ctx ends. The snapshot says
// "loading", then "on" or "unavailable: <reason>", each also a notice
// event. A failed load is an error only when the options require the
// tracer (SockErrors "on"): it then ends Run. When ctx ends during the
// load, the tracer is closed at once and the snapshot says "off".
func (m *Monitor) loadSockwatch(ctx context.Context, ready chan<- *sockwatch.Watcher) error {
	select {
	case <-m.baselineC:
	case <-ctx.Done():
		return nil
	}
	m.mu.Lock()
	m.noticeLocked(time.Now(), "sockerr", "socket-error tracer loading")
	m.mu.Unlock()
	start := time.Now()
	sw, err := m.newSock(m.sockConfig())
	if ctx.Err() != nil {
		// Run stopped during the load: a tracer loaded now would only be
		// closed again, and must not be announced as on.
		if err == nil {
			sw.Close()
		}
		m.mu.Lock()
		m.sockNote = "off"
		m.mu.Unlock()
		return nil
	}
	m.mu.Lock()
	now := time.Now()
	if err != nil {
		m.sockNote = "unavailable: " + err.Error()
		m.noticeLocked(now, "sockerr", "socket errors not watched: "+err.Error())
		m.mu.Unlock()
		if m.opts.SockErrors == "on" && ctx.Err() == nil {
			return fmt.Errorf("netmon: socket errors required (SockErrors \"on\"): %w", err)
		}
		return nil
	}
	m.sockNote = "on"
	m.sock = sw
	m.noticeLocked(now, "sockerr", fmt.Sprintf("socket-error tracer on (loaded in %v)", now.Sub(start).Round(time.Millisecond)))
	m.mu.Unlock()
	ready <- sw // buffered: the loop takes it when it can
	defer sw.Close()
	if err := sw.Run(ctx); err != nil && ctx.Err() == nil {
		return fmt.Errorf("netmon: %w", err)
	}
	return nil
}

// noticeLocked emits a notice: a watcher that is unavailable or degraded.
func (m *Monitor) noticeLocked(at time.Time, what, msg string) {
	m.log.Info(msg, zap.String("watcher", what))
	m.emitLocked(Event{Kind: EventNotice, At: at, Msg: msg, Fields: []zap.Field{zap.String("watcher", what)}})
}

// applyDHCPLocked logs the tracker's lease events, then takes the
// tracker's state as the interfaces' lease state. The state, not the
// events, is what the Monitor knows: the leases the tracker found at
// baseline (which it reports without events) are in it from the first
// read, and so is a lease file's server leaving with its file.
func (m *Monitor) applyDHCPLocked(evs []dhcpwatch.Event) {
	for _, e := range evs {
		ls := e.Lease
		fields := []zap.Field{zap.String("lease", e.Kind.String()), zap.String("phase", dhcpPhase(ls.Phase)),
			zap.String("addr", ls.Addr.String()), zap.String("source", ls.Source)}
		if ls.TimeLeft > 0 {
			fields = append(fields, zap.Duration("time_left", ls.TimeLeft.Round(time.Second)))
		}
		d := m.dhcpInfo[ls.Index]
		if d == nil {
			d = &DHCPInfo{}
			m.dhcpInfo[ls.Index] = d
		}
		switch e.Kind {
		case dhcpwatch.Blip:
			d.LastBlip = e.At
			fields = append(fields, zap.Duration("blip", e.Duration), zap.String("gone", e.What))
		case dhcpwatch.Reconnected:
			d.LastReconnect = e.At
			fields = append(fields, zap.Duration("gone", e.Duration))
		}
		m.emitLocked(Event{Kind: EventDHCP, At: e.At, Iface: ls.Iface, Msg: e.String(), Fields: fields})
	}
	m.syncDHCPLocked()
}

// syncDHCPLocked sets the interfaces' lease state from the tracker's,
// keeping when each last blipped or reconnected. With IPv6 tracked too,
// an interface's IPv4 lease is the one shown.
func (m *Monitor) syncDHCPLocked() {
	st := m.dhcp.State()
	for i, ls := range st {
		if i > 0 && st[i-1].Index == ls.Index {
			continue // State lists IPv4 first
		}
		d := m.dhcpInfo[ls.Index]
		if d == nil {
			d = &DHCPInfo{}
			m.dhcpInfo[ls.Index] = d
		}
		*d = DHCPInfo{Phase: dhcpPhase(ls.Phase), LeaseTime: ls.Length, Expires: ls.Expiry, T1: ls.T1, T2: ls.T2,
			Server: ls.Server, Router: ls.Router, Source: ls.Source, LeaseFile: ls.LeaseFile,
			LastBlip: d.LastBlip, LastReconnect: d.LastReconnect}
	}
	for i := range m.dhcpInfo {
		if !slices.ContainsFunc(st, func(ls dhcpwatch.LeaseState) bool { return ls.Index == i }) {
			delete(m.dhcpInfo, i) // the link went
		}
	}
}

// dhcpPhase names a lease phase as the Monitor shows it: "static" for no
// lease.
func dhcpPhase(p dhcpwatch.Phase) string {
	if p == dhcpwatch.PhaseNone {
		return "static"
	}
	return p.String()
}

// applyLeaseLocked folds a lease file's news into the tracker: a lease,
// or the file's removal.
func (m *Monitor) applyLeaseLocked(now time.Time, l dhcpwatch.Lease) {
	if l.Removed() {
		m.emitLocked(Event{Kind: EventDHCP, At: now, Iface: l.Iface, Msg: "lease file removed: " + l.Source,
			Fields: []zap.Field{zap.String("lease", "file-removed"), zap.String("file", l.Source)}})
	}
	m.applyDHCPLocked(m.dhcp.ApplyLease(now, l))
	m.evaluateLocked(now)
}

// wifiInfo converts wifiwatch's view of a link.
func wifiInfo(l wifiwatch.Link, prev *WifiInfo) *WifiInfo {
	w := &WifiInfo{Associated: l.Associated, SSID: l.SSID, FreqMHz: l.FreqMHz, SignalDBm: l.SignalDBm,
		Band: l.Band.String(), TxBitrate: int(l.TxBitrate), RxBitrate: int(l.RxBitrate), LastRoam: l.LastRoam}
	if l.SignalAvgDBm != 0 {
		w.SignalDBm = l.SignalAvgDBm
	}
	if len(l.BSSID) > 0 {
		w.BSSID = l.BSSID.String()
	}
	if prev != nil && w.LastRoam.IsZero() {
		w.LastRoam = prev.LastRoam
	}
	if prev != nil {
		// A roam's hold runs its course: after a WPA2 reassociation the
		// link stays dormant until the 4-way handshake ends.
		w.roamUntil, w.roamFrom = prev.roamUntil, prev.roamFrom
	}
	return w
}

// associatedDuringHold extends a roam's hold when the station associates
// to the next AP at while it is held: the association is the roam's
// progress, and a WPA2 link stays dormant until its 4-way handshake ends.
// The handshake gets a roamGrace of its own from the association, past the
// first hold's bound (the carrier loss plus verdictWait plus roamGrace):
// under load the Wi-Fi lab's emulated roams took 0.8 s, with the handshake
// ending 0.17 s after the carrier's return and 0.08 s after that bound. A
// handshake that fails ends the hold with its disconnect (reason 15, or
// by the AP), as any disconnect but a local reason 1 does.
func (w *WifiInfo) associatedDuringHold(at time.Time) {
	if at.Before(w.roamUntil) && at.Add(roamGrace).After(w.roamUntil) {
		w.roamUntil = at.Add(roamGrace)
	}
}

// eventTime is t, or now when the watcher gave no time.
func eventTime(t, now time.Time) time.Time {
	if t.IsZero() {
		return now
	}
	return t
}

// applyWifiLocked folds one wifiwatch event into the interfaces.
func (m *Monitor) applyWifiLocked(ev wifiwatch.Event) {
	now := time.Now()
	emit := func(iface, msg string, fields ...zap.Field) {
		m.emitLocked(Event{Kind: EventWifi, At: now, Iface: iface, Msg: msg, Fields: append([]zap.Field{zap.String("wifi", ev.Kind())}, fields...)})
	}
	// The DHCP tracker counts addresses flushed while a station is not
	// associated as a reconnect, not a renewal blip.
	connected := func(index int, ok bool) {
		if m.dhcp != nil {
			m.dhcp.SetConnected(index, ok)
		}
	}
	switch e := ev.(type) {
	case wifiwatch.Baseline:
		for _, l := range e.Links {
			m.wifiInfo[l.Index] = wifiInfo(l, nil)
			connected(l.Index, l.Associated)
		}
		m.wifiNote = "on"
		emit("", fmt.Sprintf("Wi-Fi baseline: %d interfaces", len(e.Links)))
		defer m.watcherReadyLocked(now, "wifi") // after the evaluation below
	case wifiwatch.Associated:
		m.wifiInfo[e.Link.Index] = wifiInfo(e.Link, m.wifiInfo[e.Link.Index])
		m.wifiInfo[e.Link.Index].associatedDuringHold(eventTime(e.Time, now))
		connected(e.Link.Index, true)
		emit(e.Link.Iface, "associated to "+e.Link.SSID, zap.String("bssid", fmtMAC(e.Link.BSSID)), zap.Int("signal_dbm", e.Link.SignalDBm))
	case wifiwatch.Disconnected:
		w := m.wifiInfo[e.Index]
		if w == nil {
			w = &WifiInfo{}
			m.wifiInfo[e.Index] = w
		}
		at := e.Time
		if at.IsZero() {
			at = now
		}
		f := m.ifaces[e.Index]
		w.disconnectHold(at, e.Reason, e.ByAP, f != nil && f.link.Up())
		// An outage that began with the carrier loss a moment before is
		// this disconnect's: the carrier was its symptom.
		if o := m.outage; o != nil && o.iface == e.Iface && o.cause == ReasonCarrierLost && at.Sub(o.start) < roamGrace {
			o.cause = ReasonWifiDisconnect
			if e.Reason != 0 {
				o.detail = fmt.Sprintf("802.11 reason %d", e.Reason)
			}
		}
		w.Associated, w.Disconnected, w.DisconnectReason = false, true, e.Reason
		connected(e.Index, false)
		if e.SignalDBm != 0 {
			w.SignalDBm = e.SignalDBm
		}
		emit(e.Iface, "disconnected from "+e.SSID, zap.Uint16("reason", e.Reason), zap.Bool("by_ap", e.ByAP),
			zap.String("bssid", fmtMAC(e.BSSID)), zap.Int("signal_dbm", e.SignalDBm))
	case wifiwatch.Roamed:
		w := wifiInfo(e.Link, m.wifiInfo[e.Index])
		w.associatedDuringHold(eventTime(e.Time, now))
		w.LastRoam = e.Time
		m.wifiInfo[e.Index] = w
		connected(e.Index, true)
		emit(e.Iface, "roamed", zap.String("from", fmtMAC(e.From)), zap.String("to", fmtMAC(e.To)), zap.Duration("downtime", e.Downtime))
	case wifiwatch.SignalChanged:
		if w := m.wifiInfo[e.Index]; w != nil {
			w.Band, w.SignalDBm = e.To.String(), e.SignalDBm
		}
		emit(e.Iface, "signal "+e.From.String()+" -> "+e.To.String(), zap.Int("signal_dbm", e.SignalDBm))
	case wifiwatch.ConnectFailed:
		emit(e.Iface, "connect failed", zap.Uint16("status", e.Status), zap.Bool("timed_out", e.TimedOut))
	case wifiwatch.Quality:
		emit(e.Iface, "connection quality: "+e.Type.String(), zap.Int("level_dbm", e.LevelDBm), zap.Uint32("packets", e.Packets))
	case wifiwatch.Gap:
		m.stats.Gaps++
		m.emitLocked(Event{Kind: EventGap, At: now, Msg: "nl80211 events lost; Wi-Fi state re-read", Fields: []zap.Field{zap.Error(e.Err)}})
	case wifiwatch.ReadFailed:
		// That interface keeps its last state; the others are still read.
		m.noticeLocked(now, "wifi", fmt.Sprintf("Wi-Fi: reading %s failed, its last state kept: %v", e.Iface, e.Err))
	case wifiwatch.Unavailable:
		m.wifiNote = "unavailable: " + e.Reason
		m.noticeLocked(now, "wifi", "Wi-Fi unavailable: "+e.Reason)
		defer m.watcherReadyLocked(now, "wifi")
	}
	m.evaluateLocked(now)
}

// fmtMAC formats a hardware address, "" when there is none.
func fmtMAC(b net.HardwareAddr) string { return b.String() }

// applySockLocked handles one failed socket operation that eBPF observed
// in some process: it is classified and correlated like a reported error.
// Failures that cannot concern the watched network are counted apart and
// not reported: those in another network namespace (a container, a test),
// and those towards loopback (a local resolver that is not running says
// nothing about Wi-Fi). A failure with a destination is explained against
// the interface the kernel routes that destination through, not the
// uplink: a refused connection over Ethernet says nothing about the Wi-Fi
// uplink's DHCP renewal.
func (m *Monitor) applySockLocked(e sockwatch.Event) {
	if (m.netnsIno != 0 && e.NetNS != 0 && uint64(e.NetNS) != m.netnsIno) ||
		(e.Dst.IsValid() && e.Dst.Addr().IsLoopback()) {
		m.stats.SockErrorsIgnored++
		return
	}
	err := e.Err()
	class := classify.Classify(err)
	ex := Explanation{At: e.Time, Class: class, Errno: e.Errno, Status: m.status}
	idx := m.statusIdx
	if e.Dst.IsValid() {
		if i := m.routeIndexLocked(e.Dst.Addr().Unmap(), e.Time); i != 0 {
			idx = i
		}
	}
	ex.Cause = m.correlateLocked(e.Time, idx, class, evidenceOf(class, e.Errno, false), &ex)
	var dst netip.Addr
	if e.Dst.IsValid() {
		dst = e.Dst.Addr().Unmap()
	}
	if !m.seen.pair(seenSend{at: e.Time, pid: e.PID, errno: e.Errno, dst: dst, traced: true}) {
		m.stats.Reports[class][ex.Cause]++ // else a sender reported it: counted then
	}
	m.stats.SockErrors++
	m.sockProcs.add(e.Comm, ex.Cause)
	fields := []zap.Field{zap.String("source", "ebpf"), zap.Uint32("pid", e.PID), zap.String("comm", e.Comm),
		zap.String("op", e.Op.String())} // errno comes with the explanation
	if e.Dst.IsValid() {
		fields = append(fields, zap.String("dst", e.Dst.String()))
	}
	m.emitLocked(Event{Kind: EventSockErr, At: e.Time, Iface: ex.iface(),
		Msg: fmt.Sprintf("%s[%d] %s: %s", e.Comm, e.PID, e.Op, e.Errno.Error()), Fields: fields, Explanation: &ex})
}

// routeIndexLocked returns the interface a send to dst leaves through, as
// a target's path is judged: the kernel's route lookup, and for a path
// into a tunnel its underlay (see judgePath); 0 when the kernel has no path.
// A lookup costs about 5 µs (two or more into a tunnel), so the answers
// are kept in routeCache while no kernel change may have moved them.
func (m *Monitor) routeIndexLocked(dst netip.Addr, now time.Time) int {
	c := &m.routeCache
	wall := time.Now()
	if m.pathsDirty || c.at.Before(m.refreshedAt) || wall.Sub(c.at) > routeCacheTTL || len(c.idx) >= routeCacheSize {
		clear(c.idx)
		c.at = wall
	}
	if i, ok := c.idx[dst]; ok {
		return i
	}
	p := pathState{pathFacts: pathFacts{t: Target{Addr: dst}}}
	m.refreshPathLocked(&p)
	judgePath(m.ifaces, &p.pathFacts, 0, &clock{now: now}, &p.pathVerdict)
	if !m.pathsDirty {
		if c.idx == nil {
			c.idx = make(map[netip.Addr]int)
		}
		c.idx[dst] = p.index
	}
	return p.index
}

// routeCache holds routeIndexLocked's answers since at: forgotten when the
// paths are looked up again (after a kernel change), after routeCacheTTL,
// or when routeCacheSize destinations fill it. It is not used while a
// kernel change waits for its lookup (pathsDirty).
type routeCache struct {
	at  time.Time
	idx map[netip.Addr]int
}

const (
	routeCacheTTL  = time.Second
	routeCacheSize = 256
)
