package dhcpwatch

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"
)

// ErrNotSupported is returned by [LeaseFiles.Run] on systems without inotify.
var ErrNotSupported = errors.New("dhcpwatch: not supported")

// Kind names a lease-file format.
type Kind uint8

// Lease-file formats [Parse] reads.
const (
	// Dhclient is ISC dhclient's lease log (dhclient.leases(5)): a sequence
	// of lease { ... } blocks in which the last one per interface wins.
	Dhclient Kind = iota + 1
	// Dhcpcd is dhcpcd's IFACE[-SSID].lease: the raw DHCP message the server
	// sent, issued at the file's modification time.
	Dhcpcd
	// DhcpcdDump is the output of `dhcpcd -U IFACE`: shell assignments.
	DhcpcdDump
	// Networkd is systemd-networkd's /run/systemd/netif/leases/IFINDEX:
	// KEY=VALUE lines marked "Do not parse"; times are integers in older
	// versions and timespans ("8min 45s") in newer ones.
	Networkd
	// NetworkManager is the internal client's
	// /var/lib/NetworkManager/internal-UUID-IFACE.lease, which holds only
	// ADDRESS=. (NetworkManager's dhclient backend writes [Dhclient] files.)
	NetworkManager
)

const kindNames = ",dhclient,dhcpcd,dhcpcd-dump,networkd,networkmanager"

