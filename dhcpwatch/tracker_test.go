package dhcpwatch

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

var t0 = time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)

// at returns t0 plus s seconds.
func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func sec(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

// kaddr is an address on eth0 (ifindex 2) as linkwatch reports it.
func kaddr(prefix string, valid, pref float64, observed float64) linkwatch.Addr {
	return linkwatch.Addr{
		Index: 2, Iface: "eth0", Prefix: netip.MustParsePrefix(prefix),
		Valid: sec(valid), Preferred: sec(pref), Observed: at(observed),
	}
}

// permanent is an address on eth0 without a lifetime, as clients that
// keep the lease to themselves install it (busybox udhcpc).
func permanent(prefix string) linkwatch.Addr {
	return linkwatch.Addr{Index: 2, Iface: "eth0", Prefix: netip.MustParsePrefix(prefix), Flags: ifaFPermanent,
		Valid: linkwatch.Forever, Preferred: linkwatch.Forever, Observed: t0}
}

func baseline(addrs ...linkwatch.Addr) linkwatch.Baseline {
	return linkwatch.Baseline{At: t0, State: linkwatch.State{
		Links: map[int]linkwatch.Link{1: {Index: 1, Name: "lo", Carrier: true}, 2: {Index: 2, Name: "eth0", Carrier: true}},
		Addrs: addrs,
	}}
}

func added(a linkwatch.Addr) linkwatch.AddrEvent {
	return linkwatch.AddrEvent{At: a.Observed, Op: linkwatch.AddrAdded, Addr: a}
}

func refreshed(a linkwatch.Addr) linkwatch.AddrEvent {
	return linkwatch.AddrEvent{At: a.Observed, Op: linkwatch.AddrRefreshed, Addr: a}
}

func removed(a linkwatch.Addr, s float64) linkwatch.AddrEvent {
	a.Valid, a.Observed = 0, at(s)
	return linkwatch.AddrEvent{At: at(s), Op: linkwatch.AddrRemoved, Addr: a}
}

func defaultRoute(op linkwatch.RouteOp, s float64) linkwatch.RouteEvent {
	return linkwatch.RouteEvent{At: at(s), Op: op, Route: linkwatch.Route{
		Index: 2, Iface: "eth0", Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1"),
	}}
}

// step is one input to a tracker in a scenario: a linkwatch event, a
// lease from a file, or time passing; want lists the events it must
// return, each formatted by fmtEvent.
type step struct {
	now   float64
	ev    linkwatch.Event
	lease *Lease
	// connected, when set, is passed to SetConnected for eth0 before
	// time advances to now.
	connected *bool
	want      []string
}

// fmtEvent writes the parts of an event a scenario checks, compactly:
// "kind@seconds phase addr [blip what duration]".
func fmtEvent(e Event) string {
	s := fmt.Sprintf("%s@%g %s %s", e.Kind, e.At.Sub(t0).Seconds(), e.Lease.Phase, e.Lease.Addr)
	if e.Kind == Blip {
		s += fmt.Sprintf(" %s %s", e.What, e.Duration)
	}
	return s
}

func run(t *testing.T, tr *Tracker, steps []step) {
	t.Helper()
	for i, s := range steps {
		var got []Event
		if s.connected != nil {
			tr.SetConnected(2, *s.connected)
		}
		switch {
		case s.ev != nil:
			got = tr.Apply(at(s.now), s.ev)
		case s.lease != nil:
			got = tr.ApplyLease(at(s.now), *s.lease)
		default:
			got = tr.Advance(at(s.now))
		}
		var gs []string
		for _, e := range got {
			gs = append(gs, fmtEvent(e))
		}
		if strings.Join(gs, "; ") != strings.Join(s.want, "; ") {
			t.Fatalf("step %d (t=%gs): events\n got: %q\nwant: %q", i, s.now, gs, s.want)
		}
	}
}

func TestTrackerPhases(t *testing.T) {
	const a = "10.0.0.5/24"
	tests := []struct {
		name  string
		cfg   Config
		steps []step
	}{
		{
			name: "acquire, renewing at 50%, rebinding at 87.5%, expired on removal, acquired again",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 63.9, want: nil}, // T1 at 61, reported after 3s of slack
				{now: 64, want: []string{"renewing@64 renewing 10.0.0.5/24"}},
				{now: 109, want: []string{"rebinding@109 rebinding 10.0.0.5/24"}},
				{now: 121, ev: removed(kaddr(a, 0, 0, 0), 121), want: []string{"expired@121 expired 10.0.0.5/24"}},
				{now: 300, want: nil},
				{now: 301, ev: added(kaddr(a, 120, 120, 301)), want: []string{"acquired@301 bound 10.0.0.5/24"}},
			},
		},
		{
			name: "a lifetime that jumps back up is a renewal; the same lifetime is not",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 11, ev: refreshed(kaddr(a, 110, 110, 11))}, // flags, say
				{now: 31, ev: refreshed(kaddr(a, 120, 120, 31)), want: []string{"renewed@31 bound 10.0.0.5/24"}},
				{now: 93.9, want: nil}, // T1 moved to 31+60
				{now: 94, want: []string{"renewing@94 renewing 10.0.0.5/24"}},
				{now: 95, ev: refreshed(kaddr(a, 120, 120, 95)), want: []string{"renewed@95 bound 10.0.0.5/24"}},
			},
		},
		{
			name: "time jumping over T1 and T2 reports both, in order",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 110, want: []string{"renewing@64 renewing 10.0.0.5/24", "rebinding@109 rebinding 10.0.0.5/24"}},
			},
		},
		{
			name: "dhcpcd's preferred lifetime is T2",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 0, ev: added(kaddr(a, 120, 40, 0)), want: []string{"acquired@0 bound 10.0.0.5/24"}},
				{now: 39, want: []string{"renewing@25.857142857 renewing 10.0.0.5/24"}}, // 4/7 of T2, RFC 2131's ratio
				{now: 43, want: []string{"rebinding@43 rebinding 10.0.0.5/24"}},
			},
		},
		{
			name: "permanent and IPv6 addresses are not leases by default",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(linkwatch.Addr{Index: 2, Prefix: pfx("10.0.0.9/24"), Valid: linkwatch.Forever, Preferred: linkwatch.Forever, Flags: ifaFPermanent, Observed: at(1)})},
				{now: 2, ev: added(kaddr("2001:db8::5/64", 7200, 3600, 2))},
				{now: 9999},
			},
		},
		{
			name: "IPv6 tracked when asked, temporary addresses never",
			cfg:  Config{IPv6: true},
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 2, ev: added(func() linkwatch.Addr { x := kaddr("2001:db8::77/64", 7200, 3600, 2); x.Flags = ifaFTemporary; return x }())},
				{now: 2, ev: added(kaddr("2001:db8::5/64", 7200, 7200, 2)), want: []string{"acquired@2 bound 2001:db8::5/64"}},
				{now: 3, ev: added(kaddr(a, 120, 120, 3)), want: []string{"acquired@3 bound 10.0.0.5/24"}},
			},
		},
		{
			// See TestTrackerStartedMidLease for the times.
			name: "baseline is silent; without a file, T1 and T2 count from the baseline",
			steps: []step{
				{now: 50, ev: baseline(kaddr(a, 70, 70, 50))},
				{now: 87.9},
				{now: 119, want: []string{"renewing@88 renewing 10.0.0.5/24", "rebinding@114.25 rebinding 10.0.0.5/24"}},
				{now: 120, ev: removed(kaddr(a, 0, 0, 0), 120), want: []string{"expired@120 expired 10.0.0.5/24"}},
			},
		},
		{
			name: "a second finite address on the interface is ignored",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 2, ev: added(kaddr("10.0.0.6/24", 600, 600, 2))},
				{now: 3, ev: removed(kaddr("10.0.0.6/24", 0, 0, 0), 3)},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, NewTracker(tt.cfg), tt.steps) })
	}
}

