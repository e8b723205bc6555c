package netmon

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/wifiwatch"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
)

// Options configures a [Monitor]. The zero value watches every interface
// of the current network namespace but loopback, with the defaults each
// field documents.
type Options struct {
	// Logger receives the Monitor's own diagnostics (not the event
	// journal: read [Monitor.Events] for that). Nil means zap.NewNop().
	Logger *zap.Logger

	// Interfaces are glob patterns (path.Match) of interfaces to watch.
	// Empty means every interface but loopback. A pattern without glob
	// characters names an interface that must exist when [New] is called,
	// unless AwaitInterfaces is set. When the kernel routes a target
	// through an interface left out here, the target is judged by the best
	// watched interface instead: the usable one with a default route of
	// the target's family and the lowest metric.
	Interfaces []string
	// AwaitInterfaces lets Interfaces name interfaces that do not exist
	// yet; the state is down with reason no-interface until one appears.
	AwaitInterfaces bool
	// Exclude are glob patterns of interfaces to ignore.
	Exclude []string
	// NetNS is the network namespace to watch; 0 means the current one.
	NetNS netns.NsHandle

	// Targets are the destinations that matter to this robot, each an
	// address or host name with an optional port (see [ParseTarget]); at
	// most [MaxTargets]. For each one the Monitor asks the kernel which
	// path it would take (the lookup connect() makes: policy rules, marks
	// and linkdown routes honoured; no packet is sent) after every batch
	// of link, address, route and rule changes, and judges that path: its
	// interface, its address of the target's family, and, for a path into
	// a tunnel, the underlay. An on-link target needs no default route, so
	// a robot on a LAN-only access point declares its server here. The
	// state is up while every target is reachable, degraded
	// (target-unreachable) while some are, down while none is; each target
	// has its own Gate ([Monitor.GateFor]).
	//
	// A host name is resolved when Run starts (with the system's resolver,
	// in the process's own network namespace), retried with backoff while
	// it does not resolve (said once, as a notice), and resolved again each
	// time its path returns after an outage, since the network it returns
	// on may answer differently. Until it resolves the target is
	// unreachable with reason unresolved.
	//
	// Empty means "the internet": the kernel's route to a public address
	// of each family (8.8.8.8 and 2001:4860:4860::8888, looked up, never
	// contacted).
	Targets []string

	// Stabilize, when positive, is how long the state must stay usable
	// after an outage before the Gate opens again, damped for a link that
	// keeps bouncing (each loss within Recent of the last doubles the
	// window, up to 16 times this, halving again for every Recent it
	// holds; see Flap.Stabilize). Zero or negative means no such hold,
	// the default: the Gate opens the moment the path returns, and the
	// Gate's probed release (see Gate) keeps a return that is cut short
	// from taking every held sender with it. On a link at the edge of
	// coverage (drops of 0.3-1.5 s every 2-8 s) the damped window grew to
	// 3.2 s and held senders for 46% of the time the link worked (issue
	// 26), so damping is for a user who measured a schedule on which it
	// wins.
	Stabilize time.Duration
	// Recent is how long after a roam, a DHCP blip or an outage an error
	// is attributed to it, and how long a roam keeps the state degraded.
	// Zero means 10 s.
	Recent time.Duration
	// LeaseMargin is how close to its expiry a DHCP lease makes the state
	// degraded (lease-expiring). Zero means 30 s.
	LeaseMargin time.Duration

	// SendErrorThreshold is how many send failures that the kernel's
	// state does not explain (network-class errors and timeouts, within
	// SendErrorWindow of each other) make a data stall, modelled on
	// Android's data-stall detector (which uses 5): the state goes down
	// with reason send-errors, closing the Gate, once that many failures
	// came from at least two destinations, none counting for more than
	// half of them, or from anywhere while the uplink's gateway does not
	// answer. One dead peer is never a stall:
	// failures towards a single host close no Gate, unless that host is
	// one of Targets, whose own Gate then closes (and no other). Refused
	// or reset connections, TLS and DNS answers are the peer's and never
	// count. Successes count too ([Monitor.ReportSuccessTo], gate.Call.Dst):
	// only failures since the last success anywhere count, and while a
	// destination that answered within SendErrorWindow has not failed
	// since, failures towards others are those peers' own and close
	// nothing. Below the threshold, failures towards two or more
	// destinations within Recent make an up state degraded (unless a
	// destination is live). Zero means 5; a negative value disables the
	// detector.
	SendErrorThreshold int
	// SendErrorWindow is how far apart two such failures may be and still
	// count together. Zero means 30 s.
	SendErrorWindow time.Duration
	// SendErrorHold is how long a send-errors verdict holds its Gate at
	// most (unless the kernel reports a change of the path, a send
	// succeeds, or the gateway answers first); the count then starts from
	// zero. While the network's verdict holds, one held sender is let
	// through every 500 ms to test the path (gate.Gate.Trial): a Do call,
	// whose success ends the verdict at once, or, when none is held, a
	// Wait caller (the local API's /v1/wait answers "trial": true), whose
	// success ends it once reported (ReportSuccessTo). The hold is for
	// the outcomes never reported. Zero means 5 s.
	SendErrorHold time.Duration

	// Journal is how many flaps are kept in memory. Zero means 256.
	Journal int

	// BaselineWait bounds how long the baseline event (and with it a
	// one-shot snapshot such as `netmon status`) waits, after the first
	// full read of the kernel, for the baselines of the other watchers
	// that run: the Wi-Fi associations and the lease files present at
	// start. Each normally answers within milliseconds; one that has not
	// answered by then is still "starting" in the snapshot. The Gate does
	// not wait for them: it follows the kernel from the first read. Zero
	// means [DefaultBaselineWait]; negative means the baseline does not
	// wait.
	BaselineWait time.Duration

	// Wifi selects the nl80211 watcher: "" or "auto" runs it and carries on
	// without it if the machine has no Wi-Fi; "off" never starts it.
	Wifi string
	// WifiPollInterval is the station poll interval. Zero means 2 s.
	WifiPollInterval time.Duration
	// WifiBands are the signal thresholds; the zero value means
	// wifiwatch.DefaultBands().
	WifiBands wifiwatch.Bands
	// DHCP selects lease tracking: "" or "auto" infers leases from address
	// lifetimes and reads the usual lease files; "off" disables it.
	DHCP string
	// DHCPTracker tunes lease tracking: the blip window, the slack between
	// sources, and whether IPv6 (DHCPv6, SLAAC) lifetimes are tracked too.
	// The zero value means dhcpwatch's defaults, IPv4 only.
	DHCPTracker dhcpwatch.Config
	// LeaseFiles are the lease files to read, for a client that keeps
	// them elsewhere (dhclient -lf, a vendor's path). Nil means
	// dhcpwatch.DefaultFilePatterns. Lease files are read only when the
	// Monitor watches its own network namespace.
	LeaseFiles []dhcpwatch.FilePattern
	// Gate configures the Gate: its default policy (hold, fail fast,
	// maximum hold, MaxHeld, retry decisions), paced or probed release
	// and retry backoff. The zero Release means a probed release,
	// gate.Release{Probe: true, ProbeTimeout: [DefaultProbeTimeout]}: when
	// the Gate opens, the oldest held Do call goes first, and the other
	// held Do calls follow on its success, its failure, or after
	// DefaultProbeTimeout (held Wait callers go at once). Any other Release
	// is used as given (gate.Release{Spread: time.Nanosecond} releases
	// everyone practically at once). The Monitor sets
	// StartClosed (the Gate is closed
	// until the first state is known), wires OnError to [Monitor.Report]
	// and OnSuccess to [Monitor.ReportSuccess] (hooks given here run after
	// the Monitor's), and, when ClockSynced is nil, sets it to an
	// adjtimex(2) check of the system clock (on Linux; elsewhere the clock
	// is assumed to be synchronised).
	Gate gate.Config

	// SockErrors selects the eBPF socket-error watcher: "" or "off" never
	// starts it (the default: the tracer reports every process on the
	// machine, so a library that links netmon does not load one unless
	// asked); "auto" runs it when permitted and carries on without it;
	// "on" requires it. The tracer is loaded after Run has started and the
	// baseline is out (a load parses BTF and verifies programs, which takes
	// a while), so neither the baseline nor the Gate waits for it; the
	// Snapshot's SockErrors says "loading" until then, then "on" or
	// "unavailable: <reason>". With "on", a failed load ends Run with an
	// error that says why (errors.Is finds sockwatch.ErrPermission or
	// sockwatch.ErrNotSupported in it).
	SockErrors string
	// SockComms limits socket-error events to these process names (nil:
	// every process).
	SockComms []string
	// SockCgroups limits socket-error events to processes in these
	// cgroups, given as cgroup v2 directories
	// (/sys/fs/cgroup/system.slice/robot.service). [New] resolves each to
	// its cgroup ID with [CgroupID] and fails, naming the path, if it is
	// not a cgroup v2 directory. A process matches only the cgroup it is
	// in itself, not the ones above it: name the service, not its slice.
	// IDs are resolved once: a cgroup removed and created again (systemd
	// does so when a service restarts) gets a new ID and no longer matches
	// until the Monitor is created again. nil: every cgroup.
	SockCgroups []string
	// SockDestinations limits socket-error events to destinations in these
	// prefixes; a single host is a /32 or /128 (nil: every destination).
	// Failures without a destination (a send on a connected socket) are
	// then not reported.
	SockDestinations []netip.Prefix
	// SockSyscalls also traces connect/sendto/sendmsg exits, which adds
	// synchronous errors (ENETUNREACH from connect) at about 54 ns per
	// system call machine-wide; off by default. Without it (or without
	// the tracer), sends that found no route are still counted: see
	// [EventSockErr]'s no-route events and [Stats].NoRouteSends.
	SockSyscalls bool

	// NoRoutePoll is how often the kernel's counters of sends that found
	// no route (OutNoRoutes, Ip6OutNoRoutes) are read, in the watched
	// network namespace, while syscall tracing does not name those
	// senders. Zero means 2 s; negative disables the reading.
	NoRoutePoll time.Duration
}

