package linkwatch

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"go.uber.org/zap/zaptest"
	"golang.org/x/sys/unix"
)

// waitTime is the single deadline of each wait. Carrier loss of a link
// whose ifindex equals its iflink can be delayed by the kernel's linkwatch
// for up to a second, and the machine is shared: generous, never a
// measurement.
const waitTime = 15 * time.Second

// recorder runs a Watcher and records every event it emits.
type recorder struct {
	t  *testing.T
	w  *Watcher
	ns *netnstest.NS

	mu     sync.Mutex
	evs    []Event
	notify chan struct{} // closed and replaced on every new event
	closed bool          // the events channel was closed
	next   int           // first event the next wait looks at
}

// watch starts a Watcher on ns and stops it (checking that Run returns nil
// and that the channel closes) when the test ends.
func watch(t *testing.T, ns *netnstest.NS, cfg Config) *recorder {
	t.Helper()
	return watchWith(t, ns, cfg, nil)
}

// watchWith is watch with setup run on the Watcher before Run starts.
func watchWith(t *testing.T, ns *netnstest.NS, cfg Config, setup func(*Watcher)) *recorder {
	t.Helper()
	cfg.NetNS = ns.Handle
	if cfg.Logger == nil {
		cfg.Logger = zaptest.NewLogger(t)
	}
	w, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(w)
	}
	r := &recorder{t: t, w: w, ns: ns, notify: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(ctx) }()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for ev := range w.Events() {
			r.mu.Lock()
			r.evs = append(r.evs, ev)
			close(r.notify)
			r.notify = make(chan struct{})
			r.mu.Unlock()
		}
		r.mu.Lock()
		r.closed = true
		close(r.notify)
		r.mu.Unlock()
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-runErr; err != nil {
			t.Errorf("Run returned %v, want nil after cancel", err)
		}
		<-drained
	})
	return r
}

// readBaseline reads w's first event, with one deadline, and fails t
// unless it is the Baseline.
func readBaseline(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case ev := <-w.Events():
		if _, ok := ev.(Baseline); !ok {
			t.Fatalf("first event %T, want Baseline", ev)
		}
	case <-time.After(waitTime):
		t.Fatalf("no baseline within %v", waitTime)
	}
}

// waitFor waits, with one deadline, for the first event from the cursor on
// that satisfies match, moves the cursor past it and returns it with the
// events seen before it.
func (r *recorder) waitFor(what string, match func(Event) bool) (Event, []Event) {
	r.t.Helper()
	deadline := time.NewTimer(waitTime)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		for i := r.next; i < len(r.evs); i++ {
			if match(r.evs[i]) {
				seen := slices.Clone(r.evs[r.next:i])
				r.next = i + 1
				ev := r.evs[i]
				r.mu.Unlock()
				return ev, seen
			}
		}
		notify, closed := r.notify, r.closed
		r.mu.Unlock()
		if closed {
			r.t.Fatalf("waiting for %s: events channel closed", what)
		}
		select {
		case <-notify:
		case <-deadline.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			r.t.Fatalf("no %s within %v; events since the last wait:\n%s", what, waitTime, describe(r.evs[r.next:]))
		}
	}
}

func describe(evs []Event) string {
	var b strings.Builder
	for _, ev := range evs {
		fmt.Fprintf(&b, "  %T %+v\n", ev, ev)
	}
	return b.String()
}