func TestTrackerBlips(t *testing.T) {
	const a = "10.0.0.5/24"
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "address removed and re-added within the window is one blip",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 40, ev: removed(kaddr(a, 0, 0, 0), 40)},
				{now: 41.5, ev: added(kaddr(a, 120, 120, 41.5)), want: []string{"blip@41.5 bound 10.0.0.5/24 address 1.5s"}},
				{now: 104.4, want: nil}, // the lease restarted at 41.5: T1 at 101.5
				{now: 104.5, want: []string{"renewing@104.5 renewing 10.0.0.5/24"}},
			},
		},
		{
			name: "address and default route gone together are one blip",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 40, ev: defaultRoute(linkwatch.RouteRemoved, 40)},
				{now: 40.1, ev: removed(kaddr(a, 0, 0, 0), 40.1)},
				{now: 41, ev: added(kaddr(a, 120, 120, 41))},
				{now: 41.2, ev: defaultRoute(linkwatch.RouteAdded, 41.2), want: []string{"blip@41.2 bound 10.0.0.5/24 address+route 1.2s"}},
			},
		},
		{
			name: "default route alone gone and back",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 10, ev: defaultRoute(linkwatch.RouteRemoved, 10)},
				{now: 10.5, ev: defaultRoute(linkwatch.RouteAdded, 10.5), want: []string{"blip@10.5 bound 10.0.0.5/24 route 500ms"}},
			},
		},
		{
			name: "default route away longer than the window is not a blip",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 10, ev: defaultRoute(linkwatch.RouteRemoved, 10)},
				{now: 30},
				{now: 31, ev: defaultRoute(linkwatch.RouteAdded, 31)},
			},
		},
		{
			name: "address removed early and not back within the window: expired when the window closes",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 40, ev: removed(kaddr(a, 0, 0, 0), 40)},
				{now: 49.9},
				{now: 50, want: []string{"expired@50 expired 10.0.0.5/24"}},
			},
		},
		{
			name: "address back but route still missing when the window closes: the address blip",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 40, ev: defaultRoute(linkwatch.RouteRemoved, 40)},
				{now: 40, ev: removed(kaddr(a, 0, 0, 0), 40)},
				{now: 42, ev: added(kaddr(a, 120, 120, 42))},
				{now: 50, want: []string{"blip@50 bound 10.0.0.5/24 address 2s"}},
			},
		},
		{
			name: "a different address after a removal is a new lease",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 40, ev: removed(kaddr(a, 0, 0, 0), 40)},
				{now: 41, ev: added(kaddr("10.0.0.7/24", 120, 120, 41)), want: []string{"acquired@41 bound 10.0.0.7/24"}},
				{now: 60},
			},
		},
		{
			name: "routes removed with the address at expiry give one expiry (read late: reported at the read)",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 0, ev: added(kaddr(a, 120, 120, 0)), want: []string{"acquired@0 bound 10.0.0.5/24"}},
				{now: 200, ev: defaultRoute(linkwatch.RouteRemoved, 120), want: []string{"renewing@63 renewing 10.0.0.5/24", "rebinding@108 rebinding 10.0.0.5/24"}},
				{now: 200, ev: removed(kaddr(a, 0, 0, 0), 120), want: []string{"expired@200 expired 10.0.0.5/24"}},
				{now: 300},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, NewTracker(Config{}), tt.steps) })
	}
}