// DefaultProbeTimeout is the ProbeTimeout of [DefaultRelease]: how long
// the Do call released first when the Gate opens may take before the other
// held Do calls follow anyway. A working path answers a connect or a send
// within one round trip (a few to 100 ms over Wi-Fi to a server on the
// Internet); a probe whose SYN or segment fell into the next drop is not
// retransmitted before TCP's initial RTO of 1 s (RFC 6298). 250 ms lies
// between: a healthy probe releases the others on its success well before
// it, and a probe lost to a return that did not last holds the others a
// quarter of a second, not a full RTO.
const DefaultProbeTimeout = 250 * time.Millisecond

// defaultRelease is the zero [Options].Gate.Release: release behind a
// probe sender rather than behind a clock.
var defaultRelease = gate.Release{Probe: true, ProbeTimeout: DefaultProbeTimeout}

// DefaultNoRoutePoll is the zero [Options].NoRoutePoll.
const DefaultNoRoutePoll = 2 * time.Second

// DefaultBaselineWait is the zero [Options].BaselineWait: how long the
// baseline waits for the Wi-Fi and lease-file watchers at most.
const DefaultBaselineWait = 2 * time.Second

// withDefaults returns o with zero fields replaced by their defaults, or an
// error naming the first invalid field.
func (o Options) withDefaults() (Options, error) {
	if o.Logger == nil {
		o.Logger = zap.NewNop()
	}
	if o.Stabilize < 0 {
		o.Stabilize = 0
	}
	if o.Gate.Release == (gate.Release{}) {
		o.Gate.Release = defaultRelease
	}
	if o.Recent == 0 {
		o.Recent = 10 * time.Second
	}
	if o.LeaseMargin == 0 {
		o.LeaseMargin = 30 * time.Second
	}
	if o.SendErrorThreshold == 0 {
		o.SendErrorThreshold = 5
	}
	if o.SendErrorWindow == 0 {
		o.SendErrorWindow = 30 * time.Second
	}
	if o.SendErrorHold == 0 {
		o.SendErrorHold = 5 * time.Second
	}
	if o.Journal == 0 {
		o.Journal = 256
	}
	if o.BaselineWait == 0 {
		o.BaselineWait = DefaultBaselineWait
	}
	if o.BaselineWait < 0 {
		o.BaselineWait = 0
	}
	if o.NoRoutePoll == 0 {
		o.NoRoutePoll = DefaultNoRoutePoll
	}
	switch {
	case o.Recent < 0:
		return o, fmt.Errorf("netmon: Options.Recent is %v, want > 0", o.Recent)
	case o.LeaseMargin < 0:
		return o, fmt.Errorf("netmon: Options.LeaseMargin is %v, want > 0", o.LeaseMargin)
	case o.SendErrorWindow < 0:
		return o, fmt.Errorf("netmon: Options.SendErrorWindow is %v, want > 0", o.SendErrorWindow)
	case o.SendErrorHold < 0:
		return o, fmt.Errorf("netmon: Options.SendErrorHold is %v, want > 0", o.SendErrorHold)
	case o.Journal < 0:
		return o, fmt.Errorf("netmon: Options.Journal is %d, want >= 0", o.Journal)
	case o.WifiPollInterval < 0:
		return o, fmt.Errorf("netmon: Options.WifiPollInterval is %v, want >= 0", o.WifiPollInterval)
	}
	for _, m := range []struct{ field, v string }{{"Wifi", o.Wifi}, {"DHCP", o.DHCP}} {
		if m.v != "" && m.v != "auto" && m.v != "off" {
			return o, fmt.Errorf("netmon: Options.%s is %q, want \"auto\" or \"off\"", m.field, m.v)
		}
	}
	if err := o.DHCPTracker.Validate(); err != nil {
		return o, fmt.Errorf("netmon: Options.DHCPTracker: %w", err)
	}
	switch o.SockErrors {
	case "":
		o.SockErrors = "off"
	case "auto", "on", "off":
	default:
		return o, fmt.Errorf("netmon: Options.SockErrors is %q, want \"off\" (or \"\"), \"auto\" or \"on\"", o.SockErrors)
	}
	if len(o.Targets) > MaxTargets {
		return o, fmt.Errorf("netmon: Options.Targets has %d targets, want at most %d", len(o.Targets), MaxTargets)
	}
	for i, p := range o.SockDestinations {
		if !p.IsValid() {
			return o, fmt.Errorf("netmon: Options.SockDestinations[%d] is not a valid prefix: want an IPv4 or IPv6 prefix such as 10.0.0.0/8 or 2001:db8::/32", i)
		}
	}
	return o, nil
}
