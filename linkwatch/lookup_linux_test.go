package linkwatch

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// lookup asks w for the path to dst and fails the test if it cannot ask.
func lookup(t *testing.T, w *Watcher, dst string, mark uint32) Path {
	t.Helper()
	p, err := w.Lookup(netip.MustParseAddr(dst), mark)
	if err != nil {
		t.Fatalf("Lookup(%s, mark %d): %v", dst, mark, err)
	}
	return p
}

func ruleEv(removed bool, table int) func(Event) bool {
	return func(ev Event) bool {
		e, ok := ev.(RuleEvent)
		return ok && e.Removed == removed && e.Rule.Table == table
	}
}

// TestIntegrationLookupFollowsRules: the path Lookup reports is the one
// the kernel's policy rules choose, and rule changes arrive as events.
func TestIntegrationLookupFollowsRules(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	c := netnstest.New(t)
	netnstest.Veth(t, a, "vc", c, "vd")
	a.IP("addr", "add", "10.70.0.1/24", "dev", "va")
	a.IP("addr", "add", "10.71.0.1/24", "dev", "vc")
	r := watch(t, a, Config{})
	r.waitFor("baseline", isBaseline)
	va, _ := r.w.State().LinkByName("va")
	vc, _ := r.w.State().LinkByName("vc")

	// No default route: the kernel answers ENETUNREACH, as connect would.
	p := lookup(t, r.w, "198.51.100.7", 0)
	if p.Reachable() || !errors.Is(p.Err, unix.ENETUNREACH) || !errors.Is(p.Err, ErrNoPath) {
		t.Fatalf("path without a default route = %+v, want ENETUNREACH", p)
	}
	if p := lookup(t, r.w, "2001:db8::7", 0); p.Reachable() || !errors.Is(p.Err, ErrNoPath) {
		t.Fatalf("IPv6 path without any IPv6 route = %+v, want no path", p)
	}
	// An on-link destination needs no default route.
	if p := lookup(t, r.w, "10.70.0.9", 0); p.Index != va.Index || p.Gateway.IsValid() || p.Src != netip.MustParseAddr("10.70.0.1") {
		t.Fatalf("on-link path = %+v, want va without gateway, source 10.70.0.1", p)
	}

	a.IP("route", "add", "default", "via", "10.70.0.2")
	a.IP("route", "add", "default", "via", "10.71.0.2", "table", "100")
	if p := lookup(t, r.w, "198.51.100.7", 0); p.Index != va.Index || p.Gateway != netip.MustParseAddr("10.70.0.2") || p.Table != unix.RT_TABLE_MAIN {
		t.Fatalf("default path = %+v, want va via 10.70.0.2 in main", p)
	}

	a.IP("rule", "add", "to", "198.51.100.7", "lookup", "100", "priority", "1000")
	ev, _ := r.waitFor("rule added", ruleEv(false, 100))
	if rl := ev.(RuleEvent).Rule; rl.Priority != 1000 || rl.Dst != netip.MustParsePrefix("198.51.100.7/32") || rl.Family != unix.AF_INET {
		t.Errorf("rule = %+v, want priority 1000 to 198.51.100.7/32", rl)
	}
	if p := lookup(t, r.w, "198.51.100.7", 0); p.Index != vc.Index || p.Table != 100 {
		t.Fatalf("path under the rule = %+v, want vc from table 100", p)
	}
	r.consistent() // the rules, as `ip -json rule` lists them
	if p := lookup(t, r.w, "198.51.100.8", 0); p.Index != va.Index {
		t.Fatalf("path of another destination = %+v, want va", p)
	}
	a.IP("rule", "del", "to", "198.51.100.7", "lookup", "100", "priority", "1000")
	r.waitFor("rule removed", ruleEv(true, 100))
	if p := lookup(t, r.w, "198.51.100.7", 0); p.Index != va.Index {
		t.Fatalf("path after the rule went = %+v, want va", p)
	}

	// Routes that do not carry packets answer with the errno a send gets.
	a.IP("route", "add", "unreachable", "203.0.113.0/24")
	a.IP("route", "add", "prohibit", "203.0.114.0/24")
	for dst, want := range map[string]unix.Errno{"203.0.113.1": unix.EHOSTUNREACH, "203.0.114.1": unix.EACCES} {
		if p := lookup(t, r.w, dst, 0); p.Reachable() || !errors.Is(p.Err, want) {
			t.Errorf("path to %s = %+v, want %v", dst, p, want)
		}
	}
}

