package linkwatch

import (
	"maps"
	"slices"
	"strconv"
	"time"
)

// Address flags (IFA_F_*) that decide whether an address can carry
// traffic. They are Linux ABI numbers, repeated here so that State's methods
// also build on other systems.
const (
	flagTentative = 0x40 // IFA_F_TENTATIVE: IPv6 duplicate address detection has not finished
	flagDADFailed = 0x08 // IFA_F_DADFAILED: another host owns the address
	flagPermanent = 0x80 // IFA_F_PERMANENT: configured without a lifetime
	flagDeprecate = 0x20 // IFA_F_DEPRECATED: preferred lifetime is over
	flagOptimist  = 0x04 // IFA_F_OPTIMISTIC: usable during DAD (RFC 4429)
	scopeUniverse = 0    // RT_SCOPE_UNIVERSE
	nudFailed     = 0x20 // NUD_FAILED
	nudReachable  = 0x02 // NUD_REACHABLE
	infinityLife  = 1<<32 - 1
)

// Tentative reports whether IPv6 duplicate address detection is still
// running for the address (IFA_F_TENTATIVE): the kernel will not use it as a
// source address yet. An optimistic address (RFC 4429) is not tentative.
func (a Addr) Tentative() bool {
	return a.Flags&flagTentative != 0 && a.Flags&flagOptimist == 0
}

// DADFailed reports whether duplicate address detection found another
// host using the address (IFA_F_DADFAILED). The address stays unusable.
func (a Addr) DADFailed() bool { return a.Flags&flagDADFailed != 0 }

// Deprecated reports whether the preferred lifetime is over
// (IFA_F_DEPRECATED). A deprecated address still works for existing
// traffic; for a DHCP address it means the client is overdue with its
// renewal.
func (a Addr) Deprecated() bool { return a.Flags&flagDeprecate != 0 }

// Permanent reports whether the address was configured without a lifetime
// (IFA_F_PERMANENT), i.e. statically rather than by DHCP or SLAAC.
func (a Addr) Permanent() bool { return a.Flags&flagPermanent != 0 }

// Global reports whether the address has universe scope: it can reach
// beyond the link.
func (a Addr) Global() bool { return a.Scope == scopeUniverse }

// Usable reports whether the address can carry traffic beyond the link: it
// is global, duplicate address detection has finished and did not fail.
func (a Addr) Usable() bool { return a.Global() && !a.Tentative() && !a.DADFailed() }

// ValidLeft returns the valid lifetime left at now, Forever for an address
// that never expires, and 0 once it has run out.
func (a Addr) ValidLeft(now time.Time) time.Duration { return left(a.Valid, a.Observed, now) }

// PreferredLeft is [Addr.ValidLeft] for the preferred lifetime.
func (a Addr) PreferredLeft(now time.Time) time.Duration { return left(a.Preferred, a.Observed, now) }

func left(d time.Duration, observed, now time.Time) time.Duration {
	if d == Forever {
		return Forever
	}
	r := d - now.Sub(observed)
	if r < 0 {
		return 0
	}
	return r
}

// Default reports whether r is a default route (0.0.0.0/0 or ::/0).
func (r Route) Default() bool { return r.Dst.IsValid() && r.Dst.Bits() == 0 }

// ExpiresLeft returns the lifetime the route has left at now: Forever for
// a route that never expires, 0 once it has run out.
func (r Route) ExpiresLeft(now time.Time) time.Duration {
	switch {
	case r.Expires == 0:
		return Forever
	case r.Expires < 0:
		return 0
	}
	return left(r.Expires, r.Observed, now)
}

// Expired reports whether the route's lifetime has run out at now. The
// kernel skips an expired route when it looks up a path (fib6_check_expired
// in net/ipv6/ip6_fib.c) although it may still list it.
func (r Route) Expired(now time.Time) bool { return r.ExpiresLeft(now) == 0 }

// expiryMoved reports whether two readings of a route's lifetime (before,
// read at then; after, read at now) end at different moments, by at
// least a second.
func expiryMoved(before time.Duration, then time.Time, after time.Duration, now time.Time) bool {
	forever := func(d time.Duration) time.Duration {
		if d == 0 {
			return Forever
		}
		return d
	}
	return lifetimeMoved(forever(before), then, forever(after), now)
}

// same reports whether two readings describe the same route: equal but for
// the lifetime counting down between them. A route that expired between
// the readings (the kernel reports a negative lifetime) is a change.
func (r Route) same(o Route) bool {
	a, b := r, o
	a.Expires, a.Observed, b.Expires, b.Observed = 0, time.Time{}, 0, time.Time{}
	return a == b && (r.Expires < 0) == (o.Expires < 0) &&
		!expiryMoved(r.Expires, r.Observed, o.Expires, o.Observed)
}

