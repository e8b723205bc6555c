package netmon

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// The rule's table tests: judge on plain facts, no kernel, no Monitor.
// Each row starts from one Wi-Fi uplink (wlan0, index 2) with an IPv4
// address and default route, the implicit internet paths (IPv4 routed
// through wlan0, IPv6 without a route), and changes what the row is
// about; it asserts the status and the deadline judge returns.

var vNow = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const nudFailed = 0x20 // NUD_FAILED

func vLink(idx int, name string) linkwatch.Link {
	return linkwatch.Link{Index: idx, Name: name, AdminUp: true, Carrier: true, Oper: linkwatch.OperUp, MTU: 1500}
}

func vAddr(idx int, p string) linkwatch.Addr {
	return linkwatch.Addr{Index: idx, Prefix: netip.MustParsePrefix(p), Valid: linkwatch.Forever,
		Preferred: linkwatch.Forever, Observed: vNow.Add(-time.Minute)}
}

func vRoute(idx int, dst, gw string) linkwatch.Route {
	return linkwatch.Route{Index: idx, Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr(gw), Metric: 100, Table: 254}
}

func vPath(dst string, idx int) linkwatch.Path {
	return linkwatch.Path{Dst: netip.MustParseAddr(dst), Index: idx, Table: 254}
}

var errNoPath = errors.New("network is unreachable")

func vNoPath(dst string) linkwatch.Path {
	return linkwatch.Path{Dst: netip.MustParseAddr(dst), Err: errNoPath}
}

// vFacts is the rows' starting point: wlan0 up with 192.168.1.5/24 and a
// default route via 192.168.1.1; no IPv6 route.
func vFacts() facts {
	wlan := &iface{link: vLink(2, "wlan0"),
		addrs:  []linkwatch.Addr{vAddr(2, "192.168.1.5/24")},
		routes: []linkwatch.Route{vRoute(2, "0.0.0.0/0", "192.168.1.1")},
		wifi:   &WifiInfo{Associated: true, SSID: "lab", Band: "good"},
	}
	return facts{
		ifaces: map[int]*iface{2: wlan},
		paths: []pathFacts{
			{t: Target{Spec: "internet-ipv4", Addr: internet4}, implicit: true, path: vPath("8.8.8.8", 2)},
			{t: Target{Spec: "internet-ipv6", Addr: internet6}, implicit: true, path: vNoPath("2001:4860:4860::8888")},
		},
		prevUplink:  2,
		had:         famBit(4),
		hadIdx:      2,
		recent:      10 * time.Second,
		leaseMargin: 30 * time.Second,
		stall:       stallFacts{hold: 5 * time.Second},
		stab:        stabFacts{prev: Up},
	}
}

// dualStack gives wlan0 an IPv6 address and route and the IPv6 path.
func dualStack(f *facts) {
	w := f.ifaces[2]
	w.addrs = append(w.addrs, vAddr(2, "2001:db8::5/64"))
	w.routes = append(w.routes, vRoute(2, "::/0", "fe80::1"))
	f.paths[1].path = vPath("2001:4860:4860::8888", 2)
	f.had = famBit(4) | famBit(6)
}

// targets replaces the implicit paths by declared ones, all through wlan0.
func targets(f *facts, specs ...string) {
	f.paths = nil
	for _, s := range specs {
		a := netip.MustParseAddr(s)
		f.paths = append(f.paths, pathFacts{t: Target{Spec: s, Addr: a}, path: vPath(s, 2)})
	}
}