func TestTrackerLeaseFiles(t *testing.T) {
	const a = "10.0.0.5/24"
	file := func(start float64, length, t1, t2 float64) *Lease {
		return &Lease{
			Iface: "eth0", Addr: pfx(a), Start: at(start), Length: sec(length), T1: sec(t1), T2: sec(t2),
			Server: addr("10.0.0.2"), Router: addr("10.0.0.1"), Source: "/var/lib/dhcp/dhclient.leases", Kind: Dhclient,
		}
	}
	tests := []struct {
		name  string
		steps []step
		check func(t *testing.T, s []LeaseState)
	}{
		{
			name: "a matching file gives a kernel lease its T1 and T2",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 1.2, lease: file(1, 120, 20, 40)},
				{now: 24, want: []string{"renewing@24 renewing 10.0.0.5/24"}},
				{now: 44, want: []string{"rebinding@44 rebinding 10.0.0.5/24"}},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Source != SourceKernel || s[0].LeaseFile != "/var/lib/dhcp/dhclient.leases" ||
					s[0].Server != addr("10.0.0.2") || s[0].Router != addr("10.0.0.1") || s[0].TimeLeft != 77*time.Second {
					t.Errorf("state %+v: want a kernel lease enriched by the file with 77s left at 44s", s)
				}
			},
		},
		{
			name: "a file whose times disagree with the kernel gives only the server",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 2, lease: file(-50, 120, 20, 40)}, // ends at 70, the kernel's at 121
				{now: 63},
				{now: 64, want: []string{"renewing@64 renewing 10.0.0.5/24"}},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].T1 != at(61) || s[0].Server != addr("10.0.0.2") {
					t.Errorf("state %+v: want T1 from the kernel, the server from the file", s)
				}
			},
		},
		{
			name: "a file whose lease ended is not this lease's: nothing from it",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 2, lease: file(-500, 120, 20, 40)}, // ended at -380
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].T1 != at(61) || s[0].Server.IsValid() || s[0].Router.IsValid() || s[0].LeaseFile != "" {
					t.Errorf("state %+v: want the kernel's T1 and no server, router or lease file", s)
				}
			},
		},
		{
			name: "a file for the same address on another interface is not this lease's",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 1.2, lease: func() *Lease { l := file(1, 120, 20, 40); l.Iface = "lo"; return l }()},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Server.IsValid() || s[0].LeaseFile != "" {
					t.Errorf("state %+v: want no server or lease file from lo's file", s)
				}
			},
		},
		{
			name: "a deleted file takes its server and router with it",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 1, ev: added(kaddr(a, 120, 120, 1)), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 1.2, lease: file(1, 120, 20, 40)},
				{now: 5, lease: &Lease{Source: "/var/lib/dhcp/dhclient.leases", Kind: Dhclient}},
				{now: 64, want: []string{"renewing@64 renewing 10.0.0.5/24"}}, // the kernel's T1 again
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Server.IsValid() || s[0].Router.IsValid() || s[0].LeaseFile != "" || s[0].Phase != PhaseRenewing {
					t.Errorf("state %+v: want a kernel lease without the file's facts", s)
				}
			},
		},
		{
			name: "a deleted file ends the lease it alone drove",
			steps: []step{
				{now: 0, ev: baseline(permanent(a))},
				{now: 1, lease: file(1, 120, 20, 40), want: []string{"acquired@1 bound 10.0.0.5/24"}},
				{now: 5, lease: &Lease{Source: "/var/lib/dhcp/dhclient.leases", Kind: Dhclient},
					want: []string{"expired@5 expired 10.0.0.5/24"}},
				{now: 200}, // nothing more is due
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Phase != PhaseExpired || s[0].Server.IsValid() {
					t.Errorf("state %+v: want the file's lease expired, without its server", s)
				}
			},
		},
		{
			name: "a file tells a baseline lease when it started",
			steps: []step{
				{now: 0, lease: file(-30, 120, 20, 40)},
				{now: 0, ev: baseline(kaddr(a, 90, 90, 0))}, // already renewing: silent
				{now: 12},
				{now: 13, want: []string{"rebinding@13 rebinding 10.0.0.5/24"}},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Start != at(-30) || s[0].Length != 120*time.Second {
					t.Errorf("state %+v: want start and length from the file", s)
				}
			},
		},
		{
			name: "file-only lease where the address is permanent (udhcpc)",
			steps: []step{
				{now: 0, ev: baseline(permanent(a))},
				{now: 5, lease: file(5, 120, 60, 105), want: []string{"acquired@5 bound 10.0.0.5/24"}},
				{now: 68, want: []string{"renewing@68 renewing 10.0.0.5/24"}},
				{now: 70, lease: file(70, 120, 60, 105), want: []string{"renewed@70 bound 10.0.0.5/24"}},
				{now: 70.5, lease: file(70, 120, 60, 105)}, // the same file read again
				{now: 200, want: []string{"renewing@133 renewing 10.0.0.5/24", "rebinding@178 rebinding 10.0.0.5/24", "expired@190 expired 10.0.0.5/24"}},
			},
		},
		{
			name: "a file written before its address is added (dhcpcd) waits for the kernel",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 5, lease: file(5, 120, 60, 105)},
				{now: 5.1, ev: added(kaddr(a, 120, 120, 5.1)), want: []string{"acquired@5.1 bound 10.0.0.5/24"}},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Source != SourceKernel || s[0].Server != addr("10.0.0.2") {
					t.Errorf("state %+v: want a kernel lease with the file's server", s)
				}
			},
		},
		{
			name: "a file-only lease starts when its permanent address is added",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 5, lease: file(5, 120, 60, 105)},
				{now: 5.1, ev: func() linkwatch.Event { p := permanent(a); p.Observed = at(5.1); return added(p) }(),
					want: []string{"acquired@5.1 bound 10.0.0.5/24"}},
			},
		},
		{
			name: "a stale file-only lease is ignored",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 500, lease: file(5, 120, 60, 105)},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 0 {
					t.Errorf("state %+v: want none", s)
				}
			},
		},
		{
			name: "the kernel takes over a file-only lease silently",
			steps: []step{
				{now: 0, ev: baseline(permanent(a))},
				{now: 5, lease: file(5, 120, 60, 105), want: []string{"acquired@5 bound 10.0.0.5/24"}},
				{now: 5.1, ev: added(kaddr(a, 120, 120, 5.1))},
			},
			check: func(t *testing.T, s []LeaseState) {
				if len(s) != 1 || s[0].Source != SourceKernel {
					t.Errorf("state %+v: want the kernel as source", s)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(Config{})
			run(t, tr, tt.steps)
			if tt.check != nil {
				tt.check(t, tr.State())
			}
		})
	}
}

