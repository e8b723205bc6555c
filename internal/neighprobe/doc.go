// Package neighprobe makes the kernel resolve a gateway's link-layer address
// at once: it sends an ARP request (IPv4) or a Neighbor Solicitation (IPv6)
// for the gateway from raw sockets, and the kernel takes the gateway's reply
// into its own neighbour entry. It is pure I/O: the caller (the Monitor)
// decides when.
//
// # Why
//
// A program that keeps sending while the link is down makes the kernel
// create the gateway's neighbour entry on the dead link: it goes
// INCOMPLETE, its first solicitation is lost, and the next one is due
// retrans_time (1 s by default) later, or the entry ends FAILED after
// mcast_probes of them. When the link returns, the packets queued on that
// entry (and every new one) wait for that timer: 0.1 to 1 s after the
// return, for every program on the machine.
//
// # How, and what was ruled out (Linux 6.x, net/core/neighbour.c)
//
//   - RTM_NEWNEIGH with NTF_USE calls neigh_event_send, which on an
//     INCOMPLETE entry only queues: the timer stays where it was, no
//     solicitation goes out (__neigh_event_send probes immediately only on
//     the NONE/FAILED -> INCOMPLETE transition).
//   - Deleting the entry, or setting it FAILED, goes through
//     neigh_invalidate: its queued packets are dropped and reported to their
//     sockets with error_report (arp_error_report / ndisc_error_report),
//     which is EHOSTUNREACH on a connecting TCP socket. A sender would see
//     an error for a path that just returned.
//   - A reply to a request of our own is the kernel's ordinary input: for
//     IPv4 arp_process looks the sender up (__neigh_lookup, without
//     creating) and calls neigh_update(NUD_REACHABLE) for a unicast reply;
//     for IPv6 ndisc_recv_na does the same (NUD_REACHABLE when the
//     advertisement is solicited, which a router's answer to a solicitation
//     with a source address is). neigh_update on an INCOMPLETE or FAILED
//     entry stores the address, makes it REACHABLE and transmits the queued
//     packets (the arp_queue loop in neigh_update). The tests in this
//     package check exactly that against the running kernel.
//
// So [Prober.Probe] sends: for IPv4, a broadcast ARP request "who has
// gateway, tell src" (AF_PACKET, SOCK_DGRAM; the entry has no address yet
// to unicast to); for IPv6, a Neighbor Solicitation to the gateway's
// solicited-node multicast address, hop limit 255, with a source link-layer
// address option (so the router can answer without resolving us first),
// from a raw ICMPv6 socket that receives nothing (ICMP6_FILTER blocks every
// type).
//
// An entry that does not exist needs nothing: the kernel flushes a link's
// neighbours when its carrier goes (neigh_carrier_down), and the next packet
// creates a new entry with an immediate solicitation. A reply for an entry
// that does not exist is ignored (arp_accept and the NA rules create
// none), so a probe is harmless there too.
//
// # Privilege
//
// Both sockets need CAP_NET_RAW in the network namespace's user namespace.
// Without it [Open] returns an error that matches [ErrUnavailable] (and the
// errno, EPERM): the kernel still resolves the gateway, at its own next
// solicitation (up to retrans_time after the return). IPv6 also needs the
// solicitation to leave: a cgroup egress filter (systemd's
// IPAddressDeny=any) must allow ff02::1:ff00:0/104.
//
// # Network namespaces
//
// A socket belongs to the namespace it was created in: [Open] creates both
// on a thread inside the namespace it is given (see internal/nsthread), and
// every probe then leaves there, whichever thread sends it.
package neighprobe