func TestJudge(t *testing.T) {
	ms := time.Millisecond
	rows := []struct {
		name   string
		change func(f *facts)
		state  State
		reason Reason
		iface  string
		target string
		next   time.Duration // from vNow; 0: no deadline
		check  func(t *testing.T, v verdict)
	}{
		{name: "up", change: func(*facts) {}, state: Up, iface: "wlan0"},
		{name: "no interface", change: func(f *facts) { f.ifaces = map[int]*iface{} }, state: Down, reason: ReasonNoInterface},
		{name: "admin down", change: func(f *facts) { f.ifaces[2].link.AdminUp = false },
			state: Down, reason: ReasonAdminDown, iface: "wlan0"},
		{name: "carrier lost", change: func(f *facts) {
			f.ifaces[2].link.Carrier, f.ifaces[2].link.Oper = false, linkwatch.OperDown
		}, state: Down, reason: ReasonCarrierLost, iface: "wlan0",
			check: func(t *testing.T, v verdict) {
				if !v.loss {
					t.Error("loss not set for an up state going down")
				}
			}},
		{name: "wifi disconnected before the carrier", change: func(f *facts) { f.ifaces[2].wifi.Disconnected = true },
			state: Down, reason: ReasonWifiDisconnect, iface: "wlan0"},
		{name: "no address", change: func(f *facts) { f.ifaces[2].addrs = nil },
			state: Down, reason: ReasonNoAddress, iface: "wlan0"},
		{name: "tentative address", change: func(f *facts) { f.ifaces[2].addrs[0].Flags = 0x40 /* IFA_F_TENTATIVE */ },
			state: Down, reason: ReasonNoAddress, iface: "wlan0"},
		{name: "address lifetime runs out: its end is the deadline", change: func(f *facts) {
			f.ifaces[2].addrs[0].Valid, f.ifaces[2].addrs[0].Observed = 30*time.Second, vNow.Add(-10*time.Second)
		}, state: Up, iface: "wlan0", next: 20 * time.Second},
		{name: "address lifetime over", change: func(f *facts) {
			f.ifaces[2].addrs[0].Valid, f.ifaces[2].addrs[0].Observed = 30*time.Second, vNow.Add(-30*time.Second)
		}, state: Down, reason: ReasonNoAddress, iface: "wlan0"},
		{name: "lease gone past T1", change: func(f *facts) {
			f.ifaces[2].addrs, f.ifaces[2].dhcp = nil, &DHCPInfo{Phase: "renewing"}
		}, state: Down, reason: ReasonLeaseExpired, iface: "wlan0"},
		{name: "no default route", change: func(f *facts) {
			f.ifaces[2].routes = nil
			f.paths[0].path = vNoPath("8.8.8.8")
		}, state: Down, reason: ReasonNoDefaultRoute, iface: "wlan0"},
		{name: "on-link target without a default route", change: func(f *facts) {
			f.ifaces[2].routes = nil
			targets(f, "192.168.1.20")
		}, state: Up, iface: "wlan0"},
		{name: "ipv4 lost while ipv6 stays", change: func(f *facts) {
			dualStack(f)
			f.ifaces[2].addrs = f.ifaces[2].addrs[1:]
		}, state: Degraded, reason: ReasonIPv4Lost, iface: "wlan0"},
		{name: "ipv6 lost while ipv4 stays", change: func(f *facts) {
			dualStack(f)
			f.paths[1].path = vNoPath("2001:4860:4860::8888")
		}, state: Degraded, reason: ReasonIPv6Lost, iface: "wlan0"},
		{name: "ipv4-only network never had ipv6: up", change: func(f *facts) {}, state: Up, iface: "wlan0",
			check: func(t *testing.T, v verdict) {
				if v.had != famBit(4) || v.hadIdx != 2 {
					t.Errorf("had = %b on %d, want IPv4 on 2", v.had, v.hadIdx)
				}
			}},
		{name: "ipv6 only on another uplink than the one that had ipv4: up", change: func(f *facts) {
			dualStack(f)
			f.ifaces[2].addrs = f.ifaces[2].addrs[1:]
			f.hadIdx = 3
		}, state: Up, iface: "wlan0"},
		{name: "gateway failed", change: func(f *facts) {
			f.ifaces[2].neighs = []linkwatch.Neigh{{Index: 2, IP: netip.MustParseAddr("192.168.1.1"), State: nudFailed}}
		}, state: Degraded, reason: ReasonGatewayFailed, iface: "wlan0"},
		{name: "weak signal", change: func(f *facts) { f.ifaces[2].wifi.Band = "weak" },
			state: Degraded, reason: ReasonWeakSignal, iface: "wlan0"},
		{name: "dhcp renewing", change: func(f *facts) { f.ifaces[2].dhcp = &DHCPInfo{Phase: "renewing"} },
			state: Degraded, reason: ReasonDHCPRenewing, iface: "wlan0"},
		{name: "lease expiring within the margin", change: func(f *facts) {
			f.ifaces[2].dhcp = &DHCPInfo{Phase: "bound", Expires: vNow.Add(20 * time.Second)}
		}, state: Degraded, reason: ReasonLeaseExpiring, iface: "wlan0"},
		{name: "lease expiring later: the margin's start is the deadline", change: func(f *facts) {
			f.ifaces[2].dhcp = &DHCPInfo{Phase: "bound", Expires: vNow.Add(time.Minute)}
		}, state: Up, iface: "wlan0", next: 30 * time.Second},
		{name: "roam hold over a carrier gap", change: func(f *facts) {
			f.ifaces[2].link.Carrier, f.ifaces[2].link.Oper = false, linkwatch.OperDown
			f.ifaces[2].routes[0].LinkDown = true
			f.ifaces[2].wifi.roamUntil, f.ifaces[2].wifi.roamFrom = vNow.Add(250*ms), vNow
		}, state: Degraded, reason: ReasonRoamed, iface: "wlan0", next: 250 * ms},
		{name: "roam hold over: carrier lost", change: func(f *facts) {
			f.ifaces[2].link.Carrier, f.ifaces[2].link.Oper = false, linkwatch.OperDown
			f.ifaces[2].wifi.roamUntil, f.ifaces[2].wifi.roamFrom = vNow, vNow.Add(-250*ms)
		}, state: Down, reason: ReasonCarrierLost, iface: "wlan0"},
		{name: "roamed recently", change: func(f *facts) { f.ifaces[2].wifi.LastRoam = vNow.Add(-2 * time.Second) },
			state: Degraded, reason: ReasonRoamed, iface: "wlan0", next: 8 * time.Second},
		{name: "tunnel up over a working underlay", change: func(f *facts) {
			f.ifaces[5] = &iface{link: linkwatch.Link{Index: 5, Name: "wg0", Kind: "wireguard", AdminUp: true, Carrier: true, Oper: linkwatch.OperUnknown},
				addrs: []linkwatch.Addr{vAddr(5, "10.8.0.2/24")}}
			f.paths[0].path, f.paths[0].under = vPath("8.8.8.8", 5), vPath("8.8.8.8", 2)
		}, state: Up, iface: "wlan0",
			check: func(t *testing.T, v verdict) {
				if p := v.paths[0]; p.via != 5 || p.index != 2 {
					t.Errorf("path %+v, want via wg0 (5) judged on wlan0 (2)", p)
				}
			}},
		{name: "tunnel judged by its underlay: carrier lost", change: func(f *facts) {
			f.ifaces[5] = &iface{link: linkwatch.Link{Index: 5, Name: "wg0", Kind: "wireguard", AdminUp: true, Carrier: true, Oper: linkwatch.OperUnknown},
				addrs: []linkwatch.Addr{vAddr(5, "10.8.0.2/24")}}
			f.paths[0].path, f.paths[0].under = vPath("8.8.8.8", 5), vPath("8.8.8.8", 2)
			f.ifaces[2].link.Carrier, f.ifaces[2].link.Oper = false, linkwatch.OperDown
		}, state: Down, reason: ReasonCarrierLost, iface: "wlan0"},
		{name: "tunnel whose underlay has no route", change: func(f *facts) {
			f.ifaces[5] = &iface{link: linkwatch.Link{Index: 5, Name: "wg0", Kind: "wireguard", AdminUp: true, Carrier: true, Oper: linkwatch.OperUnknown},
				addrs: []linkwatch.Addr{vAddr(5, "10.8.0.2/24")}}
			f.paths[0].path, f.paths[0].under = vPath("8.8.8.8", 5), vNoPath("8.8.8.8")
		}, state: Down, reason: ReasonNoDefaultRoute, iface: "wlan0"},
		{name: "send-errors confirmed: down until the hold ends", change: func(f *facts) {
			f.stall.downAt = vNow.Add(-time.Second)
			f.stall.lastFail, f.stall.spread = vNow.Add(-time.Second), 3
		}, state: Down, reason: ReasonSendErrors, iface: "wlan0", next: 4 * time.Second},
		{name: "send-errors hold over", change: func(f *facts) { f.stall.downAt = vNow.Add(-5 * time.Second) },
			state: Up, iface: "wlan0"},
		{name: "send-errors not confirmed, one destination: up until they age", change: func(f *facts) {
			f.stall.lastFail, f.stall.spread = vNow.Add(-time.Second), 1
		}, state: Up, iface: "wlan0", next: 9 * time.Second},
		{name: "send-errors not confirmed, two destinations: degraded", change: func(f *facts) {
			f.stall.lastFail, f.stall.spread = vNow.Add(-time.Second), 2
		}, state: Degraded, reason: ReasonSendErrors, iface: "wlan0", next: 9 * time.Second},
		{name: "send-errors while a destination is live: up until it stops being live", change: func(f *facts) {
			f.stall.lastFail, f.stall.spread = vNow.Add(-time.Second), 2
			f.stall.live, f.stall.liveEnd = true, vNow.Add(3*time.Second)
		}, state: Up, iface: "wlan0", next: 3 * time.Second},
		{name: "stabilize: a return waits out its window", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms}
		}, state: Up, iface: "wlan0", next: 200 * ms,
			check: func(t *testing.T, v verdict) {
				if !v.holdUntil.Equal(vNow.Add(200*ms)) || v.holdWindow != 200*ms {
					t.Errorf("hold until %v (%v), want 200ms", v.holdUntil.Sub(vNow), v.holdWindow)
				}
			}},
		{name: "stabilize: a damped window", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms,
				damp: damping{window: 800 * ms, lastLoss: vNow.Add(-time.Second)}, lastUpAt: vNow.Add(-2 * time.Second)}
		}, state: Up, iface: "wlan0", next: 800 * ms},
		{name: "stabilize: the window decays while the path held", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms,
				damp: damping{window: 800 * ms, lastLoss: vNow.Add(-30 * time.Second)}, lastUpAt: vNow.Add(-25 * time.Second)}
		}, state: Up, iface: "wlan0", next: 200 * ms},
		{name: "stabilize: the window under way ends later", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms, upAt: vNow.Add(50 * ms), window: 200 * ms}
		}, state: Up, iface: "wlan0", next: 50 * ms},
		{name: "stabilize: the window has passed", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms, upAt: vNow, window: 200 * ms}
		}, state: Up, iface: "wlan0",
			check: func(t *testing.T, v verdict) {
				if !v.holdUntil.IsZero() {
					t.Errorf("held until %v after the window passed", v.holdUntil)
				}
			}},
		{name: "stabilize: a loss cuts a return short", change: func(f *facts) {
			f.stab = stabFacts{prev: Down, stabilize: 200 * ms, upAt: vNow.Add(50 * ms), window: 200 * ms}
			f.ifaces[2].link.Carrier = false
		}, state: Down, reason: ReasonCarrierLost, iface: "wlan0",
			check: func(t *testing.T, v verdict) {
				if !v.loss || !v.holdUntil.IsZero() {
					t.Errorf("loss %v, hold %v: want a loss and no hold", v.loss, v.holdUntil)
				}
			}},
		{name: "targets: all reachable", change: func(f *facts) { targets(f, "192.168.1.20", "192.168.1.30") },
			state: Up, iface: "wlan0"},
		{name: "targets: one without a route", change: func(f *facts) {
			targets(f, "192.168.1.20", "10.9.9.9")
			f.paths[1].path = vNoPath("10.9.9.9")
		}, state: Degraded, reason: ReasonTargetUnreachable, iface: "wlan0", target: "10.9.9.9",
			check: func(t *testing.T, v verdict) {
				if p := v.paths[1]; p.ok || p.reason != ReasonNoRoute {
					t.Errorf("path %+v, want no-route", p)
				}
			}},
		{name: "targets: none reachable", change: func(f *facts) {
			targets(f, "192.168.1.20")
			f.ifaces[2].link.Carrier = false
		}, state: Down, reason: ReasonCarrierLost, iface: "wlan0", target: "192.168.1.20"},
		{name: "targets: one closed by send-errors until its hold ends", change: func(f *facts) {
			targets(f, "192.168.1.20", "192.168.1.30")
			f.paths[1].stallAt = vNow.Add(-2 * time.Second)
		}, state: Degraded, reason: ReasonTargetUnreachable, iface: "wlan0", target: "192.168.1.30", next: 3 * time.Second,
			check: func(t *testing.T, v verdict) {
				if p := v.paths[1]; p.ok || p.reason != ReasonSendErrors {
					t.Errorf("path %+v, want send-errors", p)
				}
			}},
		{name: "targets: unresolved host name", change: func(f *facts) {
			targets(f, "192.168.1.20")
			f.paths = append(f.paths, pathFacts{t: Target{Spec: "cloud.example"}})
		}, state: Degraded, reason: ReasonTargetUnreachable, iface: "wlan0", target: "cloud.example"},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			f := vFacts()
			r.change(&f)
			v, next := judge(&f, vNow)
			if v.state != r.state || v.reason != r.reason || v.iface != r.iface || v.target != r.target {
				t.Errorf("verdict %s %q on %q target %q, want %s %q on %q target %q",
					v.state, v.reason, v.iface, v.target, r.state, r.reason, r.iface, r.target)
			}
			var want time.Time
			if r.next != 0 {
				want = vNow.Add(r.next)
			}
			if !next.Equal(want) {
				t.Errorf("deadline %v, want %v", sinceNow(next), sinceNow(want))
			}
			if len(v.paths) != len(f.paths) {
				t.Fatalf("%d path verdicts for %d paths", len(v.paths), len(f.paths))
			}
			if r.check != nil {
				r.check(t, v)
			}
		})
	}
}