// TestTrackerStartedMidLease checks what the tracker makes of a lease that
// is already running when it starts and that no lease file describes: the
// kernel shows only the lifetime left, so the start and length stay
// unknown, and T1 and T2 are estimated as if the lease had been granted at
// the baseline. For a lease that had already run, those are later than the
// real ones: renewing and rebinding come late, never early. The first
// renewal gives the real times.
func TestTrackerStartedMidLease(t *testing.T) {
	const a = "10.0.0.5/24"
	tests := []struct {
		name string
		// A 120 s lease granted at 0, seen first at 40 (80 s left).
		base   linkwatch.Addr
		steps  []step
		t1, t2 float64 // the estimates, in seconds after t0
	}{
		{
			// Real T1 and T2: 60 and 105. Estimates: 40 + 80/2 and
			// 40 + 80*7/8.
			name: "valid = preferred lifetime (most clients)",
			base: kaddr(a, 80, 80, 40),
			t1:   80, t2: 110,
			steps: []step{
				{now: 82.9},
				{now: 83, want: []string{"renewing@83 renewing 10.0.0.5/24"}},
				{now: 90, ev: refreshed(kaddr(a, 120, 120, 90)), want: []string{"renewed@90 bound 10.0.0.5/24"}},
				// Exact from the renewal on: T1 at 90 + 60.
				{now: 152.9},
				{now: 153, want: []string{"renewing@153 renewing 10.0.0.5/24"}},
			},
		},
		{
			// dhcpcd sets the preferred lifetime to T2 (105 s), so 65 s
			// are left of it at 40: T2 is exact, T1 is 4/7 of the way
			// to it (real: 60).
			name: "preferred lifetime at T2 (dhcpcd)",
			base: kaddr(a, 80, 65, 40),
			t1:   40 + 65.0*4/7, t2: 105,
			steps: []step{
				{now: 80.1},
				{now: 80.2, want: []string{"renewing@80.142857142 renewing 10.0.0.5/24"}},
				{now: 107.9},
				{now: 108, want: []string{"rebinding@108 rebinding 10.0.0.5/24"}},
				{now: 120, ev: removed(kaddr(a, 0, 0, 0), 120), want: []string{"expired@120 expired 10.0.0.5/24"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(Config{})
			run(t, tr, []step{{now: 40, ev: baseline(tt.base)}})
			s := tr.State()
			if len(s) != 1 {
				t.Fatalf("state %+v: want one lease", s)
			}
			if !s[0].Start.IsZero() || s[0].Length != 0 || s[0].Phase != PhaseBound || !s[0].Expiry.Equal(at(120)) {
				t.Errorf("state %+v: want bound, start and length unknown, expiry at 120s", s[0])
			}
			if !s[0].T1.Equal(at(tt.t1)) || !s[0].T2.Equal(at(tt.t2)) {
				t.Errorf("T1, T2 at %v, %v; want the estimates %gs, %gs",
					s[0].T1.Sub(t0), s[0].T2.Sub(t0), tt.t1, tt.t2)
			}
			if d, ok := tr.NextDeadline(); !ok || !d.Equal(s[0].T1.Add(DefaultSlack)) {
				t.Errorf("NextDeadline = %v, %v; want T1 plus the slack", d.Sub(t0), ok)
			}
			run(t, tr, tt.steps)
		})
	}
}

func TestTrackerGapAndLinks(t *testing.T) {
	const a = "10.0.0.5/24"
	gap := func(s float64, addrs ...linkwatch.Addr) linkwatch.GapEvent {
		b := baseline(addrs...)
		return linkwatch.GapEvent{At: at(s), State: b.State}
	}
	tr := NewTracker(Config{})
	run(t, tr, []step{
		{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
		// Messages were lost while the lease was renewed.
		{now: 30, ev: gap(30, kaddr(a, 120, 120, 30)), want: []string{"renewed@30 bound 10.0.0.5/24"}},
		// ... and while it was replaced by another address.
		{now: 40, ev: gap(40, kaddr("10.0.0.8/24", 120, 120, 40)), want: []string{"acquired@40 bound 10.0.0.8/24"}},
		{now: 41, ev: linkwatch.LinkEvent{At: at(41), Op: linkwatch.LinkRemoved, Link: linkwatch.Link{Index: 2, Name: "eth0"}}},
	})
	if s := tr.State(); len(s) != 0 {
		t.Errorf("state after the link was removed: %+v, want none", s)
	}
	if d, ok := tr.NextDeadline(); ok {
		t.Errorf("NextDeadline = %v, want none", d)
	}
}

func TestTrackerNextDeadline(t *testing.T) {
	tr := NewTracker(Config{BlipWindow: 5 * time.Second})
	tr.Apply(at(0), baseline())
	if _, ok := tr.NextDeadline(); ok {
		t.Fatal("NextDeadline with no lease: want none")
	}
	tr.Apply(at(1), added(kaddr("10.0.0.5/24", 120, 120, 1)))
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(64)) {
		t.Errorf("NextDeadline = %v, %v; want T1 (61s) plus the 3s slack", d.Sub(t0), ok)
	}
	tr.Apply(at(10), removed(kaddr("10.0.0.5/24", 0, 0, 0), 10))
	if d, ok := tr.NextDeadline(); !ok || !d.Equal(at(15)) {
		t.Errorf("NextDeadline = %v, %v; want the blip window's end at 15s", d.Sub(t0), ok)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{BlipWindow: -1}, "dhcpwatch: Config.BlipWindow -1ns: want >= 0"},
		{Config{Slack: -time.Second}, "dhcpwatch: Config.Slack -1s: want >= 0"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if got := fmt.Sprint(err); (err == nil) != (tt.want == "") || err != nil && got != tt.want {
			t.Errorf("%+v.Validate() = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// FuzzTracker feeds the tracker arbitrary sequences of address, route and
// lease-file inputs and checks what must hold whatever the kernel says: no
// panic, State consistent with the phases (a live lease has an address
// and an expiry), event times that never decrease, and a deadline that is
// never in the past after Advance. For one input length in three the
// tracker starts during a lease (T1 and T2 estimated).
func FuzzTracker(f *testing.F) {
	f.Add([]byte{0, 1, 120, 5, 2, 120, 30, 1, 0, 200, 4, 0, 0})
	f.Add([]byte{0, 1, 120, 5, 3, 0, 1, 4, 0, 0, 0, 1, 120, 1, 5, 0, 0, 6, 2, 0})
	f.Add([]byte{6, 0, 0, 50, 1, 0, 120, 10, 6, 0, 0, 80, 2, 0, 0, 10, 6, 0, 0, 30, 6, 0, 0, 50}) // 24 bytes: a baseline lease
	f.Fuzz(func(t *testing.T, data []byte) {
		tr := NewTracker(Config{IPv6: len(data)%2 == 0})
		if len(data)%3 == 0 {
			tr.Apply(t0, baseline(kaddr("10.0.0.5/24", 80, 65, 0)))
		} else {
			tr.Apply(t0, baseline())
		}
		now, last := t0, t0
		prefixes := []string{"10.0.0.5/24", "10.0.0.6/24", "2001:db8::5/64"}
		for len(data) >= 4 {
			op, p, v, dt := data[0], prefixes[int(data[1])%len(prefixes)], float64(data[2]), float64(data[3])
			data = data[4:]
			now = now.Add(sec(dt))
			a := kaddr(p, v, v/2, now.Sub(t0).Seconds())
			var evs []Event
			switch op % 7 {
			case 0:
				evs = tr.Apply(now, added(a))
			case 1:
				evs = tr.Apply(now, refreshed(a))
			case 2:
				evs = tr.Apply(now, removed(a, now.Sub(t0).Seconds()))
			case 3:
				evs = tr.Apply(now, defaultRoute(linkwatch.RouteRemoved, now.Sub(t0).Seconds()))
			case 4:
				evs = tr.Apply(now, defaultRoute(linkwatch.RouteAdded, now.Sub(t0).Seconds()))
			case 5:
				evs = tr.ApplyLease(now, Lease{Iface: "eth0", Addr: a.Prefix, Start: now.Add(-sec(dt)), Length: sec(v), T1: sec(dt), Source: "f"})
			default:
				evs = tr.Advance(now)
				if d, ok := tr.NextDeadline(); ok && !d.After(now) {
					t.Fatalf("NextDeadline %v not after now %v after Advance", d, now)
				}
			}
			for _, e := range evs {
				if e.At.Before(last) {
					t.Fatalf("event %v at %v, before an earlier event at %v", e, e.At, last)
				}
				last = e.At
			}
		}
		for _, s := range tr.State() {
			live := s.Phase == PhaseBound || s.Phase == PhaseRenewing || s.Phase == PhaseRebinding
			if live && (!s.Addr.IsValid() || s.Expiry.IsZero()) {
				t.Fatalf("live lease without address or expiry: %+v", s)
			}
			if s.TimeLeft < 0 {
				t.Fatalf("negative time left: %+v", s)
			}
		}
	})
}
