package netmon

import "time"

// State is the overall connectivity state. The zero value is [Unknown].
type State uint8

// The states of docs/design.md. The Gate is open exactly while the state is
// [Up] or [Degraded].
const (
	// Unknown is the state before the first full read of the kernel.
	Unknown State = iota
	// Up: the path the kernel uses to every target (without targets: to
	// the internet, in either family) has carrier and a usable address.
	Up
	// Degraded: up, but something makes loss likely soon (weak signal, a
	// DHCP renewal in progress, a recent roam, recent send errors, a gateway
	// whose neighbour entry failed).
	Degraded
	// Down: no usable path; the Gate holds senders.
	Down
)

var stateNames = [...]string{Unknown: "unknown", Up: "up", Degraded: "degraded", Down: "down"}

// String returns "unknown", "up", "degraded" or "down".
func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// CanSend reports whether traffic can flow in this state: Up or Degraded.
func (s State) CanSend() bool { return s == Up || s == Degraded }

// Reason is a machine-readable cause of a state. Reasons are stable strings:
// logs, metrics labels and the JSON output use them.
type Reason string

// Reasons. A state carries the single most relevant one.
const (
	ReasonNone           Reason = ""                  // up, nothing to report
	ReasonStarting       Reason = "starting"          // unknown: the first read has not finished
	ReasonNoInterface    Reason = "no-interface"      // no watched interface exists
	ReasonAdminDown      Reason = "admin-down"        // the interface is disabled (IFF_UP clear)
	ReasonCarrierLost    Reason = "carrier-lost"      // no carrier (IFF_LOWER_UP clear) or operstate not up
	ReasonWifiDisconnect Reason = "wifi-disconnected" // nl80211 reported a disconnect (before the carrier change)
	ReasonNoAddress      Reason = "no-address"        // no usable (global, non-tentative) address
	ReasonNoDefaultRoute Reason = "no-default-route"  // no default route leaves through the interface
	ReasonLeaseExpired   Reason = "lease-expired"     // the DHCP lease ran out and the address was removed
	ReasonSendErrors     Reason = "send-errors"       // senders report network errors the kernel state does not explain
	ReasonGatewayFailed  Reason = "gateway-failed"    // the default gateway's neighbour entry is FAILED
	ReasonWeakSignal     Reason = "weak-signal"       // signal band weak or critical
	ReasonDHCPRenewing   Reason = "dhcp-renewing"     // the lease is past T1 (renewing) or T2 (rebinding)
	ReasonLeaseExpiring  Reason = "lease-expiring"    // the lease ends within the configured margin
	ReasonRoamed         Reason = "roamed"            // the station roamed to another BSSID recently, or is between two (a roam under way)
	ReasonShutdown       Reason = "shutdown"          // the Monitor stopped

	ReasonNoRoute           Reason = "no-route"           // the kernel has no route to a target (ENETUNREACH, an unreachable or prohibit route)
	ReasonNoUnderlay        Reason = "no-underlay"        // a target's path enters a tunnel and no physical interface carries the tunnel
	ReasonUnresolved        Reason = "unresolved"         // a target's host name has not resolved yet
	ReasonTargetUnreachable Reason = "target-unreachable" // degraded: some targets are reachable, Status.Target is not
	ReasonIPv4Lost          Reason = "ipv4-lost"          // degraded: the uplink lost its IPv4 path, IPv6 stays
	ReasonIPv6Lost          Reason = "ipv6-lost"          // degraded: the uplink lost its IPv6 path, IPv4 stays
)

// Status is a state with its reason, the interface it concerns, and when
// it began.
type Status struct {
	State State // the overall state
	// Reason is the single most relevant cause of State: ReasonNone while
	// up with nothing to report, ReasonStarting while unknown.
	Reason Reason
	// Iface names the interface the state concerns. While up or degraded
	// it is the uplink: the usable interface whose default route has the
	// lowest metric. While down it is the one the user most likely cares
	// about: the last uplink, else one that still has a default route,
	// else a wireless one, else the one with the lowest index. It is ""
	// before the first read and when no interface is watched.
	Iface string
	// Target is the target ([Options].Targets) the reason concerns: the
	// unreachable one while degraded with target-unreachable, the first
	// one while down; "" without targets.
	Target string
	// Since is when State, Reason, Iface or Target last changed.
	Since time.Time
}