// sinceNow shows a deadline relative to vNow ("none" for zero).
func sinceNow(t time.Time) string {
	if t.IsZero() {
		return "none"
	}
	return t.Sub(vNow).String()
}

// TestJudgePure: judging the same facts twice gives the same verdict and
// changes nothing in them.
func TestJudgePure(t *testing.T) {
	f := vFacts()
	f.ifaces[2].wifi.roamUntil = vNow.Add(time.Second)
	before, wifi := *f.ifaces[2], *f.ifaces[2].wifi
	v1, n1 := judge(&f, vNow)
	v1.paths = append([]pathVerdict(nil), v1.paths...)
	v2, n2 := judge(&f, vNow)
	if v1.state != v2.state || v1.reason != v2.reason || !n1.Equal(n2) || v1.paths[0] != v2.paths[0] {
		t.Errorf("two judgements differ: %+v %v, %+v %v", v1, n1, v2, n2)
	}
	if after := *f.ifaces[2]; after.link.Carrier != before.link.Carrier || *after.wifi != wifi || len(after.addrs) != len(before.addrs) {
		t.Error("judge changed the facts")
	}
}

// TestJudgeTargetGates: a declared target's own Gate, one row per rule,
// with the deadline judge returns.
func TestJudgeTargetGates(t *testing.T) {
	ms := time.Millisecond
	rows := []struct {
		name   string
		change func(f *facts)
		want   targetGate // the second target's Gate
		next   time.Duration
	}{
		{name: "reachable: opens", change: func(*facts) {}, want: targetGate{open: true}},
		{name: "unreachable while the other is fine: closed, its return stabilised", change: func(f *facts) {
			f.paths[1].gateWas = targetGate{open: true}
			f.paths[1].path = vNoPath("192.168.1.30")
		}, want: targetGate{lostWhileUp: true}},
		{name: "back after a loss while up: waits out Stabilize", change: func(f *facts) {
			f.paths[1].gateWas = targetGate{lostWhileUp: true}
		}, want: targetGate{lostWhileUp: true, upAt: vNow.Add(200 * ms)}, next: 200 * ms},
		{name: "back after a loss while up, window passed: opens", change: func(f *facts) {
			f.paths[1].gateWas = targetGate{lostWhileUp: true, upAt: vNow}
		}, want: targetGate{open: true}},
		{name: "everything down: closed, no stabilisation of its own", change: func(f *facts) {
			f.paths[1].gateWas = targetGate{open: true}
			f.ifaces[2].link.Carrier = false
		}, want: targetGate{}},
		{name: "the overall return waits out its window: stays closed", change: func(f *facts) {
			f.stab.prev = Down
		}, want: targetGate{}, next: 200 * ms},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			f := vFacts()
			targets(&f, "192.168.1.20", "192.168.1.30")
			for i := range f.paths {
				f.paths[i].gated = true
			}
			f.stab.stabilize = 200 * ms
			r.change(&f)
			v, next := judge(&f, vNow)
			if got := v.paths[1].gateNow; got != r.want {
				t.Errorf("gate %+v, want %+v", got, r.want)
			}
			var want time.Time
			if r.next != 0 {
				want = vNow.Add(r.next)
			}
			if !next.Equal(want) {
				t.Errorf("deadline %v, want %v", sinceNow(next), sinceNow(want))
			}
		})
	}
}