// Failed reports whether the neighbour entry is NUD_FAILED: address
// resolution for the gateway gave up, so packets to it are dropped.
func (n Neigh) Failed() bool { return n.State&nudFailed != 0 }

// Reachable reports whether the neighbour entry is NUD_REACHABLE: the
// gateway answered recently.
func (n Neigh) Reachable() bool { return n.State&nudReachable != 0 }

// Up reports whether the link can carry traffic: administratively up, with
// carrier, and an operational state of up or unknown. Dormant (a Wi-Fi
// interface waiting for its WPA handshake) is not up.
func (l Link) Up() bool {
	return l.AdminUp && l.Carrier && (l.Oper == OperUp || l.Oper == OperUnknown)
}

// Usable reports whether traffic can leave through the interface with this
// index: the link is [Link.Up] (which includes carrier), it has a usable
// global address ([Addr.Usable]) and a default route that has not expired
// ([Route.Expired], checked against the current time) leaves through it.
// A route's linkdown flag is not consulted: the kernel sets it while the
// link has no carrier (which Up already rules out) and clears it without
// a message when the carrier returns, so once the link is up the flag
// is at most a stale copy until linkwatch re-reads the routes.
func (s State) Usable(index int) bool {
	l, ok := s.Links[index]
	if !ok || !l.Up() {
		return false
	}
	return s.hasUsableAddr(index) && s.hasDefaultRoute(index)
}

func (s State) hasUsableAddr(index int) bool {
	for _, a := range s.Addrs {
		if a.Index == index && a.Usable() {
			return true
		}
	}
	return false
}

// hasDefaultRoute reports whether a default route that has not expired
// leaves through the interface.
func (s State) hasDefaultRoute(index int) bool {
	now := time.Now()
	for _, r := range s.Routes {
		if r.Index == index && r.Default() && !r.Expired(now) {
			return true
		}
	}
	return false
}

// LinkByName returns the link currently named name.
func (s State) LinkByName(name string) (Link, bool) {
	for _, l := range s.Links {
		if l.Name == name {
			return l, true
		}
	}
	return Link{}, false
}

// Clone returns a deep copy of s: no map, slice or hardware address is
// shared with s.
func (s State) Clone() State {
	c := State{Read: s.Read}
	if s.Links != nil {
		c.Links = make(map[int]Link, len(s.Links))
		for i, l := range s.Links {
			c.Links[i] = l.clone()
		}
	}
	c.Addrs = slices.Clone(s.Addrs)
	c.Routes = slices.Clone(s.Routes)
	c.Rules = slices.Clone(s.Rules)
	if s.Neighs != nil {
		c.Neighs = make([]Neigh, len(s.Neighs))
		for i, n := range s.Neighs {
			n.MAC = slices.Clone(n.MAC)
			c.Neighs[i] = n
		}
	}
	return c
}

func (l Link) clone() Link {
	l.MAC = slices.Clone(l.MAC)
	return l
}

// equal reports whether two links describe the same thing.
func (l Link) equal(o Link) bool {
	return l.Index == o.Index && l.Name == o.Name && l.Kind == o.Kind &&
		l.AdminUp == o.AdminUp && l.Carrier == o.Carrier && l.Oper == o.Oper &&
		l.MTU == o.MTU && slices.Equal(l.MAC, o.MAC) && l.CarrierChanges == o.CarrierChanges &&
		l.Master == o.Master
}

// String returns the name the kernel uses (iproute2 prints the same names
// in upper case).
func (o OperState) String() string {
	switch o {
	case OperUnknown:
		return "unknown"
	case OperNotPresent:
		return "notpresent"
	case OperDown:
		return "down"
	case OperLowerLayerDown:
		return "lowerlayerdown"
	case OperTesting:
		return "testing"
	case OperDormant:
		return "dormant"
	case OperUp:
		return "up"
	}
	return "oper(" + strconv.Itoa(int(o)) + ")"
}

// String returns "added", "changed" or "removed".
func (op LinkOp) String() string {
	return opString(int(op), "added", "changed", "removed")
}

// String returns "added", "removed", "refreshed" or "changed".
func (op AddrOp) String() string {
	return opString(int(op), "added", "removed", "refreshed", "changed")
}

// String returns "added", "removed" or "changed".
func (op RouteOp) String() string {
	return opString(int(op), "added", "removed", "changed")
}

// opString names operation i (counted from 1), or "op(N)" for a number
// that is not one of them.
func opString(i int, names ...string) string {
	if i >= 1 && i <= len(names) {
		return names[i-1]
	}
	return "op(" + strconv.Itoa(i) + ")"
}

// cloneLinks copies a link map deeply (hardware addresses included).
func cloneLinks(m map[int]Link) map[int]Link {
	c := maps.Clone(m)
	for i, l := range c {
		c[i] = l.clone()
	}
	return c
}
