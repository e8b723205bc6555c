package linkwatch

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"time"
)

// Rule is one policy routing rule (`ip rule`): it decides which routing
// table the kernel consults for a packet. linkwatch tracks rules because a
// rule added or removed moves traffic without any route changing (wg-quick
// and tailscaled steer everything into their own tables this way), and
// because the marks rules select on tell which lookup finds a tunnel's
// underlay.
type Rule struct {
	Family   uint8  // AF_INET or AF_INET6
	Priority int    // FRA_PRIORITY: lower is consulted first
	Table    int    // FRA_TABLE (or the header's table); 0 for rules that do not look up a table
	Action   uint8  // FR_ACT_*: 1 lookup a table, 2 goto, 6 blackhole, 7 unreachable, 8 prohibit
	Mark     uint32 // FRA_FWMARK: the packet mark the rule selects on; 0 when none
	Mask     uint32 // FRA_FWMASK: the bits of Mark compared; 0 when not given (all bits)
	Invert   bool   // FIB_RULE_INVERT: the rule applies to packets it does not select ("not fwmark ...")
	// SuppressPrefixLen is FRA_SUPPRESS_PREFIXLEN: a lookup in Table whose
	// answer has a prefix this long or shorter is ignored (wg-quick's
	// "suppress_prefixlength 0" skips the main table's default route);
	// -1 when not set.
	SuppressPrefixLen int
	Src, Dst          netip.Prefix // FRA_SRC, FRA_DST selectors; invalid when absent
	IIf, OIf          string       // FRA_IIFNAME, FRA_OIFNAME selectors; "" when absent
}

// RuleEvent reports a policy routing rule that appeared or went away. A
// rule change can move a destination to another table, and so to another
// interface, without any route message.
type RuleEvent struct {
	At      time.Time // when the message was read
	Rule    Rule      // the rule added or removed
	Removed bool      // the rule was deleted
}

// OtherRouteEvent reports a route linkwatch does not keep in its State: a
// prefix route (an address's subnet, a VPN's split route) or a route that
// carries no packets (unreachable, prohibit, blackhole, throw), in any
// table but local. It holds no state; it says that a destination's path
// may have moved, so a consumer that follows paths ([Watcher.Lookup])
// knows to look again. A re-read after lost messages does not replay
// these: a [GapEvent] means the same.
type OtherRouteEvent struct {
	At      time.Time    // when the message was read
	Dst     netip.Prefix // the route's destination
	Table   int          // its routing table
	Type    uint8        // RTN_*: 1 unicast, 6 blackhole, 7 unreachable, 8 prohibit, 9 throw
	Removed bool         // the route was deleted
}

// Time returns when the OtherRouteEvent was read from the kernel.
func (e OtherRouteEvent) Time() time.Time { return e.At }

func (OtherRouteEvent) isEvent() {}

// Time returns when the RuleEvent was read from the kernel.
func (e RuleEvent) Time() time.Time { return e.At }

func (RuleEvent) isEvent() {}

func compareRule(a, b Rule) int {
	if c := cmp.Compare(a.Family, b.Family); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Priority, b.Priority); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Table, b.Table); c != 0 {
		return c
	}
	return cmp.Compare(a.Mark, b.Mark)
}

// Path is the kernel's answer to "how would a packet to Dst leave this
// host?": the result of the same lookup a connect() or sendto() does, policy
// rules, marks and linkdown routes included (RTM_GETROUTE). No packet is
// sent.
type Path struct {
	Dst  netip.Addr // the destination looked up
	Mark uint32     // the packet mark the lookup used (0: none)
	// Err is why the kernel has no path: it wraps the errno a send would
	// get (ENETUNREACH without a route; EHOSTUNREACH, EACCES or EINVAL for
	// unreachable, prohibit and blackhole routes). Index and the other
	// fields are then zero.
	Err     error
	Index   int        // ifindex of the output interface
	Gateway netip.Addr // next hop; invalid when the destination is on-link
	Src     netip.Addr // the source address the kernel would choose
	Table   int        // the routing table that answered
}

// Reachable reports whether the kernel has a route for the destination.
func (p Path) Reachable() bool { return p.Err == nil && p.Index != 0 }

// ErrNoPath is wrapped by [Path.Err] when the kernel answered a lookup with
// a route that does not carry packets (unreachable, prohibit, blackhole) or
// without an output interface.
var ErrNoPath = errors.New("linkwatch: the kernel has no path to the destination")

// applyRule folds a rule message into the model. The kernel accepts the
// same rule more than once, so rules are counted.
func (m *model) applyRule(msg *message, now time.Time, evs []Event) []Event {
	r := msg.rule
	if msg.del {
		n, ok := m.rules[r]
		if !ok {
			return evs
		}
		if n <= 1 {
			delete(m.rules, r)
		} else {
			m.rules[r] = n - 1
		}
		return append(evs, RuleEvent{At: now, Rule: r, Removed: true})
	}
	m.rules[r]++
	return append(evs, RuleEvent{At: now, Rule: r})
}

// diffRules emits the rules that went away and those that appeared
// between m and n.
func (m *model) diffRules(n *model, now time.Time, evs []Event) []Event {
	var gone, come []Rule
	for r, c := range m.rules {
		for i := n.rules[r]; i < c; i++ {
			gone = append(gone, r)
		}
	}
	for r, c := range n.rules {
		for i := m.rules[r]; i < c; i++ {
			come = append(come, r)
		}
	}
	slices.SortFunc(gone, compareRule)
	slices.SortFunc(come, compareRule)
	for _, r := range gone {
		evs = append(evs, RuleEvent{At: now, Rule: r, Removed: true})
	}
	for _, r := range come {
		evs = append(evs, RuleEvent{At: now, Rule: r})
	}
	return evs
}

// ruleList returns the model's rules, each as often as the kernel holds
// it, sorted by family and priority.
func (m *model) ruleList() []Rule {
	var rs []Rule
	for r, c := range m.rules {
		for range c {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, compareRule)
	return rs
}

// Marks returns the distinct packet marks that the rules of family
// select on, in rule order: the marks a tunnel daemon gives its own
// packets so that they bypass its tunnel (wg-quick's 51820, tailscaled's
// 0x80000). A lookup with such a mark finds the tunnel's underlay.
func (s State) Marks(family uint8) []uint32 {
	var ms []uint32
	for _, r := range s.Rules {
		if r.Family == family && r.Mark != 0 && !slices.Contains(ms, r.Mark) {
			ms = append(ms, r.Mark)
		}
	}
	return ms
}
