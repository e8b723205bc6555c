package linkwatch

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"time"
)

// Forever is the lifetime of an address that never expires (the kernel's
// INFINITY_LIFE_TIME, 0xffffffff seconds).
const Forever time.Duration = 1<<63 - 1

// OperState is the RFC 2863 operational state the kernel reports in
// IFLA_OPERSTATE.
type OperState uint8

// Operational states, numbered as the kernel numbers them (IF_OPER_*).
const (
	OperUnknown        OperState = 0
	OperNotPresent     OperState = 1
	OperDown           OperState = 2
	OperLowerLayerDown OperState = 3
	OperTesting        OperState = 4
	OperDormant        OperState = 5
	OperUp             OperState = 6
)

// Link is one network interface as the kernel last described it.
type Link struct {
	Index int    // ifindex
	Name  string // current name
	Kind  string // link kind: "veth", "wireless" (has a wireless extension/phy), "loopback", "" if unknown
	// AdminUp is IFF_UP: the administrator (or a network manager) enabled it.
	AdminUp bool
	// Carrier is IFF_LOWER_UP: the driver reports a physical link.
	Carrier bool
	// Oper is the operational state (IFLA_OPERSTATE); OperUnknown when the
	// kernel did not report it.
	Oper OperState
	// MTU is IFLA_MTU in bytes; 0 when the kernel did not report it.
	MTU int
	// MAC is the link-layer address (IFLA_ADDRESS); nil when the link has
	// none (e.g. a tun device).
	MAC net.HardwareAddr
	// CarrierChanges is IFLA_CARRIER_CHANGES where the kernel reports it: a
	// counter that reveals flaps the kernel coalesced.
	CarrierChanges uint32
	// Master is the ifindex of the bond/bridge/VRF this link is a port of
	// (IFLA_MASTER); 0 when none.
	Master int
}

// Addr is one interface address with its lifetimes.
type Addr struct {
	Index  int          // ifindex of the interface holding the address
	Iface  string       // interface name at the time it was read
	Prefix netip.Prefix // address and prefix length, e.g. 10.0.0.5/24
	Scope  uint8        // RT_SCOPE_*: 0 universe (global), 253 link, 254 host
	Flags  uint32       // IFA_F_* (tentative, deprecated, dadfailed, permanent, ...)
	// Valid and Preferred are the remaining lifetimes when the kernel sent
	// the message, or Forever.
	Valid, Preferred time.Duration
	// Observed is when the message carrying these lifetimes was read; the
	// time left at t is Valid - t.Sub(Observed).
	Observed time.Time
}

// Route is a route that matters for reachability: a default route (v4 or
// v6) in the main table, or another table's default the kernel reports.
type Route struct {
	Index    int          // ifindex of the output interface (0 for multipath without one)
	Iface    string       // its name when read
	Dst      netip.Prefix // 0.0.0.0/0 or ::/0 for default routes
	Gateway  netip.Addr   // zero when on-link
	Src      netip.Addr   // preferred source, when set
	Metric   int          // RTA_PRIORITY (lower wins); 0 when unset
	Table    int          // routing table: 254 main, 253 default, or another id
	Protocol int          // RTPROT_*: 16 is dhcp, 4 static, 3 boot, ...
	LinkDown bool         // RTNH_F_LINKDOWN: the kernel keeps it but the carrier is gone
	// Expires is the lifetime the route had left when it was read: an
	// IPv6 default route learnt from a router advertisement lives for the
	// router lifetime, a route added with `ip -6 route ... expires N` for
	// N seconds. 0 means it never expires; negative means it had already
	// expired (the kernel no longer uses it, and deletes it at its next
	// garbage collection). The kernel counts it in 10 ms steps.
	Expires time.Duration
	// NexthopID is the nexthop object (`ip nexthop`, RTA_NH_ID) the route
	// uses, 0 when the route names its next hops itself. Index, Gateway
	// and LinkDown then come from that object; a group becomes one Route
	// per member, like a multipath route.
	NexthopID uint32
	// Observed is when the message carrying Expires was read (zero when
	// the route never expires); the lifetime left at t is
	// Expires - t.Sub(Observed), see [Route.ExpiresLeft].
	Observed time.Time
}

