// Package linkwatch turns rtnetlink into a typed stream of events and a
// state of links, addresses, default routes and default gateways'
// neighbour entries that is never wrong for long.
//
// It is netmon's earliest and cheapest signal: carrier loss, an address
// vanishing at the end of a DHCP lease, the default route disappearing.
// A [Watcher] reads the kernel's state in full when it starts (the first
// event is always a [Baseline]), then folds every kernel notification into
// that state and emits what changed: [LinkEvent], [AddrEvent],
// [RouteEvent], [NeighEvent]. [Watcher.State] returns a copy at any time;
// [State.Usable] says whether traffic can leave through an interface
// (carrier, a usable global address, a default route).
//
// It needs Linux. Watching the current namespace needs no privilege;
// watching another one ([Config.NetNS]) needs CAP_SYS_ADMIN, and a
// receive buffer above net.core.rmem_max needs CAP_NET_ADMIN. It never
// changes the kernel's state.
//
// # One socket, in kernel order
//
// linkwatch opens one NETLINK_ROUTE socket joined to the link, neighbour,
// IPv4/IPv6 address and IPv4/IPv6 route groups, rather than the three
// subscriptions github.com/vishvananda/netlink offers (LinkSubscribe,
// AddrSubscribe, RouteSubscribe). Three sockets have no ordering between
// them: an address message can overtake the link message that explains
// it, and each socket overflows on its own. One socket delivers messages
// in the order the kernel produced them and has one overflow point. The
// helpers also die silently on their first receive error, cannot report
// the end of their initial dump, and leak their goroutine when the
// consumer stops reading; linkwatch reads the socket itself through the
// runtime poller, so cancelling the context closes the socket and
// unblocks the read. It parses the few fields it needs itself (fuzzed),
// which also keeps folding a message nearly free of allocations.
//
// # Kernel behaviour it compensates for
//
//   - Carrier loss produces one RTM_NEWLINK (IFF_LOWER_UP cleared) and no
//     route message, although the kernel flags the link's routes
//     "linkdown". Setting a link administratively down deletes its IPv4
//     routes without RTM_DELROUTE. So after every change of a link's
//     admin state, carrier or operstate linkwatch re-reads the routes and
//     emits the differences ([RouteEvent] with [RouteRemoved] or
//     [RouteChanged] and Route.LinkDown).
//   - `ip route replace` sends one RTM_NEWROUTE with NLM_F_REPLACE and no
//     RTM_DELROUTE for the route it replaced; linkwatch reports a
//     [RouteChanged] with the old route in Prev. The route replaced is
//     every next hop with the same table, destination and metric (a
//     multipath route is one route to the kernel; fib6_add_rt2node drops
//     all siblings of an IPv6 one): new hops take the place of old ones
//     as RouteChanged, extra new hops are [RouteAdded], and old hops left
//     over are [RouteRemoved], last.
//   - When the socket overflows (ENOBUFS, a receive buffer too small for a
//     burst) the kernel drops messages. linkwatch keeps the socket, empties
//     its queue (a congested netlink socket reports no further ENOBUFS until
//     its queue has been emptied, so without this later drops would go
//     unnoticed), re-reads everything, emits the differences against its
//     old state and then a [GapEvent]. Any other receive error replaces the
//     socket and does the same. Dumps flagged NLM_F_DUMP_INTR are retried a
//     few times; an inconsistent dump is then still safe, because every
//     change made during it is queued on the socket and folded in after.
//     A re-read that fails is retried with backoff (10 ms to 2 s, six
//     attempts in about 3.3 s); when all fail, Run ends with the error
//     rather than serve a state nothing will correct. A failed re-read of
//     the routes alone falls back to a full re-read and a [GapEvent].
//   - An IPv6 route with a lifetime (a router advertisement's default
//     route, or `ip -6 route ... expires N`) reports the time left in
//     RTA_CACHEINFO's rta_expires, in USER_HZ ticks (rt6_fill_node and
//     rtnl_put_cacheinfo); RTA_EXPIRES appears only in requests. The
//     kernel sends no message when the lifetime runs out (it skips the
//     route from then on and deletes it at its next garbage collection)
//     nor when an advertisement extends it (fib6_set_expires in
//     ndisc_router_discovery). linkwatch re-reads the routes a second
//     before a recorded lifetime ends and again just after: an extension
//     or the expiry is a [RouteChanged] (Route.Expires negative once
//     expired), and State.Usable ignores expired routes.
//   - A route can name a nexthop object (`ip nexthop`, `ip route ...
//     nhid N`) by RTA_NH_ID; with net.ipv4.nexthop_compat_mode=0 (a
//     per-namespace sysctl) it carries nothing else. linkwatch also joins
//     RTNLGRP_NEXTHOP (group 32, beyond bind's bitmask: joined with
//     NETLINK_ADD_MEMBERSHIP), reads the objects (RTM_GETNEXTHOP) before
//     the routes, and resolves such a route to the object's interface and
//     gateway, a group to one Route per member (Route.NexthopID names the
//     object). A change of an object re-resolves the routes using it
//     ([RouteChanged] and the like). The kernel deletes the routes of an
//     object it deletes without RTM_DELROUTE (remove_nexthop in
//     net/ipv4/nexthop.c), and deletes a link's objects and their routes
//     without any message on admin down, carrier loss and link removal
//     (nexthop_flush_dev): the route re-read after those link changes
//     reads the objects again. A kernel without nexthop objects (before
//     5.3: the join or the dump fails) is logged once and watched as
//     before.
//   - Messages not sent by the kernel (a sender port id other than 0) are
//     ignored: a root process can unicast forged messages to our socket.
//   - With wireless extensions (CONFIG_CFG80211_WEXT) cfg80211 sends an
//     RTM_NEWLINK on every connect, disconnect and scan that carries only
//     the ifinfomsg header, IFLA_IFNAME and IFLA_WIRELESS
//     (rtnetlink_ifinfo_prep and wireless_send_event in
//     net/wireless/wext-core.c): no IFLA_OPERSTATE, IFLA_MTU,
//     IFLA_ADDRESS, IFLA_LINKINFO or IFLA_CARRIER_CHANGES. Read as a full
//     link it would turn the operstate to unknown, the MTU to 0 and the
//     MAC to none. A link message without IFLA_OPERSTATE (which
//     rtnl_fill_ifinfo always puts) updates only the admin and carrier
//     flags and the name, and marks the link wireless; the rest is kept.
//     Its flags are current: the kernel flushes queued wireless events
//     before any netdev notification (wext_netdev_notifier_call), so they
//     never overtake a full link message.
//   - A link's master (the bond, bridge or VRF it is a port of) appears in
//     IFLA_MASTER only while it has one (nla_put_master in
//     net/core/rtnetlink.c): a full link message without it means none,
//     and Link.Master becomes 0. Joining or leaving a master is a path
//     change ([ChangedMaster]) and re-reads the routes (a port joining a
//     VRF is cycled down and up, and its routes move to the VRF's table).
//   - Per-protocol RTM_NEWLINK messages (family AF_INET6 or AF_BRIDGE)
//     repeat part of a link's attributes and are ignored; the kernel sends
//     the AF_UNSPEC message for every real change.
//
// # What is tracked
//
// Links that pass the filter ([Config.Include], [Config.Exclude]; default
// every interface but loopback); their IPv4 and IPv6 addresses with flags
// and lifetimes; default unicast routes of every table but "local" (local,
// broadcast, multicast and prefix routes never decide reachability), with
// their lifetimes, resolved through nexthop objects where they use them;
// the neighbour entries of the default routes' gateways; and the policy
// routing rules ([RuleEvent], State.Rules, [State.Marks]). Other routes
// that steer packets (prefix routes, a VPN's split routes, unreachable,
// prohibit, blackhole and throw routes) are not kept but reported as an
// [OtherRouteEvent], since they can move a destination's path. A route whose
// lifetime only counted down between two readings emits no event. Kernel lifetimes
// are counted in whole seconds, so a NEWADDR whose lifetimes end within a
// second of the ones already known changes the state but emits no event;
// one that moves them is [AddrRefreshed] (a DHCP renewal), and one that
// changes flags is [AddrChanged] (DAD finished, deprecated). A
// [NeighEvent] reports a change of an entry that belongs to a gateway at
// the time; an existing entry that becomes a gateway's because a route
// appeared shows in State.Neighs without an event.
//
// # The kernel's own path
//
// [Watcher.Lookup] asks the kernel which path a packet to a destination
// (with a packet mark, or none) would take: RTM_GETROUTE, as `ip route get`
// does, with policy rules, marks and routes flagged linkdown honoured
// exactly as connect() sees them. State says which routes exist; Lookup says
// which one wins, which is what decides whether traffic flows: with
// wg-quick's full tunnel every default route is still there, but the rules
// send everything into wg0, and a lookup with the tunnel's mark (51820)
// finds the underlay. A destination without a route is a Path whose Err
// wraps the errno a send would get (ENETUNREACH, EHOSTUNREACH, EACCES).
//
// A link renamed into or out of the filter causes a re-read that emits the
// link and its addresses as added or removed. Events share hardware
// address slices with the watcher: treat them as read-only (State returns
// copies).
//
// # Ordering after a re-read
//
// A re-read (at start, after a gap) happens while notifications keep
// queueing on the socket. Those queued notifications are folded in
// afterwards, in kernel order; they may briefly replay a change the
// re-read already showed, but the state converges to the kernel's.
package linkwatch
