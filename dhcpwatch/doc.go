// Package dhcpwatch tells, for each interface, whether its address is leased
// by DHCP and where the lease stands (bound, renewing, rebinding, expired),
// without being the DHCP client and whichever client the machine runs.
//
// # Sources
//
// The kernel is the source of truth. Most DHCP clients (systemd-networkd,
// NetworkManager, dhcpcd, iwd, Debian's dhclient-script) install the leased
// IPv4 address with finite valid and preferred lifetimes. [Tracker] reads
// them from linkwatch events: an address without IFA_F_PERMANENT and with a
// finite valid lifetime is leased; a lifetime that jumps back up is a
// renewal; the removal of the address at the end of its lifetime is the
// expiry. From the lease length it infers T1 (50%) and T2 (87.5%), the times
// RFC 2131 gives a client to renew and to rebind.
//
// A tracker that starts while a lease is running sees only the lifetime
// left, not when the lease began or how long it is. Unless a lease file
// says so, [LeaseState.Start] and Length stay unknown until the first
// renewal, and T1 and T2 are estimated, with those ratios, as if the lease
// had been granted when the tracker first saw it: the latest they can be,
// so renewing and rebinding are reported late (by up to half the time the
// lease had already run) but never early. The expiry is exact.
//
// Lease files enrich that view: [LeaseFiles] watches the files of dhclient,
// dhcpcd, systemd-networkd and NetworkManager with inotify (no polling) and
// [Parse] reads them tolerantly. They give the exact T1 and T2, the server
// and the router. Parse returns times a client could act on (0 < T1 <= T2
// <= lease length): a T1 or T2 that is missing or out of order gets RFC
// 2131's default, as a client would give it. When a file and the kernel
// disagree (a stale file, a client that crashed), the kernel wins. For
// clients that install permanent addresses (busybox udhcpc, some dhclient
// scripts) a lease file is the only source, and the phases then follow the
// file's times. A file is believed only where it agrees with the kernel:
// the interface it names shows the address it leases, and its lease has
// not ended (an old file's server and router are not this lease's). Two
// facts seen with the real clients shape the matching: dhclient does not
// rewrite its lease file when it wrote it less than 15 s before (so with a
// short T1 the file lags the kernel and the kernel's 50%/87.5% apply), and
// dhcpcd writes its file before it adds the address (so the lease starts
// when the kernel shows the address, with the file's details). dhcpcd and
// systemd-networkd unlink their file when they release the lease:
// [LeaseFiles] reports the removal (IN_DELETE, IN_MOVED_FROM), and the
// file's facts leave the state.
//
// # Blips
//
// Some clients remove and re-add the address or the default route on every
// renewal. While they are gone, senders get ENETUNREACH. A removal that is
// undone within [Config.BlipWindow] is reported as one [Blip] event with its
// duration instead of an expiry followed by a new lease.
//
// Two removals are not blips. A lease that changes address (systemd-networkd
// adds the new address before it removes the old one) goes on with the
// other finite address of the interface: one [Acquired], never an expiry.
// And clients flush addresses when the link loses its carrier or Wi-Fi its
// association ([Tracker.SetConnected]): the address coming back after the
// reconnect is one [Reconnected] event, and the lease ends only at its own
// end if it does not.
//
// # Concurrency
//
// [Tracker] is pure: no goroutines, no I/O, no clock. Its caller (the
// Monitor's single event loop) passes the time with every call and calls
// [Tracker.Advance] at [Tracker.NextDeadline], so tests drive it with
// constructed events and invented times. [LeaseFiles] is the only part that
// does I/O; its Run returns after its one goroutine has ended, and it closes
// its event channel then.
//
// dhcpwatch never sends DHCP packets, never touches an address, and needs no
// privilege beyond reading the lease files (dhcpcd's are mode 0640, root).
package dhcpwatch