// TestConfirmStall: the data-stall detector's rule, one row per case.
func TestConfirmStall(t *testing.T) {
	a, b, c := netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("198.51.100.3")
	fails := func(dsts ...netip.Addr) []failure {
		fs := make([]failure, len(dsts))
		for i, d := range dsts {
			fs[i] = failure{at: vNow.Add(time.Duration(i-len(dsts)) * time.Second), dst: d}
		}
		return fs
	}
	none := netip.Addr{}
	rows := []struct {
		name        string
		fails       []failure
		live, gwBad bool
		want        bool
		byGateway   bool
	}{
		{name: "below the threshold", fails: fails(a, b, c, a), want: false},
		{name: "one dead peer", fails: fails(a, a, a, a, a), want: false},
		{name: "one dead peer and a stray failure elsewhere", fails: fails(a, a, a, a, b), want: false},
		{name: "spread over destinations, gateway answers", fails: fails(a, b, c, a, b), want: true},
		{name: "unknown destinations count as one", fails: fails(a, a, none, none, none), want: true},
		{name: "a destination is live", fails: fails(a, b, c, a, b), live: true, want: false},
		{name: "one dead peer, gateway failed", fails: fails(a, a, a, a, a), gwBad: true, want: true, byGateway: true},
		{name: "gateway failed but a destination is live", fails: fails(a, a, a, a, a), gwBad: true, live: true, want: false},
	}
	for _, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			p, ok := confirmStall(r.fails, 5, r.live, r.gwBad, vNow)
			if ok != r.want || p.byGateway != r.byGateway {
				t.Fatalf("confirmed %v (by gateway %v), want %v (%v)", ok, p.byGateway, r.want, r.byGateway)
			}
			if ok && !p.byGateway && (p.n != len(r.fails) || p.span != time.Duration(len(r.fails))*time.Second) {
				t.Errorf("proof %+v, want %d failures over %ds", p, len(r.fails), len(r.fails))
			}
		})
	}
}
