package netmon

import (
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// The implicit targets when [Options].Targets is empty: "the internet", as
// the kernel's route to a public address of each family (Google's public
// DNS resolvers). Only the kernel's routing table is asked; no packet is
// sent to them.
var (
	internet4 = netip.MustParseAddr("8.8.8.8")
	internet6 = netip.MustParseAddr("2001:4860:4860::8888")
)

// overlayKinds are the link kinds (IFLA_INFO_KIND) of tunnel devices: a
// path through one is judged by its underlay, never on its own, because
// the tunnel device keeps its carrier while the network under it is gone.
// tun covers tun and tap devices (wireguard-go, tailscaled, OpenVPN,
// ZeroTier); the rest are the kernel's own tunnels. ppp is not here: on a
// robot it is the modem's own link, not an overlay.
var overlayKinds = []string{
	"wireguard", "tun", "ipip", "gre", "gretap", "ip6gre", "ip6gretap", "erspan", "ip6erspan",
	"sit", "vti", "vti6", "ip6tnl", "vxlan", "geneve", "bareudp", "xfrm",
}

// isOverlay reports whether a link of this kind is a tunnel.
func isOverlay(kind string) bool { return slices.Contains(overlayKinds, kind) }

// pathState is one target's path: what the kernel answered (the rule's
// facts) and the verdict on it, with the Monitor's state around them.
type pathState struct {
	pathFacts              // what the rule judges (verdict.go)
	pathVerdict            // the verdict of the last evaluation
	gate        *gate.Gate // the target's own Gate; nil for implicit ones

	// Host name resolution (resolve.go).
	lastIdx  int // the interface it was last reachable through, and its name
	lastName string

	addrs          []netip.Addr // a host name's addresses, as resolved (at most maxAddrs)
	wasOK          bool         // ok at the evaluation before
	lost           bool         // the path was lost since the name was resolved
	resolveAgain   bool         // resolve the name again
	saidUnresolved bool         // a notice said the name does not resolve
}

// refreshPathsLocked asks the kernel for every target's path: one lookup,
// and for a path into an overlay one more per mark the policy rules name
// (the mark a tunnel daemon gives its own packets, which finds the
// underlay). It runs once per batch of kernel changes, not per message.
func (m *Monitor) refreshPathsLocked() {
	m.pathsDirty = false
	m.refreshedAt = time.Now()
	m.stats.PathLookups++
	for _, p := range m.paths {
		m.refreshPathLocked(p)
	}
}

// maxAddrs bounds how many of a host name's addresses are looked up.
const maxAddrs = 4

// refreshPathLocked looks up one target's path. A host name that resolved
// to several addresses takes the first one the kernel can route, so a
// dual-stack name stays reachable over IPv4 while IPv6 is down.
func (m *Monitor) refreshPathLocked(p *pathState) {
	p.path, p.under = linkwatch.Path{}, linkwatch.Path{}
	addrs := p.addrs
	if len(addrs) == 0 && p.t.Addr.IsValid() {
		addrs = []netip.Addr{p.t.Addr}
	}
	for i, a := range addrs {
		q := m.lookupLocked(a, 0)
		if i == 0 || q.Reachable() {
			p.path, p.t.Addr = q, a
		}
		if q.Reachable() {
			break
		}
	}
	f, ok := m.ifaces[p.path.Index]
	if !p.path.Reachable() || !ok || !isOverlay(f.link.Kind) {
		return
	}
	// The tunnel's own packets carry a mark that the rules exempt from the
	// tunnel (wg-quick's "not fwmark 51820"): a lookup with it finds the
	// underlay. The tunnel may carry one family over the other, so the
	// other family is asked too (for the internet address of that
	// family). A mark whose lookup ends nowhere (an unrelated kill-switch
	// rule) says the underlay is gone only if no mark finds one.
	var gone linkwatch.Path
	other := internet4
	if p.t.Addr.Is4() {
		other = internet6
	}
	for _, dst := range []netip.Addr{p.t.Addr, other} {
		fam := uint8(unix.AF_INET)
		if dst.Is6() {
			fam = unix.AF_INET6
		}
		for _, mark := range m.marks(fam) {
			q := m.lookupLocked(dst, mark)
			if g, ok := m.ifaces[q.Index]; ok && !isOverlay(g.link.Kind) {
				p.under = q
				return
			}
			if !q.Reachable() && gone.Err == nil && dst == p.t.Addr {
				gone = q
			}
		}
	}
	p.under = gone
}

// pathRefreshGap is the shortest time between two lookups of the paths
// while kernel changes keep coming: the first change after a quiet spell
// is looked up at once, a storm (a DHCP client adding addresses, a
// routing daemon's table) costs one lookup per target every 2 ms at most.
const pathRefreshGap = 2 * time.Millisecond

// refreshDeferredLocked reports whether the paths were looked up less than
// pathRefreshGap ago by the running loop, which then looks them up when
// the gap has passed (nextWakeLocked). A Monitor fed by hand (tests)
// never defers.
func (m *Monitor) refreshDeferredLocked() bool {
	return m.running && time.Since(m.refreshedAt) < pathRefreshGap
}

// lookupLocked asks the kernel (or a test's stand-in) for a path; a lookup
// that cannot be asked is logged and reads as no path.
func (m *Monitor) lookupLocked(dst netip.Addr, mark uint32) linkwatch.Path {
	m.stats.RouteLookups++
	p, err := m.lookup(dst, mark)
	if err != nil {
		m.log.Warn("route lookup failed", zap.Stringer("dst", dst), zap.Error(err))
		p.Err = err
	}
	return p
}

// marks returns the packet marks the policy rules of a family select on,
// those of inverted rules ("not fwmark M", how wg-quick and tailscaled
// exempt their own packets) first.
func (m *Monitor) marks(family uint8) []uint32 {
	var inv, rest []linkwatch.Rule
	for _, r := range m.rules {
		if r.Invert {
			inv = append(inv, r)
		} else {
			rest = append(rest, r)
		}
	}
	return linkwatch.State{Rules: append(inv, rest...)}.Marks(family)
}

// applyRuleLocked folds a rule change into the Monitor's copy of the
// policy rules.
func (m *Monitor) applyRuleLocked(e linkwatch.RuleEvent) {
	if e.Removed {
		if i := slices.Index(m.rules, e.Rule); i >= 0 {
			m.rules = slices.Delete(m.rules, i, i+1)
		}
		return
	}
	m.rules = append(m.rules, e.Rule)
}

// updateTargetGatesLocked carries out the rule's verdict on each target's
// own Gate (nextGate): it closes the Gate while the target's path is not
// usable or the overall state lets nothing through, and opens it when the
// rule says it may.
func (m *Monitor) updateTargetGatesLocked() {
	for _, p := range m.paths {
		if p.gate == nil {
			continue
		}
		was := p.gateWas.open
		p.gateWas = p.gateNow
		switch {
		case !p.ok || !m.status.State.CanSend():
			r := gate.Reason{Code: string(p.reason), Iface: m.ifaceName(p.index)}
			if p.ok {
				r = closeReason(m.status)
			}
			p.gate.Close(r)
		case p.gateWas.open && !was:
			p.gate.Open()
		}
	}
}

// ifaceName returns the name of a watched interface, or "".
func (m *Monitor) ifaceName(index int) string {
	if f, ok := m.ifaces[index]; ok {
		return f.link.Name
	}
	return ""
}

// GateFor returns the Gate of one target, named as in [Options].Targets
// (its Spec): open while the kernel's path to that target is usable and
// the overall state lets traffic flow, so that a sender to the on-site
// server is not held because the cloud is unreachable, and the other way
// round. It returns the sender's view, as [Monitor.Gate] does, and nil
// for a name that is not a target. [Monitor.Gate] follows the overall
// state.
func (m *Monitor) GateFor(target string) *gate.Sender {
	for _, p := range m.paths {
		if p.gate != nil && p.t.Spec == target {
			return p.gate.Sender()
		}
	}
	return nil
}

// initTargets parses Options.Targets into paths, each with its own Gate
// configured like the Monitor's; without targets it sets up the implicit
// internet ones.
func (m *Monitor) initTargets(gc gate.Config, userOK func(gate.Attempt)) error {
	if len(m.opts.Targets) == 0 {
		m.paths = []*pathState{
			{pathFacts: pathFacts{t: Target{Spec: "internet-ipv4", Addr: internet4}, implicit: true}},
			{pathFacts: pathFacts{t: Target{Spec: "internet-ipv6", Addr: internet6}, implicit: true}},
		}
		return nil
	}
	for _, s := range m.opts.Targets {
		t, err := ParseTarget(s)
		if err != nil {
			return err
		}
		for _, p := range m.paths {
			if p.t.Spec == s {
				return fmt.Errorf("netmon: target %q given twice", s)
			}
		}
		p := &pathState{pathFacts: pathFacts{t: t, gated: true}}
		tc := gc
		tc.OnSuccess = func(a gate.Attempt) {
			// A send through this target's Gate succeeded: it ends the
			// target's own stall, not the network's or another's.
			m.targetSuccess(p)
			if userOK != nil {
				userOK(a)
			}
		}
		if p.gate, err = gate.New(tc); err != nil {
			return fmt.Errorf("netmon: gate for target %q: %w", s, err)
		}
		m.paths = append(m.paths, p)
	}
	return nil
}