// TestIntegrationLookupWireGuardUnderlay reproduces wg-quick's full tunnel
// (its table, rules and mark, on a tun device held open as wireguard-go
// holds wg0): an unmarked lookup leaves through the tunnel, a lookup with
// the mark the rules name finds the underlay, and State.Marks names it.
func TestIntegrationLookupWireGuardUnderlay(t *testing.T) {
	t.Parallel()
	a, _ := pair(t)
	a.IP("addr", "add", "10.72.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.72.0.2")
	a.Tun("wg0")
	a.IP("addr", "add", "10.200.0.2/32", "dev", "wg0")
	// wg-quick up, as it runs for AllowedIPs = 0.0.0.0/0.
	a.IP("-4", "route", "add", "0.0.0.0/0", "dev", "wg0", "table", "51820")
	a.IP("-4", "rule", "add", "not", "fwmark", "51820", "table", "51820")
	a.IP("-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
	// Tailscale's table 52 with only the tailnet's route changes nothing.
	a.IP("-4", "route", "add", "100.64.0.0/10", "dev", "wg0", "table", "52")
	a.IP("-4", "rule", "add", "lookup", "52", "priority", "5270")

	r := watch(t, a, Config{})
	ev, _ := r.waitFor("baseline", isBaseline)
	st := ev.(Baseline).State
	wg, _ := st.LinkByName("wg0")
	va, _ := st.LinkByName("va")
	if wg.Kind != "tun" || !wg.Carrier {
		t.Fatalf("wg0 = %+v, want kind tun with carrier (held open)", wg)
	}
	if m := st.Marks(unix.AF_INET); len(m) != 1 || m[0] != 51820 {
		t.Fatalf("Marks(AF_INET) = %v, want [51820]", m)
	}
	var sup bool
	for _, rl := range st.Rules {
		sup = sup || (rl.Table == unix.RT_TABLE_MAIN && rl.SuppressPrefixLen == 0)
	}
	if !sup {
		t.Errorf("State.Rules has no main rule with suppress_prefixlength 0: %+v", st.Rules)
	}
	r.consistent() // wg-quick's inverted mark rule, tailscale's table 52
	if p := lookup(t, r.w, "198.51.100.7", 0); p.Index != wg.Index || p.Table != 51820 {
		t.Fatalf("unmarked path = %+v, want wg0 from table 51820", p)
	}
	if p := lookup(t, r.w, "198.51.100.7", 51820); p.Index != va.Index || p.Table != unix.RT_TABLE_MAIN {
		t.Fatalf("path with mark 51820 = %+v, want the underlay va from main", p)
	}
	// The underlay loses its carrier: the kernel keeps its (linkdown)
	// route and still answers with it, so the underlay is still found.
	a.IP("link", "set", "va", "down")
	r.waitFor("va admin down", linkEv(LinkChanged, "va", func(l, _ Link) bool { return !l.AdminUp }))
	if p := lookup(t, r.w, "198.51.100.7", 51820); p.Reachable() {
		t.Fatalf("path with mark 51820 after va went down = %+v, want none", p)
	}
}

// BenchmarkLookup measures one route lookup through the real kernel, on
// the watcher's reused socket, for a destination behind the default route
// and, with wg-quick's rules, for the mark's lookup of the underlay.
func BenchmarkLookup(b *testing.B) {
	netnstest.RequirePrivileged(b)
	a, peer := netnstest.New(b), netnstest.New(b)
	netnstest.Veth(b, a, "va", peer, "vb")
	a.IP("addr", "add", "10.73.0.1/24", "dev", "va")
	a.IP("route", "add", "default", "via", "10.73.0.2")
	a.WGQuick("wg0")
	w, err := New(Config{NetNS: a.Handle})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for range w.Events() {
		break // the baseline: Run keeps the socket from here
	}
	go func() {
		for range w.Events() {
		}
	}()
	dst := netip.MustParseAddr("198.51.100.7")
	for _, c := range []struct {
		name string
		mark uint32
	}{{"tunnel", 0}, {"underlay-mark", 51820}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if p, err := w.Lookup(dst, c.mark); err != nil || !p.Reachable() {
					b.Fatalf("Lookup: %+v, %v", p, err)
				}
			}
		})
	}
}

