// Package netmon keeps a robot's important messages from being lost when
// its network drops. A [Monitor] watches the kernel's links, addresses,
// routes and gateway neighbours (linkwatch), the Wi-Fi radio (wifiwatch),
// DHCP leases (dhcpwatch) and, with eBPF, the socket errors of every
// process (sockwatch), and folds them into one [Status]: unknown, up,
// degraded or down, always with a machine-readable [Reason].
//
// Senders wait on the Monitor's Gate ([Monitor.Gate]), which is open
// exactly while the state is up or degraded: an important send is held
// while the link is down and released the moment it returns, and
// gate.Gate.Do retries a failed send after reconnecting. Every error report
// can carry the network's context: [Monitor.Report] explains a failed send
// ("ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm"),
// [Monitor.Annotate] wraps an error with a one-line summary, and
// [Snapshot] attaches the whole picture to a zap log line.
//
// # States
//
// up: some interface has carrier (and, when wireless, an association), a
// usable address (global scope, DAD done, lifetime not over) and a default
// route whose next hop is not marked linkdown. No Internet probe is made:
// robots often live on LAN-only access points.
//
// degraded: up, but loss is likely soon: the gateway's neighbour entry is
// FAILED (gateway-failed), the lease is past T1 (dhcp-renewing) or within
// Options.LeaseMargin of its end (lease-expiring), the signal is weak
// (weak-signal), the station roamed within Options.Recent (roamed), or
// senders reported unexplained network errors recently (send-errors). A
// failed gateway degrades rather than closes the Gate: with every sender
// held, nothing would make the kernel probe the gateway again.
//
// down: no interface can carry traffic. The reason names the first thing
// wrong on the interface the user most likely cares about (the last uplink):
// admin-down, wifi-disconnected, carrier-lost, no-address, lease-expired,
// no-default-route; or send-errors, when Options.SendErrorThreshold
// network-class errors in a row found the kernel's state wrong.
//
// unknown: before the first full read of the kernel. The Gate is closed.
//
// The first event is always a baseline of the current state, never an
// edge. A loss closes the Gate at once; a return opens it only after it has
// lasted Options.Stabilize (200 ms by default). A Wi-Fi disconnect closes
// the Gate before the kernel's carrier change arrives, which for a physical
// interface can be delayed by up to a second.
//
// # Rebinds
//
// When a usable address goes away, or the default route moves to another
// interface, connections bound to the old address are dead but their
// writes keep succeeding into a stall until TCP gives up minutes later.
// [Monitor.RebindC] is closed at each such change, so senders drop and
// redial at once; [Monitor.LastRebind] names the address.
//
// # Lifetimes
//
// [New] checks options and starts nothing. [Monitor.Run] starts every
// watcher and returns only after all of them have ended, when its context
// ends; it then shuts the Gate (held senders return an error) and closes
// the [Monitor.Events] channel. Watchers that cannot run here (no Wi-Fi, no
// eBPF permission) are reported once as notice events; netmon carries on
// without them.
package netmon