// consistent waits, with one deadline, until the watcher's State equals
// what iproute2 reports for the namespace, and fails with the difference.
func (r *recorder) consistent() {
	r.t.Helper()
	deadline := time.Now().Add(waitTime)
	var diff string
	for {
		want := oracle(r.t, r.ns)
		got := project(r.w.State())
		if diff = cmp.Diff(want, got); diff == "" {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		// Our state trails the kernel by the messages in flight; give
		// the next event a moment, then ask the oracle again.
		r.mu.Lock()
		notify := r.notify
		r.mu.Unlock()
		select {
		case <-notify:
		case <-time.After(50 * time.Millisecond):
		}
	}
	r.t.Fatalf("State differs from `ip -json` (-ip +linkwatch):\n%s", diff)
}

// view is the part of a State that iproute2 can confirm, in a form both
// sides produce.
type view struct {
	Links  []viewLink
	Addrs  []viewAddr
	Routes []viewRoute
	Rules  []viewRule
}

// viewRule is a policy rule as `ip -json rule` prints it.
type viewRule struct {
	Family   string // "-4" or "-6"
	Priority int
	Table    string // "main", "local", "default" or the number
	Mark     string // "0xca6c", "" when none
	Invert   bool
	Suppress int // -1 when not set
	Dst      string
}

type viewLink struct {
	Index       int
	Name, Kind  string
	Up, LowerUp bool
	Oper        string
	MTU         int
	MAC         string
	Master      string // the master's name
}

type viewAddr struct {
	Index                 int
	Prefix                string
	Scope                 string
	Tentative, Deprecated bool
	DADFailed             bool
	Permanent             bool
	// Lifetimes are compared as forever or not: the seconds left differ
	// between two reads by the time between them.
	ValidForever, PreferredForever bool
}

type viewRoute struct {
	Index    int
	Dst      string
	Gateway  string
	Metric   int
	LinkDown bool
	// Expires is "" for a route that never expires, "expired" once its
	// lifetime has run out and "expires" before: the seconds left differ
	// between two reads.
	Expires string
}

// expiry classifies a route's lifetime for a view: seconds left as
// iproute2 prints them (from RTA_CACHEINFO), present says whether it does.
func expiry(present bool, left float64) string {
	switch {
	case !present:
		return ""
	case left <= 0:
		return "expired"
	}
	return "expires"
}

// project turns a State into a view.
func project(s State) view {
	var v view
	for _, l := range s.Links {
		v.Links = append(v.Links, viewLink{
			Index: l.Index, Name: l.Name, Kind: l.Kind, Up: l.AdminUp, LowerUp: l.Carrier,
			Oper: strings.ToUpper(l.Oper.String()), MTU: l.MTU, MAC: l.MAC.String(),
			Master: s.Links[l.Master].Name,
		})
	}
	for _, a := range s.Addrs {
		v.Addrs = append(v.Addrs, viewAddr{
			Index: a.Index, Prefix: a.Prefix.String(), Scope: scopeName(a.Scope),
			Tentative: a.Flags&flagTentative != 0, Deprecated: a.Deprecated(), DADFailed: a.DADFailed(), Permanent: a.Permanent(),
			ValidForever: a.Valid == Forever, PreferredForever: a.Preferred == Forever,
		})
	}
	for _, r := range s.Routes {
		if r.Table != 254 {
			continue // the oracle lists the main table
		}
		gw := ""
		if r.Gateway.IsValid() {
			gw = r.Gateway.String()
		}
		v.Routes = append(v.Routes, viewRoute{Index: r.Index, Dst: r.Dst.String(), Gateway: gw, Metric: r.Metric, LinkDown: r.LinkDown,
			Expires: expiry(r.Expires != 0, r.ExpiresLeft(time.Now()).Seconds())})
	}
	tables := map[int]string{unix.RT_TABLE_MAIN: "main", unix.RT_TABLE_LOCAL: "local", unix.RT_TABLE_DEFAULT: "default"}
	for _, r := range s.Rules {
		vr := viewRule{Family: "-4", Priority: r.Priority, Table: tables[r.Table], Invert: r.Invert, Suppress: r.SuppressPrefixLen}
		if r.Family == unix.AF_INET6 {
			vr.Family = "-6"
		}
		if vr.Table == "" {
			vr.Table = strconv.Itoa(r.Table)
		}
		if r.Mark != 0 {
			vr.Mark = fmt.Sprintf("%#x", r.Mark)
		}
		if r.Dst.IsValid() {
			vr.Dst = r.Dst.String()
		}
		v.Rules = append(v.Rules, vr)
	}
	v.sort()
	return v
}

func (v *view) sort() {
	slices.SortFunc(v.Links, func(a, b viewLink) int { return a.Index - b.Index })
	slices.SortFunc(v.Addrs, func(a, b viewAddr) int {
		return strings.Compare(fmt.Sprint(a.Index, a.Prefix), fmt.Sprint(b.Index, b.Prefix))
	})
	slices.SortFunc(v.Routes, func(a, b viewRoute) int {
		return strings.Compare(fmt.Sprint(a.Index, a.Dst, a.Metric, a.Gateway), fmt.Sprint(b.Index, b.Dst, b.Metric, b.Gateway))
	})
	slices.SortFunc(v.Rules, func(a, b viewRule) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
}

func scopeName(s uint8) string {
	switch s {
	case 0:
		return "global"
	case 253:
		return "link"
	case 254:
		return "host"
	}
	return fmt.Sprint(s)
}

// oracle reads the namespace with `ip -json` and returns what linkwatch's
// default filter should show: every link but loopback, their addresses,
// and the default routes of the main table.
func oracle(t *testing.T, ns *netnstest.NS) view {
	t.Helper()
	var links []struct {
		Index    int      `json:"ifindex"`
		Name     string   `json:"ifname"`
		Flags    []string `json:"flags"`
		MTU      int      `json:"mtu"`
		Oper     string   `json:"operstate"`
		Address  string   `json:"address"`
		LinkType string   `json:"link_type"`
		Master   string   `json:"master"`
		Info     struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
		AddrInfo []struct {
			Family     string `json:"family"`
			Local      string `json:"local"`
			PrefixLen  int    `json:"prefixlen"`
			Scope      string `json:"scope"`
			Tentative  bool   `json:"tentative"`
			Deprecated bool   `json:"deprecated"`
			DADFailed  bool   `json:"dadfailed"`
			Dynamic    bool   `json:"dynamic"`
			Valid      uint64 `json:"valid_life_time"`
			Preferred  uint64 `json:"preferred_life_time"`
		} `json:"addr_info"`
	}
	// -details adds linkinfo and carrier_changes; addr show carries both
	// the link and its addresses in one consistent read.
	out := ns.IP("-json", "-details", "addr", "show")
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -json addr show: %v\n%s", err, out)
	}
	var v view
	for _, l := range links {
		if l.LinkType == "loopback" {
			continue
		}
		has := func(f string) bool { return slices.Contains(l.Flags, f) }
		v.Links = append(v.Links, viewLink{
			Index: l.Index, Name: l.Name, Kind: l.Info.Kind, Up: has("UP"), LowerUp: has("LOWER_UP"),
			Oper: l.Oper, MTU: l.MTU, MAC: l.Address, Master: l.Master,
		})
		for _, a := range l.AddrInfo {
			p := netip.PrefixFrom(netip.MustParseAddr(a.Local), a.PrefixLen)
			v.Addrs = append(v.Addrs, viewAddr{
				Index: l.Index, Prefix: p.String(), Scope: a.Scope,
				Tentative: a.Tentative, Deprecated: a.Deprecated, DADFailed: a.DADFailed, Permanent: !a.Dynamic,
				ValidForever: a.Valid == infinityLife, PreferredForever: a.Preferred == infinityLife,
			})
		}
	}
	byName := map[string]int{}
	for _, l := range v.Links {
		byName[l.Name] = l.Index
	}
	for _, fam := range []string{"-4", "-6"} {
		var routes []struct {
			Dst      string    `json:"dst"`
			Gateway  string    `json:"gateway"`
			Dev      string    `json:"dev"`
			Metric   int       `json:"metric"`
			Flags    []string  `json:"flags"`
			Type     string    `json:"type"`
			Expires  *int      `json:"expires"` // whole seconds left, negative once expired
			NHID     int       `json:"nhid"`
			Nexthops []hopJSON `json:"nexthops"`
		}
		out := ns.IP("-json", fam, "route", "show", "default")
		if err := json.Unmarshal([]byte(out), &routes); err != nil {
			t.Fatalf("ip -json route show: %v\n%s", err, out)
		}
		for _, r := range routes {
			if r.Type != "" && r.Type != "unicast" {
				continue
			}
			dst := "0.0.0.0/0"
			if fam == "-6" {
				dst = "::/0"
			}
			if r.NHID != 0 {
				r.Nexthops = nexthopHops(t, ns, r.NHID)
			}
			for _, h := range r.Nexthops { // a multipath route: one Route per hop
				v.Routes = append(v.Routes, viewRoute{
					Index: byName[h.Dev], Dst: dst, Gateway: h.Gateway, Metric: r.Metric,
					LinkDown: slices.Contains(h.Flags, "linkdown"),
				})
			}
			if len(r.Nexthops) > 0 {
				continue
			}
			left := 0.0
			if r.Expires != nil {
				// iproute2 truncates rta_expires / USER_HZ: "0" is
				// anywhere below a second, still alive.
				left = float64(*r.Expires) + 0.5
			}
			if r.NHID != 0 {
				continue // a blackhole or a group without members
			}
			v.Routes = append(v.Routes, viewRoute{
				Index: byName[r.Dev], Dst: dst, Gateway: r.Gateway, Metric: r.Metric,
				LinkDown: slices.Contains(r.Flags, "linkdown"), Expires: expiry(r.Expires != nil, left),
			})
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		var rules []struct {
			Priority int     `json:"priority"`
			Table    string  `json:"table"`
			Mark     string  `json:"fwmark"`
			Not      *string `json:"not"`
			Suppress *int    `json:"suppress_prefixlen"`
			Dst      string  `json:"dst"`
			DstLen   int     `json:"dstlen"`
		}
		out := ns.IP("-json", fam, "rule", "show")
		if err := json.Unmarshal([]byte(out), &rules); err != nil {
			t.Fatalf("ip -json rule show: %v\n%s", err, out)
		}
		for _, r := range rules {
			vr := viewRule{Family: fam, Priority: r.Priority, Table: r.Table, Mark: r.Mark, Suppress: -1,
				Invert: strings.Contains(out, fmt.Sprintf(`"priority":%d,"not":null`, r.Priority))}
			if r.Suppress != nil {
				vr.Suppress = *r.Suppress
			}
			if r.Dst != "" {
				a := netip.MustParseAddr(r.Dst)
				if r.DstLen == 0 {
					r.DstLen = a.BitLen() // iproute2 leaves out the length of a host
				}
				vr.Dst = netip.PrefixFrom(a, r.DstLen).String()
			}
			v.Rules = append(v.Rules, vr)
		}
	}
	v.sort()
	return v
}

// Event matchers.

func linkEv(op LinkOp, name string, pred func(l, prev Link) bool) func(Event) bool {
	return func(ev Event) bool {
		e, ok := ev.(LinkEvent)
		return ok && e.Op == op && e.Link.Name == name && (pred == nil || pred(e.Link, e.Prev))
	}
}

func addrEv(op AddrOp, prefix string) func(Event) bool {
	p := netip.MustParsePrefix(prefix)
	return func(ev Event) bool {
		e, ok := ev.(AddrEvent)
		return ok && e.Op == op && e.Addr.Prefix == p
	}
}

func routeEv(op RouteOp, pred func(r, prev Route) bool) func(Event) bool {
	return func(ev Event) bool {
		e, ok := ev.(RouteEvent)
		return ok && e.Op == op && (pred == nil || pred(e.Route, e.Prev))
	}
}

func isGap(ev Event) bool      { _, ok := ev.(GapEvent); return ok }
func isBaseline(ev Event) bool { _, ok := ev.(Baseline); return ok }

// hopJSON is one next hop as `ip -json` prints it, in a multipath route
// or a nexthop object.
type hopJSON struct {
	Gateway string   `json:"gateway"`
	Dev     string   `json:"dev"`
	Flags   []string `json:"flags"`
}

// nexthopHops resolves a nexthop object the way linkwatch does, from
// `ip -json nexthop show`: a group is one hop per member, a blackhole none.
func nexthopHops(t *testing.T, ns *netnstest.NS, id int) []hopJSON {
	t.Helper()
	var nhs []struct {
		hopJSON
		ID        int  `json:"id"`
		Blackhole bool `json:"blackhole"`
		Group     []struct {
			ID int `json:"id"`
		} `json:"group"`
	}
	out := ns.IP("-json", "nexthop", "show")
	if err := json.Unmarshal([]byte(out), &nhs); err != nil {
		t.Fatalf("ip -json nexthop show: %v\n%s", err, out)
	}
	var hops []hopJSON
	add := func(id int) {
		for _, nh := range nhs {
			if nh.ID == id && !nh.Blackhole && nh.Group == nil {
				hops = append(hops, nh.hopJSON)
			}
		}
	}
	for _, nh := range nhs {
		if nh.ID != id {
			continue
		}
		if nh.Group == nil {
			add(id)
		}
		for _, m := range nh.Group {
			add(m.ID)
		}
	}
	return hops
}