// wgRule is wg-quick's "not fwmark 51820 lookup 51820".
var wgRule = Rule{Family: unix.AF_INET, Priority: 32765, Table: 51820, Action: 1, Mark: 51820, Mask: 0xffffffff,
	Invert: true, SuppressPrefixLen: -1}

func TestParseRuleRoundTrip(t *testing.T) {
	for _, r := range []Rule{
		wgRule,
		{Family: unix.AF_INET, Priority: 32764, Table: unix.RT_TABLE_MAIN, Action: 1, SuppressPrefixLen: 0},
		{Family: unix.AF_INET6, Priority: 1000, Table: 100, Action: 1, SuppressPrefixLen: -1,
			Dst: netip.MustParsePrefix("2001:db8::/32"), Src: netip.MustParsePrefix("fd00::/8")},
	} {
		var msg message
		err := splitMessages(ruleMsg(r, false), func(h header, data []byte) error { return parseMessage(h, data, &msg) })
		if err != nil || msg.kind != kindRule || msg.rule != r {
			t.Errorf("parse(ruleMsg(%+v)) = %+v, %v", r, msg.rule, err)
		}
	}
	// A selector longer than its address is malformed, not a panic.
	bad := ruleMsg(Rule{Family: unix.AF_INET, Dst: netip.MustParsePrefix("10.0.0.0/8"), SuppressPrefixLen: -1}, false)
	bad[unix.NLMSG_HDRLEN+1] = 33
	var msg message
	if err := splitMessages(bad, func(h header, data []byte) error { return parseMessage(h, data, &msg) }); err == nil ||
		!strings.Contains(err.Error(), "fib_rule_hdr.dst_len: length 33, want 32") {
		t.Errorf("dst_len 33: %v, want an error naming it", err)
	}
}

// FuzzParseLookup feeds arbitrary replies to the lookup's parser: no
// panic, and a reply either fails to parse, or says there is no path
// (with an error wrapping ErrNoPath and no interface), or names an
// interface.
func FuzzParseLookup(f *testing.F) {
	f.Add(uint16(unix.RTM_NEWROUTE), routeMsg(route, false, 0)[unix.NLMSG_HDRLEN:])
	enetunreach := int32(unix.ENETUNREACH)
	f.Add(uint16(unix.NLMSG_ERROR), u32b(uint32(-enetunreach)))
	f.Add(uint16(unix.RTM_NEWROUTE), routeMsg(with(route, func(r *Route) { r.Index = 0 }), false, 0)[unix.NLMSG_HDRLEN:])
	f.Fuzz(func(t *testing.T, typ uint16, b []byte) {
		p := Path{Dst: netip.MustParseAddr("198.51.100.7")}
		if err := parseLookup(header{typ: typ}, b, &p); err != nil {
			return
		}
		switch {
		case p.Err != nil && (!errors.Is(p.Err, ErrNoPath) || p.Index != 0):
			t.Fatalf("no-path answer %+v: want ErrNoPath and no interface", p)
		case p.Err == nil && typ == unix.RTM_NEWROUTE && p.Index == 0:
			t.Fatalf("path %+v without an interface and without an error", p)
		}
	})
}