// String returns the format's lower-case name, e.g. "dhclient".
func (k Kind) String() string {
	if n := nthName(kindNames, int(k)); n != "" {
		return n
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Lease is one DHCPv4 lease as a lease file describes it. Fields a format
// does not carry are zero.
type Lease struct {
	// Iface is the interface name the file gives (in its content or its
	// name), "" when it gives only an index.
	Iface string
	// Index is the ifindex when the file gives one (networkd names its
	// files by ifindex), else 0.
	Index int
	// Addr is the leased address with its prefix length (32 when the file
	// has no netmask).
	Addr netip.Prefix
	// Start is when the lease was granted or last renewed: from the file's
	// own times when it has them, else its modification time.
	Start time.Time
	// Length is the lease time (DHCP option 51), in whole seconds; 0 when
	// unknown or infinite.
	Length time.Duration
	// T1 and T2 are the renewal and rebinding times after Start (options 58
	// and 59, or dhclient's renew and rebind dates). [Parse] guarantees
	// 0 < T1 <= T2 <= Length when Length is known, and T1 = T2 = 0 when it
	// is not. Where the file has no T1 or T2, or one that breaks that
	// order, Parse uses what a client would: RFC 2131's defaults, T2 at
	// 87.5% of the lease and T1 at 50% (or, when the server's T2 is before
	// half the lease, at 4/7 of T2, RFC 2131's ratio of T1 to T2).
	T1, T2 time.Duration
	// Server is the DHCP server identifier (option 54); Router the first
	// router (option 3).
	Server, Router netip.Addr
	// Source is the path of the file the lease was read from.
	Source string
	// Kind is the format of that file.
	Kind Kind
}

// Removed reports whether l stands for a lease file that went away (deleted,
// or renamed away) or no longer holds a lease: [LeaseFiles] then sends a
// Lease with only Source and Kind set, and [Tracker.ApplyLease] forgets
// what that file said.
func (l Lease) Removed() bool { return !l.Addr.IsValid() }

// Expiry is when the lease ends, or the zero time when its length is unknown.
func (l Lease) Expiry() time.Time {
	if l.Length <= 0 || l.Start.IsZero() {
		return time.Time{}
	}
	return l.Start.Add(l.Length)
}

// Phase is where a lease stands in the DHCP client's state machine (RFC 2131
// section 4.4), as seen from outside the client.
type Phase uint8

// Lease phases.
const (
	// PhaseNone: no lease. The interface has static (permanent) addresses,
	// no address at all, or a lease that has not been seen yet.
	PhaseNone Phase = iota
	// PhaseBound: leased, before T1.
	PhaseBound
	// PhaseRenewing: past T1 without a renewal; the client is asking its
	// server to extend the lease.
	PhaseRenewing
	// PhaseRebinding: past T2 without a renewal; the client is asking any
	// server.
	PhaseRebinding
	// PhaseExpired: the lease ran out or the address was removed for good.
	PhaseExpired
)

const phaseNames = "none,bound,renewing,rebinding,expired"

// String returns the phase's name: "none", "bound", "renewing", "rebinding"
// or "expired".
func (p Phase) String() string {
	if n := nthName(phaseNames, int(p)); n != "" {
		return n
	}
	return fmt.Sprintf("phase(%d)", uint8(p))
}

// SourceKernel is [LeaseState.Source] for a lease inferred from address
// lifetimes.
const SourceKernel = "kernel"

// LeaseState is the tracker's view of one interface's lease.
type LeaseState struct {
	Index int    // ifindex
	Iface string // interface name, when known
	// Addr is the leased address.
	Addr  netip.Prefix
	Phase Phase
	// Source is [SourceKernel] when the kernel's address lifetimes drive
	// the phases, else the path of the lease file that does.
	Source string
	// LeaseFile is the file whose details (T1, T2, server, router) enrich a
	// kernel lease, "" when none matches.
	LeaseFile string
	// Start is when the lease was granted or last renewed; zero when the
	// tracker started during a lease and no lease file says when (until
	// the first renewal it sees).
	Start time.Time
	// Length is the lease time; 0 when unknown (see Start).
	Length time.Duration
	// T1, T2 and Expiry are absolute; T1 and T2 are zero when unknown.
	// When Start is zero, T1 and T2 are estimates: the kernel shows only
	// the lifetime left, so they are computed as if the lease had been
	// granted when the tracker first saw it. That is the latest they can
	// be (for a client using RFC 2131's 50% and 87.5%, or dhcpcd's
	// preferred lifetime at T2), so [Renewing] and [Rebinding] may come
	// late, by up to half the time the lease had run before the tracker
	// started, but never early. Expiry is exact.
	T1, T2, Expiry time.Time
	// TimeLeft is Expiry minus the time of the tracker's latest call,
	// never negative.
	TimeLeft time.Duration
	// Server and Router come from a lease file; zero when none matches.
	Server, Router netip.Addr
}

// EventKind says what happened to a lease.
type EventKind uint8

// Lease events.
const (
	// Acquired: a new lease (an address with a finite lifetime appeared, or
	// came back with a different address or after an expiry).
	Acquired EventKind = iota + 1
	// Renewed: the lease was extended (its lifetime jumped back up).
	Renewed
	// Renewing: T1 passed without a renewal.
	Renewing
	// Rebinding: T2 passed without a renewal.
	Rebinding
	// Expired: the lease ended: its address was removed at the end of its
	// lifetime, or removed early and not back within the blip window.
	Expired
	// Blip: the leased address or the interface's default route vanished
	// and came back within the blip window: one renewal during which
	// senders saw ENETUNREACH. Event.Duration says for how long.
	Blip
	// Reconnected: the leased address, removed while the link was
	// disconnected (no carrier, or Wi-Fi not associated: clients flush
	// addresses then), is back after the reconnect. Not a renewal blip.
	// Event.Duration says how long it was gone.
	Reconnected
)

const eventNames = ",acquired,renewed,renewing,rebinding,expired,blip,reconnected"

// String returns the event's name, e.g. "renewed".
func (k EventKind) String() string {
	if n := nthName(eventNames, int(k)); n != "" {
		return n
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one change of a lease.
type Event struct {
	// At is when the tracker could tell: the time of the kernel event or
	// of the call that brought the lease file, or the deadline that
	// passed (T1 or T2 plus [Config.Slack], the end of the blip window,
	// a file-only lease's expiry). Event times never decrease from one
	// event to the next; [LeaseState.T1] and T2 hold the exact times.
	At   time.Time
	Kind EventKind
	// Lease is the lease's state after the event.
	Lease LeaseState
	// Duration is, for [Blip] and [Reconnected], how long the address or
	// route was gone.
	Duration time.Duration
	// What is, for [Blip], what vanished: "address", "route" or
	// "address+route".
	What string
}

// String formats the event for logs, e.g. "renewed eth0 10.0.0.5/24 (kernel)".
func (e Event) String() string {
	s := fmt.Sprintf("%s %s %s (%s)", e.Kind, e.Lease.Iface, e.Lease.Addr, e.Lease.Source)
	switch e.Kind {
	case Blip:
		s += fmt.Sprintf(" %s gone %s", e.What, e.Duration)
	case Reconnected:
		s += fmt.Sprintf(" address gone %s", e.Duration)
	}
	return s
}

// nthName returns the i-th comma-separated name in names, or "". The names
// are constants so that no package variable can be changed at run time.
func nthName(names string, i int) string {
	for n := range strings.SplitSeq(names, ",") {
		if i == 0 {
			return n
		}
		i--
	}
	return ""
}
