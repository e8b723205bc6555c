package netmon

import (
	"encoding/json"
	"sort"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Snapshot is the whole current picture: the state and why, the uplink,
// every watched interface with its addresses, default routes, gateway,
// Wi-Fi and DHCP state, and the recent flaps. It is what an error report
// attaches. It marshals to JSON (`netmon status --json`) and to zap fields.
type Snapshot struct {
	Time time.Time `json:"time"` // when the snapshot was taken

	// State, Reason, Iface and Since are the Monitor's [Status].
	State  State     `json:"state"`
	Reason Reason    `json:"reason"`
	Iface  string    `json:"iface,omitempty"`  // the uplink, or the interface that was lost
	Target string    `json:"target,omitempty"` // the target the reason concerns, if any
	Since  time.Time `json:"since"`

	// Targets holds one entry per target ([Options].Targets), or per
	// implicit internet target ("internet-ipv4", "internet-ipv6") without
	// them: the kernel's path and the verdict on it.
	Targets []TargetSnapshot `json:"targets"`

	// Interfaces holds every watched interface, ordered by index.
	Interfaces []IfaceSnapshot `json:"interfaces"`

	// LastFlap is the most recent outage that ended, nil if none has.
	LastFlap *Flap `json:"last_flap,omitempty"`
	// Flaps5m counts the outages that ended in the five minutes before
	// Time, among the last [Options].Journal ones.
	Flaps5m    int `json:"flaps_5m"`
	SendErrors int `json:"send_errors"` // the data-stall detector's current streak
	// FlapsTotal counts the outages that ended since the Monitor was
	// created, and DownTimeSec is their total length in seconds; an outage
	// still in progress is in neither.
	FlapsTotal  int     `json:"flaps_total"`
	DownTimeSec float64 `json:"down_time_seconds"`

	// Wifi, DHCP, LeaseFiles and SockErrors say whether those watchers
	// run: "on", "off", "starting" (Run has not started them, or they have
	// not given their baseline yet), or "unavailable: <reason>" (no Wi-Fi
	// here, no eBPF permission). DHCP is the lease tracking from address
	// lifetimes, which needs nothing beyond the kernel's addresses;
	// LeaseFiles the lease files that enrich it. SockErrors, the eBPF
	// tracer, says "loading" instead of "starting": it loads after the
	// baseline (see [Options].SockErrors).
	Wifi       string `json:"wifi_watcher"`
	DHCP       string `json:"dhcp_watcher"`
	LeaseFiles string `json:"lease_files_watcher"`
	SockErrors string `json:"sockerr_watcher"`
}

// TargetSnapshot is one target's path in a [Snapshot].
type TargetSnapshot struct {
	Target    string `json:"target"`         // as given, or internet-ipv4 / internet-ipv6
	Addr      string `json:"addr,omitempty"` // the address looked up; "" while a host name is unresolved
	Reachable bool   `json:"reachable"`      // the path can carry traffic
	// Reason is why it cannot ("no-route", "carrier-lost", ...), "" when
	// it can.
	Reason Reason `json:"reason,omitempty"`
	// Iface is the interface the verdict concerns: the one the kernel
	// routes through, or for a path into a tunnel the underlay that carries
	// it, with the tunnel in Via ("via wg0 over wlan0").
	Iface   string `json:"iface,omitempty"`
	Via     string `json:"via,omitempty"`
	Gateway string `json:"gateway,omitempty"` // the next hop; "" when on-link
	Src     string `json:"src,omitempty"`     // the source address the kernel would use
	Table   int    `json:"table,omitempty"`   // the routing table that answered
	// Error is the kernel's answer when it has no path ("network is
	// unreachable").
	Error string `json:"error,omitempty"`
}

// IfaceSnapshot is one interface in a [Snapshot].
type IfaceSnapshot struct {
	Name    string `json:"name"`           // interface name
	Index   int    `json:"index"`          // ifindex
	Kind    string `json:"kind,omitempty"` // link kind ("veth", "wireless", ...), "" if unknown
	AdminUp bool   `json:"admin_up"`       // IFF_UP
	Carrier bool   `json:"carrier"`        // IFF_LOWER_UP
	Oper    string `json:"oper"`           // operational state: "up", "dormant", "down", ...
	MTU     int    `json:"mtu"`            // in bytes
	MAC     string `json:"mac,omitempty"`  // link-layer address, "" if none
	// Usable is true when the interface can carry traffic (Down is "").
	Usable bool `json:"usable"`
	// Down is why the interface cannot carry traffic ("admin-down",
	// "carrier-lost", "no-address", ...), "" when it can.
	Down     Reason          `json:"down_reason,omitempty"`
	Addrs    []AddrSnapshot  `json:"addrs"`              // every address, not only usable ones
	Routes   []RouteSnapshot `json:"default_routes"`     // default routes leaving through it
	Gateways []NeighSnapshot `json:"gateways,omitempty"` // its gateways' neighbour entries
	// Wifi is the radio side, nil unless wifiwatch reported the interface.
	Wifi *WifiInfo `json:"wifi,omitempty"`
	// DHCP is dhcpwatch's view of the interface's lease (Phase "static"
	// when it has none), nil until dhcpwatch reports on the interface.
	DHCP *DHCPSnapshot `json:"dhcp,omitempty"`
}

// AddrSnapshot is an address with its remaining lifetime.
type AddrSnapshot struct {
	Addr  string   `json:"addr"`            // address and prefix length, e.g. "10.0.0.5/24"
	Scope string   `json:"scope"`           // "global", "link", "host", ...
	Flags []string `json:"flags,omitempty"` // notable IFA_F_* flags: "tentative", "deprecated", ...
	// ValidLeft is the valid lifetime left in seconds, 0 once it ran out;
	// nil for an address that never expires.
	ValidLeft *float64 `json:"valid_left_seconds,omitempty"`
}

// RouteSnapshot is a default route.
type RouteSnapshot struct {
	Dst      string `json:"dst"`                // "0.0.0.0/0" or "::/0"
	Gateway  string `json:"gateway,omitempty"`  // "" for an on-link route
	Metric   int    `json:"metric"`             // route priority, lower wins
	Protocol int    `json:"protocol"`           // RTPROT_*: 16 dhcp, 4 static, 3 boot, ...
	LinkDown bool   `json:"linkdown,omitempty"` // the kernel flags it linkdown (no carrier)
}

// NeighSnapshot is a gateway's neighbour entry.
type NeighSnapshot struct {
	IP    string `json:"ip"`    // the gateway's address
	State string `json:"state"` // NUD state: "reachable", "stale", "failed", ...
}

// DHCPSnapshot is an interface's lease, with times as seconds from the
// snapshot's time.
type DHCPSnapshot struct {
	Phase    string  `json:"phase"`                   // "static", "bound", "renewing", "rebinding" or "expired"
	LeaseSec float64 `json:"lease_seconds,omitempty"` // lease length; 0 when unknown
	// LeftSec, T1LeftSec and T2LeftSec are the seconds until the lease
	// expires and until T1 (renewal) and T2 (rebinding); 0 when unknown or
	// already past.
	LeftSec   float64 `json:"time_left_seconds,omitempty"`
	T1LeftSec float64 `json:"t1_left_seconds,omitempty"`
	T2LeftSec float64 `json:"t2_left_seconds,omitempty"`
	Server    string  `json:"server,omitempty"` // DHCP server identifier from the lease file, "" if unknown
	Router    string  `json:"router,omitempty"` // the first router from the lease file, "" if unknown
	Source    string  `json:"source,omitempty"` // "kernel" (address lifetimes) or the lease file's path
	// LeaseFile is the lease file that agrees with the kernel's lease and
	// gave Server, Router, T1 and T2; "" when none does (none found, or
	// it was deleted on release).
	LeaseFile string `json:"lease_file,omitempty"`
}

// MarshalJSON writes the state as its name.
func (s State) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// Snapshot returns the current picture.
func (m *Monitor) Snapshot() Snapshot {
	now := time.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.snapshotLocked(now)
}

func (m *Monitor) snapshotLocked(now time.Time) Snapshot {
	s := Snapshot{Time: now, State: m.status.State, Reason: m.status.Reason, Iface: m.status.Iface,
		Target: m.status.Target, Since: m.status.Since, Targets: m.targetSnapshotsLocked(), SendErrors: len(m.stall.fails), FlapsTotal: m.journal.total,
		DownTimeSec: m.journal.down.Seconds(), Wifi: m.wifiNote, DHCP: m.dhcpNote, LeaseFiles: m.filesNote, SockErrors: m.sockNote}
	if f, ok := m.journal.last(); ok {
		s.LastFlap = &f
	}
	s.Flaps5m = m.journal.since(now.Add(-5 * time.Minute))
	idx := make([]int, 0, len(m.ifaces))
	for i := range m.ifaces {
		idx = append(idx, i)
	}
	sort.Ints(idx)
	s.Interfaces = make([]IfaceSnapshot, 0, len(idx))
	for _, i := range idx {
		s.Interfaces = append(s.Interfaces, ifaceSnapshot(m.ifaces[i], now))
	}
	return s
}

func ifaceSnapshot(f *iface, now time.Time) IfaceSnapshot {
	l := f.link
	is := IfaceSnapshot{Name: l.Name, Index: l.Index, Kind: l.Kind, AdminUp: l.AdminUp, Carrier: l.Carrier,
		Oper: l.Oper.String(), MTU: l.MTU, Addrs: []AddrSnapshot{}, Routes: []RouteSnapshot{}}
	if len(l.MAC) > 0 {
		is.MAC = l.MAC.String()
	}
	is.Down = f.downReason(&clock{now: now})
	is.Usable = is.Down == ""
	for _, a := range f.addrs {
		as := AddrSnapshot{Addr: a.Prefix.String(), Scope: a.ScopeName(), Flags: a.FlagNames()}
		if a.Valid != linkwatch.Forever {
			left := max(0, (a.Valid - now.Sub(a.Observed)).Seconds())
			as.ValidLeft = &left
		}
		is.Addrs = append(is.Addrs, as)
	}
	for _, r := range f.routes {
		rs := RouteSnapshot{Dst: r.Dst.String(), Metric: r.Metric, Protocol: r.Protocol, LinkDown: r.LinkDown}
		if r.Gateway.IsValid() {
			rs.Gateway = r.Gateway.String()
		}
		is.Routes = append(is.Routes, rs)
	}
	for _, n := range f.neighs {
		is.Gateways = append(is.Gateways, NeighSnapshot{IP: n.IP.String(), State: n.StateName()})
	}
	if f.wifi != nil {
		w := *f.wifi
		is.Wifi = &w
	}
	if d := f.dhcp; d != nil {
		ds := &DHCPSnapshot{Phase: d.Phase, LeaseSec: d.LeaseTime.Seconds(), Source: d.Source, LeaseFile: d.LeaseFile}
		secs := func(t time.Time) float64 {
			if t.IsZero() {
				return 0
			}
			return max(0, t.Sub(now).Seconds())
		}
		ds.LeftSec, ds.T1LeftSec, ds.T2LeftSec = secs(d.Expires), secs(d.T1), secs(d.T2)
		if d.Server.IsValid() {
			ds.Server = d.Server.String()
		}
		if d.Router.IsValid() {
			ds.Router = d.Router.String()
		}
		is.DHCP = ds
	}
	return is
}

// targetSnapshotsLocked describes the targets' paths.
func (m *Monitor) targetSnapshotsLocked() []TargetSnapshot {
	out := make([]TargetSnapshot, 0, len(m.paths))
	for _, p := range m.paths {
		ts := TargetSnapshot{Target: p.t.Spec, Reachable: p.ok, Reason: p.reason, Iface: m.ifaceName(p.index),
			Via: m.ifaceName(p.via), Table: p.path.Table}
		if p.t.Addr.IsValid() {
			ts.Addr = p.t.Addr.String()
		}
		if p.path.Gateway.IsValid() {
			ts.Gateway = p.path.Gateway.String()
		}
		if p.path.Src.IsValid() {
			ts.Src = p.path.Src.String()
		}
		if p.path.Err != nil {
			ts.Error = p.path.Err.Error()
		}
		out = append(out, ts)
	}
	return out
}

// uplinkLocked returns the interface the status concerns, or nil.
func (m *Monitor) uplinkLocked() *iface { return m.ifaces[m.statusIdx] }

// snapshotFieldsLocked returns the fields that explain the current state
// on a baseline or state log line: the uplink's signal, BSSID, DHCP phase
// and time left, and the data-stall streak.
func (m *Monitor) snapshotFieldsLocked(now time.Time) []zap.Field {
	var fs []zap.Field
	if f := m.uplinkLocked(); f != nil {
		if w := f.wifi; w != nil {
			fs = append(fs, zap.Int("signal_dbm", w.SignalDBm), zap.String("ssid", w.SSID), zap.String("bssid", w.BSSID), zap.String("band", w.Band))
		}
		if d := f.dhcp; d != nil {
			fs = append(fs, zap.String("dhcp_phase", d.Phase))
			if !d.Expires.IsZero() {
				fs = append(fs, zap.Duration("lease_left", d.Expires.Sub(now).Round(time.Second)))
			}
		}
		var addrs []string
		for _, a := range f.addrs {
			if usableAddr(a, &clock{now: now}) {
				addrs = append(addrs, a.Prefix.String())
			}
		}
		if len(addrs) > 0 {
			fs = append(fs, zap.String("addrs", strings.Join(addrs, ",")))
		}
	}
	if n := len(m.stall.fails); n > 0 {
		fs = append(fs, zap.Int("send_errors", n))
	}
	return append(fs, m.pathFieldsLocked()...)
}

// pathFieldsLocked explains the targets' paths on a state line: the tunnel
// the uplink's traffic enters ("via": "wg0"), and the targets (of
// Options.Targets) that cannot be reached, with why ("unreachable":
// "10.1.0.5 no-route").
func (m *Monitor) pathFieldsLocked() []zap.Field {
	var fs []zap.Field
	var bad []string
	for _, p := range m.paths {
		if p.via != 0 && p.index == m.statusIdx && len(fs) == 0 {
			fs = append(fs, zap.String("via", m.ifaceName(p.via)))
		}
		if !p.ok && !p.implicit { // a lost family has its own reason
			bad = append(bad, p.t.Spec+" "+string(p.reason))
		}
	}
	if len(bad) > 0 {
		fs = append(fs, zap.String("unreachable", strings.Join(bad, ", ")))
	}
	return fs
}

// MarshalLogObject writes the snapshot's key facts as flat zap fields:
// state, reason, iface, since, the uplink's signal, BSSID and DHCP phase,
// and the recent flaps. It implements zapcore.ObjectMarshaler, so
// zap.Object("net", snap) attaches it to any log line.
func (s Snapshot) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("state", s.State.String())
	enc.AddString("reason", string(s.Reason))
	if s.Iface != "" {
		enc.AddString("iface", s.Iface)
	}
	enc.AddDuration("for", s.Time.Sub(s.Since))
	for _, is := range s.Interfaces {
		if is.Name != s.Iface {
			continue
		}
		enc.AddBool("carrier", is.Carrier)
		if w := is.Wifi; w != nil {
			enc.AddInt("signal_dbm", w.SignalDBm)
			enc.AddString("bssid", w.BSSID)
			enc.AddString("ssid", w.SSID)
		}
		if d := is.DHCP; d != nil {
			enc.AddString("dhcp_phase", d.Phase)
			enc.AddFloat64("lease_left_seconds", d.LeftSec)
		}
	}
	enc.AddInt("flaps_5m", s.Flaps5m)
	if s.LastFlap != nil {
		enc.AddString("last_flap_cause", string(s.LastFlap.Cause))
		enc.AddDuration("last_flap_ago", s.Time.Sub(s.LastFlap.End))
	}
	return nil
}

// MarshalJSON encodes the snapshot as `netmon status --json` prints it:
// the fields with their JSON tags, times in RFC 3339, durations in
// seconds.
func (s Snapshot) MarshalJSON() ([]byte, error) {
	type plain Snapshot // the same fields without this method
	return json.Marshal(plain(s))
}

var (
	_ json.Marshaler          = Snapshot{}
	_ zapcore.ObjectMarshaler = Snapshot{}
)
