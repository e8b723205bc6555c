package dhcpwatch

import (
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// carrier is a link event for eth0 gaining or losing its carrier.
func carrier(up bool, s float64) linkwatch.LinkEvent {
	l := linkwatch.Link{Index: 2, Name: "eth0", AdminUp: true, Carrier: up}
	return linkwatch.LinkEvent{At: at(s), Op: linkwatch.LinkChanged, Link: l}
}

// TestTrackerNewAddressBeforeOld covers a lease that changes address
// (issue 14): systemd-networkd adds the new address before it removes the
// old one, other clients remove the old first. Either way the new address
// is the new lease, never an expiry, and its own lifetime drives the
// phases (no lease-expiring from the old address's end).
func TestTrackerNewAddressBeforeOld(t *testing.T) {
	const old, nu = "10.0.0.5/24", "10.0.0.7/24"
	tests := []struct {
		name  string
		steps []step
		// left is the time left the state must show at the end.
		left time.Duration
	}{
		{
			name: "new added, then the old removed early: the new one is adopted",
			steps: []step{
				{now: 0, ev: baseline(kaddr(old, 120, 120, 0))},
				{now: 30, ev: added(kaddr(nu, 120, 120, 30))},
				{now: 30.1, ev: removed(kaddr(old, 0, 0, 0), 30.1), want: []string{"acquired@30.1 bound 10.0.0.7/24"}},
				{now: 45}, // the blip window would have closed at 40.1
				{now: 80}, // the old address's T1 (60) is no concern
			},
			left: 70 * time.Second,
		},
		{
			name: "new added, then the old removed at its expiry: adopted, not expired",
			steps: []step{
				{now: 0, ev: baseline()},
				{now: 0, ev: added(kaddr(old, 120, 120, 0)), want: []string{"acquired@0 bound 10.0.0.5/24"}},
				{now: 110, ev: added(kaddr(nu, 120, 120, 110)), want: []string{"renewing@63 renewing 10.0.0.5/24", "rebinding@108 rebinding 10.0.0.5/24"}},
				{now: 120, ev: removed(kaddr(old, 0, 0, 0), 120), want: []string{"acquired@120 bound 10.0.0.7/24"}},
			},
			left: 110 * time.Second,
		},
		{
			name: "the old removed, then the new added: a new lease",
			steps: []step{
				{now: 0, ev: baseline(kaddr(old, 120, 120, 0))},
				{now: 30, ev: removed(kaddr(old, 0, 0, 0), 30)},
				{now: 30.1, ev: added(kaddr(nu, 120, 120, 30.1)), want: []string{"acquired@30.1 bound 10.0.0.7/24"}},
				{now: 80},
			},
			left: 70*time.Second + 100*time.Millisecond,
		},
		{
			name: "two finite addresses at baseline: the one that stays is adopted, with its lifetime left",
			steps: []step{
				{now: 0, ev: baseline(kaddr(old, 20, 20, 0), kaddr(nu, 100, 100, 0))},
				{now: 5, ev: removed(kaddr(old, 0, 0, 0), 5), want: []string{"acquired@5 bound 10.0.0.7/24"}},
			},
			left: 95 * time.Second,
		},
		{
			name: "the second address goes first: the lease keeps its own",
			steps: []step{
				{now: 0, ev: baseline(kaddr(old, 120, 120, 0))},
				{now: 10, ev: added(kaddr(nu, 120, 120, 10))},
				{now: 20, ev: removed(kaddr(nu, 0, 0, 0), 20)},
				{now: 30, ev: removed(kaddr(old, 0, 0, 0), 30)},
				{now: 45, want: []string{"expired@40 expired 10.0.0.5/24"}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := NewTracker(Config{})
			run(t, tr, tt.steps)
			st := tr.State()
			if tt.left == 0 {
				return
			}
			if len(st) != 1 || st[0].Addr != pfx(nu) || st[0].Phase != PhaseBound || st[0].TimeLeft != tt.left {
				t.Errorf("state %+v: want %s bound with %v left", st, nu, tt.left)
			}
		})
	}
}

// TestTrackerReconnects covers addresses flushed while the link is
// disconnected (issue 14): no carrier, or Wi-Fi not associated. They are
// a reconnect, not a DHCP blip, and the lease ends only at its own end.
func TestTrackerReconnects(t *testing.T) {
	const a = "10.0.0.5/24"
	no, yes := false, true
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "carrier lost, address and route flushed, back after the reconnect",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 20, ev: carrier(false, 20)},
				{now: 20.1, ev: defaultRoute(linkwatch.RouteRemoved, 20.1)},
				{now: 20.2, ev: removed(kaddr(a, 0, 0, 0), 20.2)},
				{now: 35}, // past the blip window: no expiry
				{now: 40, ev: carrier(true, 40)},
				{now: 41, ev: added(kaddr(a, 120, 120, 41)), want: []string{"reconnected@41 bound 10.0.0.5/24"}},
				{now: 41.1, ev: defaultRoute(linkwatch.RouteAdded, 41.1)},
				{now: 60},
			},
		},
		{
			name: "Wi-Fi disconnected with the carrier still up: the same",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 20, connected: &no},
				{now: 20.2, ev: removed(kaddr(a, 0, 0, 0), 20.2)},
				{now: 40, connected: &yes},
				{now: 41, ev: added(kaddr(a, 120, 120, 41)), want: []string{"reconnected@41 bound 10.0.0.5/24"}},
			},
		},
		{
			name: "a reconnect to another network: a new lease",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 20, ev: carrier(false, 20)},
				{now: 20.2, ev: removed(kaddr(a, 0, 0, 0), 20.2)},
				{now: 40, ev: carrier(true, 40)},
				{now: 41, ev: added(kaddr("192.168.1.9/24", 120, 120, 41)), want: []string{"acquired@41 bound 192.168.1.9/24"}},
			},
		},
		{
			name: "disconnected past the lease's end: expired then, not at the blip window",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 20, ev: carrier(false, 20)},
				{now: 20.2, ev: removed(kaddr(a, 0, 0, 0), 20.2)},
				{now: 119},
				{now: 121, want: []string{"expired@120 expired 10.0.0.5/24"}},
			},
		},
		{
			name: "with carrier, the same removal is still a blip",
			steps: []step{
				{now: 0, ev: baseline(kaddr(a, 120, 120, 0))},
				{now: 20, ev: carrier(false, 20)},
				{now: 21, ev: carrier(true, 21)},
				{now: 30, ev: removed(kaddr(a, 0, 0, 0), 30)},
				{now: 31, ev: added(kaddr(a, 120, 120, 31)), want: []string{"blip@31 bound 10.0.0.5/24 address 1s"}},
			},
		},
		{
			name: "a link without carrier at baseline",
			steps: []step{
				{now: 0, ev: func() linkwatch.Baseline {
					b := baseline(kaddr(a, 120, 120, 0))
					l := b.State.Links[2]
					l.Carrier = false
					b.State.Links[2] = l
					return b
				}()},
				{now: 1, ev: removed(kaddr(a, 0, 0, 0), 1)},
				{now: 30},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { run(t, NewTracker(Config{}), tt.steps) })
	}
}

// TestTrackerReconnectedDuration checks what a Reconnected event says.
func TestTrackerReconnectedDuration(t *testing.T) {
	const a = "10.0.0.5/24"
	tr := NewTracker(Config{})
	tr.Apply(at(0), baseline(kaddr(a, 120, 120, 0)))
	tr.Apply(at(20), carrier(false, 20))
	tr.Apply(at(20), removed(kaddr(a, 0, 0, 0), 20))
	tr.Apply(at(30), carrier(true, 30))
	evs := tr.Apply(at(32.5), added(kaddr(a, 120, 120, 32.5)))
	if len(evs) != 1 || evs[0].Kind != Reconnected || evs[0].Duration != 12500*time.Millisecond {
		t.Fatalf("events %+v: want one reconnected after 12.5s", evs)
	}
	if got, want := evs[0].String(), "reconnected eth0 10.0.0.5/24 (kernel) address gone 12.5s"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}