// Neigh is the kernel's neighbour entry for a default gateway.
type Neigh struct {
	Index int        // ifindex of the interface the entry is on
	Iface string     // that interface's name
	IP    netip.Addr // the gateway's address (NDA_DST)
	// MAC is the gateway's link-layer address (NDA_LLADDR); nil while the
	// kernel has none (an incomplete or failed entry).
	MAC   net.HardwareAddr
	State uint16 // NUD_* (reachable, stale, delay, probe, failed, ...)
}

// State is the kernel's view, as linkwatch last read it. State values are
// copies: the caller may keep and modify them.
type State struct {
	Links  map[int]Link // by ifindex
	Addrs  []Addr       // sorted by Index, then Prefix
	Routes []Route      // default routes, sorted by Index, Dst, Metric
	Neighs []Neigh      // gateways' neighbour entries
	Rules  []Rule       // policy routing rules, by family and priority
	// Read is when the state was last re-read in full (baseline or gap).
	Read time.Time
}

// Event is one change linkwatch observed. The concrete types are
// [Baseline], [LinkEvent], [AddrEvent], [RouteEvent], [NeighEvent] and
// [GapEvent].
type Event interface {
	// Time is when the change was read from the kernel.
	Time() time.Time
	isEvent()
}

// Baseline is always the first event: the full state when watching began.
type Baseline struct {
	At    time.Time // when the initial read began
	State State     // everything the initial read found
}

// LinkOp says what happened to a link.
type LinkOp uint8

// Link operations.
const (
	LinkAdded LinkOp = iota + 1
	LinkChanged
	LinkRemoved
)

// LinkEvent reports a link that appeared, changed or went away. Prev is the
// link before the change (zero for LinkAdded).
type LinkEvent struct {
	// At is when the message was read, or when the re-read that found the
	// change began.
	At   time.Time
	Op   LinkOp // what happened
	Link Link   // the link after the change; for LinkRemoved, as last known
	Prev Link   // the link before the change: zero for LinkAdded, Link for LinkRemoved
}

// LinkChange is a set of the link attributes a [LinkEvent] changed.
type LinkChange uint8

// The attributes a LinkChanged event can change.
const (
	ChangedAdmin          LinkChange = 1 << iota // AdminUp (IFF_UP)
	ChangedCarrier                               // Carrier (IFF_LOWER_UP)
	ChangedOper                                  // Oper (RFC 2863 operstate)
	ChangedName                                  // Name (a rename)
	ChangedMTU                                   // MTU
	ChangedMAC                                   // MAC
	ChangedCarrierChanges                        // CarrierChanges: the carrier flapped, maybe too fast to see
	ChangedMaster                                // Master: enslaved to or released from a bond, bridge or VRF
)

var linkChangeNames = [...]string{"admin", "carrier", "oper", "name", "mtu", "mac", "carrier_changes", "master"}

// String returns the changed attributes joined by "|", e.g.
// "carrier|oper", or "none".
func (c LinkChange) String() string {
	if c == 0 {
		return "none"
	}
	var b strings.Builder
	for i, n := range linkChangeNames {
		if c&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(n)
		}
	}
	return b.String()
}

// Changes returns what a LinkChanged event changed; for LinkAdded and
// LinkRemoved it returns 0. It compares Prev and Link and does not
// allocate.
func (e LinkEvent) Changes() LinkChange {
	if e.Op != LinkChanged {
		return 0
	}
	var c LinkChange
	p, l := e.Prev, e.Link
	if p.AdminUp != l.AdminUp {
		c |= ChangedAdmin
	}
	if p.Carrier != l.Carrier {
		c |= ChangedCarrier
	}
	if p.Oper != l.Oper {
		c |= ChangedOper
	}
	if p.Name != l.Name {
		c |= ChangedName
	}
	if p.MTU != l.MTU {
		c |= ChangedMTU
	}
	if !bytes.Equal(p.MAC, l.MAC) {
		c |= ChangedMAC
	}
	if p.CarrierChanges != l.CarrierChanges {
		c |= ChangedCarrierChanges
	}
	if p.Master != l.Master {
		c |= ChangedMaster
	}
	return c
}

