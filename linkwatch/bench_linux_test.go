package linkwatch

import (
	"testing"
	"time"
)

// BenchmarkApplyEvent measures folding one rtnetlink message into the
// state: parsing the bytes, updating the model and building the events.
// Each case alternates two messages so that every fold is a real change.
func BenchmarkApplyEvent(b *testing.B) {
	down := with(wlan, func(l *Link) { l.Carrier = false; l.Oper = OperDown })
	renewed := with(v4, func(a *Addr) { a.Valid = 7200 * time.Second })
	cases := []struct {
		name string
		msgs [][]byte
	}{
		{"link", [][]byte{linkMsg(down, false), linkMsg(wlan, false)}},
		{"addr", [][]byte{addrMsg(renewed, false), addrMsg(v4, false)}},
		{"route", [][]byte{routeMsg(route, true, 0), routeMsg(route, false, 0)}},
		{"neigh", [][]byte{neighMsg(Neigh{Index: 3, IP: gw4, MAC: mac, State: nudFailed}, false),
			neighMsg(Neigh{Index: 3, IP: gw4, MAC: mac, State: nudReachable}, false)}},
		// A prefix route: parsed, recognised as noise, dropped.
		{"noise", [][]byte{routeMsg(with(route, func(r *Route) { r.Dst, _ = r.Gateway.Prefix(24) }), false, 0)}},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			m := newModel(defaultFilter, nil)
			fold(&testing.T{}, m, t0, linkMsg(wlan, false), addrMsg(v4, false), routeMsg(route, false, 0))
			var (
				msg message
				evs = make([]Event, 0, 8)
				hs  = make([]header, len(c.msgs))
			)
			for i, raw := range c.msgs {
				hs[i] = header{typ: ne.Uint16(raw[4:]), flags: ne.Uint16(raw[6:])}
			}
			now := t0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				j := i % len(c.msgs)
				i++
				now = now.Add(2 * time.Second)
				if err := parseMessage(hs[j], c.msgs[j][16:], &msg); err != nil {
					b.Fatal(err)
				}
				evs, _ = m.apply(&msg, now, evs[:0])
			}
		})
	}
}
