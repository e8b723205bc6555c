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
// up: the path the kernel itself would use has carrier (and, when
// wireless, an association) and a usable address of the destination's
// family (global scope, DAD done, lifetime not over). The path is the
// kernel's answer to a route lookup (RTM_GETROUTE, the lookup connect()
// makes: policy rules, marks and linkdown routes honoured), asked again
// after every batch of link, address, route and rule changes, for each of
// Options.Targets, or without targets for a public address of each family
// (no packet is sent). No Internet probe is made: a robot on a LAN-only
// access point names its server as a target and needs no default route.
//
// A path into a tunnel (wireguard, tun, gre, ...) is judged by its
// underlay: the interface the tunnel's own packets leave by, found with
// the packet mark the policy rules name (wg-quick's 51820), else the best
// physical uplink. The state's interface, Wi-Fi and DHCP context are the
// underlay's; the snapshot says which tunnel the path enters. A bridge or
// bond takes the Wi-Fi facts of its wireless port.
//
// degraded: up, but loss is likely soon: the gateway's neighbour entry is
// FAILED (gateway-failed), the lease is past T1 (dhcp-renewing) or within
// Options.LeaseMargin of its end (lease-expiring), the signal is weak
// (weak-signal), the station roamed within Options.Recent (roamed),
// senders reported unexplained network errors recently (send-errors), the
// uplink lost one IP family while the other stays (ipv4-lost, ipv6-lost;
// a network that never had IPv6 is not degraded for it), or some targets
// are unreachable while others are not (target-unreachable, naming the
// first; each target's own Gate, [Monitor.GateFor], is closed). A
// failed gateway degrades rather than closes the Gate: with every sender
// held, nothing would make the kernel probe the gateway again.
//
// down: no target can be reached. The reason names the first thing wrong
// on the path's interface, or on the interface the user most likely cares
// about (the last uplink): admin-down, wifi-disconnected, carrier-lost,
// no-address, lease-expired, no-default-route, no-route (the kernel has no
// route to a target), no-underlay, unresolved (a target's host name); or
// send-errors, when Options.SendErrorThreshold
// network-class errors in a row found the kernel's state wrong.
//
// unknown: before the first full read of the kernel. The Gate is closed.
//
// The first event is always a baseline of the current state, never an
// edge. It is the state once every watcher that runs has given its own
// baseline (the leases the DHCP tracker finds on the addresses, the Wi-Fi
// associations, the lease files present at start), waiting at most
// Options.BaselineWait (2 s) for Wi-Fi and the lease files; [Snapshot]
// says of each watcher whether it is on, off, or unavailable and why. The
// Gate does not wait for them: it follows the kernel from the first read.
// A loss closes the Gate at once; a return opens it at once (unless
// Options.Stabilize asks for a stabilisation window), behind a probe: the
// oldest held Do call goes first and the others follow on its success, or
// after DefaultProbeTimeout, so that a return cut short does not take every
// held sender with it. A Wi-Fi disconnect closes
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
// # Data stalls and bouncing links
//
// Senders' failures that the kernel's state does not explain are evidence
// of a dead path the kernel cannot see (an access point whose upstream is
// gone). Modelled on Android's data-stall detector, Options.SendErrorThreshold
// of them within Options.SendErrorWindow close the state (send-errors) only
// when they came from at least two destinations, none counting for more
// than half, or the gateway does not answer: one dead peer is never a
// stall. Timeouts count; refusals, resets,
// TLS and DNS answers never do. Successes count too
// ([Monitor.ReportSuccessTo]): failures while some destination still
// answers are the peers' own, and only failures since the last success
// anywhere count. The verdict is confirmed before it closes the Gate, and
// the state event and the flap say what confirmed it (the gateway's
// neighbour entry FAILED, or failures to several destinations with no
// success anywhere while the gateway answers). A declared target's
// failures close only its own Gate. While the verdict holds, one held Do
// call is let through every 500 ms as a half-open probe; the verdict ends
// when a send succeeds, the path changes, the gateway answers or
// Options.SendErrorHold passes, and counting starts again from zero.
//
// Options.Stabilize, when set, makes a return wait out a window before the
// Gate opens; for a link that keeps bouncing the window doubles with each
// loss within Options.Recent of the last (up to 16 times) and decays while
// the link holds (flap damping). Each flap says which window applied. It
// is off by default: it held senders while the link worked (issue 26).
//
// # The code
//
// verdict.go is the rule, one pure function (judge): the facts in (the
// interfaces' links, addresses, routes and gateways, Wi-Fi and DHCP facts,
// the targets' paths, the data-stall detector's summary, the
// stabilisation window's state, the targets' Gates), a verdict and the
// time it may next change out (a clock every time-based predicate asks);
// verdict_test.go tests it by tables. rule.go holds the interfaces' and
// radios' facts and the roam hold's bookkeeping. path.go looks the
// targets' paths up in the kernel and drives their Gates; apply.go folds
// linkwatch's events in, gathers the facts and carries out the verdict;
// watchers.go starts and folds the optional watchers (Wi-Fi, DHCP, eBPF);
// noroute.go reads the kernel's count of sends that found no route;
// dedup.go pairs a failure reported and traced, so that it counts once;
// stall.go is the data-stall detector; damp.go the flap damping;
// correlate.go and report.go explain a failed send; journal.go keeps the
// flaps; snapshot.go and annotate.go describe the state; monitor.go holds
// the Monitor's lifetime and its event loop.
//
// # Lifetimes
//
// [New] checks options and starts nothing. [Monitor.Run] starts every
// watcher and returns only after all of them have ended, when its context
// ends; it then shuts the Gate (held senders return an error) and closes
// the [Monitor.Events] channel. Watchers that cannot run here (no Wi-Fi, no
// eBPF permission) are reported once as notice events; netmon carries on
// without them. The eBPF socket-error tracer, off unless
// [Options].SockErrors asks for it, loads after the baseline is out, so
// that neither the baseline nor the Gate waits for its load.
//
// The Monitor never waits for the reader of its events: a subscriber that
// falls behind by more than EventQueueSize events loses events (counted in
// Stats.EventsDropped and announced by a dropped event), never the state,
// the Gate or Report.
package netmon