// PathChanged reports whether the change can affect whether the link
// carries traffic: admin state, carrier, operstate or master (a port's
// traffic leaves through its bond, bridge or VRF), or the link came or
// went.
func (e LinkEvent) PathChanged() bool {
	return e.Op != LinkChanged || e.Changes()&(ChangedAdmin|ChangedCarrier|ChangedOper|ChangedMaster) != 0
}

// AddrOp says what happened to an address.
type AddrOp uint8

// Address operations.
const (
	AddrAdded     AddrOp = iota + 1
	AddrRemoved          // the address is gone (deleted, expired, or its link removed)
	AddrRefreshed        // same address, lifetimes set again (a DHCP renewal)
	AddrChanged          // same address, flags changed (DAD finished, deprecated, ...)
)

// AddrEvent reports an address change. Prev is the address before the
// change (zero for AddrAdded).
type AddrEvent struct {
	// At is when the message was read, or when the re-read that found the
	// change began.
	At time.Time
	Op AddrOp // what happened
	// Addr is the address after the change; for AddrRemoved, the address
	// that went away.
	Addr Addr
	// Prev is the address as known before the change (with its earlier
	// flags and lifetimes), zero for AddrAdded.
	Prev Addr
}

// RouteOp says what happened to a default route.
type RouteOp uint8

// Route operations.
const (
	RouteAdded RouteOp = iota + 1
	RouteRemoved
	RouteChanged
)

// RouteEvent reports a default route that appeared, went away or changed.
type RouteEvent struct {
	// At is when the message was read, or when the re-read that found the
	// change began.
	At time.Time
	Op RouteOp // what happened
	// Route is the route after the change; for RouteRemoved, the route
	// that went away.
	Route Route
	// Prev is the route as known before the change, zero for RouteAdded.
	// After `ip route replace` it is the route replaced, which may leave
	// through another interface or gateway than Route.
	Prev Route
}

// NeighEvent reports a change of a default gateway's neighbour entry.
// Removed is true when the entry was deleted.
type NeighEvent struct {
	// At is when the message was read, or when the re-read that found the
	// change began.
	At time.Time
	// Neigh is the entry after the change; when Removed, the entry as last
	// known.
	Neigh Neigh
	// Prev is the entry before the change; zero when the watcher knew no
	// earlier version of it (or a re-read first shows it as a gateway's),
	// and equal to Neigh when Removed.
	Prev Neigh
	// Removed is true when the entry was deleted or its link went away, or
	// when a re-read found that it no longer belongs to a gateway.
	Removed bool
}

// GapEvent reports that kernel messages were lost (the socket overflowed
// with ENOBUFS, a datagram was malformed, or a re-read of the routes
// failed) and the state was read again in full. The events emitted just
// before it describe the differences found. A full re-read that keeps
// failing is not a GapEvent: Run ends with its error.
type GapEvent struct {
	At    time.Time // when the re-read began
	Err   error     // why messages were lost, or which read failed
	State State     // the state after the re-read
}

// Time returns when the Baseline was read from the kernel.
func (e Baseline) Time() time.Time { return e.At }

// Time returns when the LinkEvent was read from the kernel.
func (e LinkEvent) Time() time.Time { return e.At }

// Time returns when the AddrEvent was read from the kernel.
func (e AddrEvent) Time() time.Time { return e.At }

// Time returns when the RouteEvent was read from the kernel.
func (e RouteEvent) Time() time.Time { return e.At }

// Time returns when the NeighEvent was read from the kernel.
func (e NeighEvent) Time() time.Time { return e.At }

// Time returns when the GapEvent was read from the kernel.
func (e GapEvent) Time() time.Time { return e.At }

func (Baseline) isEvent()   {}
func (LinkEvent) isEvent()  {}
func (AddrEvent) isEvent()  {}
func (RouteEvent) isEvent() {}
func (NeighEvent) isEvent() {}
func (GapEvent) isEvent()   {}
