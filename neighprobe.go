package netmon

import (
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/internal/neighprobe"
	"github.com/seed-a56be422/netmon/linkwatch"
	"go.uber.org/zap"
)

// The path is usable the moment the link is: at a return, a gateway whose
// neighbour entry a sender left INCOMPLETE or FAILED during the outage is
// probed at once (internal/neighprobe says how and why so), instead of
// waiting for the kernel's next solicitation, up to retrans_time (1 s)
// later. The Monitor decides when; the probe's result is seen as the
// entry's next neigh event (reachable).

// openNeighProbe opens the gateway prober in the watched namespace. Without
// it (no CAP_NET_RAW) one notice says what is lost; netmon carries on.
func (m *Monitor) openNeighProbe() {
	open := m.openProber
	if open == nil {
		open = neighprobe.Open
	}
	p, err := open(m.opts.NetNS)
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.noticeLocked(time.Now(), "neighprobe", "no gateway probe at a return ("+err.Error()+
			"): after an outage with traffic, the first packets wait for the kernel's next ARP/ND solicitation, up to retrans_time (1 s by default)")
		return
	}
	m.prober = p
}

// closeNeighProbe closes the prober once the loop has ended.
func (m *Monitor) closeNeighProbe() {
	m.mu.Lock()
	p := m.prober
	m.prober = nil
	m.mu.Unlock()
	if p != nil {
		_ = p.Close()
	}
}

// probeOnReturnLocked probes f's gateways when its link comes back (carrier
// and operstate up) while it carries a default route or a target's path.
func (m *Monitor) probeOnReturnLocked(e linkwatch.LinkEvent, f *iface) {
	if m.prober == nil || e.Prev.Up() || !e.Link.Up() {
		return
	}
	for _, gw := range m.gatewaysLocked(f) {
		if n, known := f.neigh(gw.ip); known && !unresolved(n) {
			continue // resolved, or a static entry
		}
		// No entry known may still be an INCOMPLETE one: the kernel
		// announces none that a packet creates (__neigh_event_send
		// moves NONE or FAILED to INCOMPLETE without
		// neigh_update_notify). A reply for no entry is ignored, so
		// the probe is harmless there.
		m.probeLocked(e.At, f, gw.ip, "return")
	}
}

// probeUnresolvedLocked probes a gateway whose entry went INCOMPLETE or
// FAILED while its link is up (in practice FAILED: the kernel announces
// that transition, made by its timer, and not the move to INCOMPLETE): the
// gateway may answer now, and the next packet then needs no solicitation.
func (m *Monitor) probeUnresolvedLocked(e linkwatch.NeighEvent, f *iface) {
	if m.prober == nil || e.Removed || !unresolved(e.Neigh) || !f.link.Up() {
		return
	}
	m.probeLocked(e.At, f, e.Neigh.IP, e.Neigh.StateName())
}

// unresolved reports whether the entry is INCOMPLETE or FAILED.
func unresolved(n linkwatch.Neigh) bool {
	s := n.StateName()
	return s == "incomplete" || s == "failed"
}

type gateway struct {
	ip  netip.Addr
	src netip.Addr // a route's preferred source, when it names one
}

// gatewaysLocked returns the next hops through f: its default routes'
// gateways, then the targets' paths' ones, each once.
func (m *Monitor) gatewaysLocked(f *iface) []gateway {
	var gws []gateway
	add := func(g gateway) {
		for _, x := range gws {
			if x.ip == g.ip {
				return
			}
		}
		gws = append(gws, g)
	}
	for _, r := range f.routes {
		if r.Gateway.IsValid() {
			add(gateway{ip: r.Gateway, src: r.Src})
		}
	}
	for _, p := range m.paths {
		for _, path := range []linkwatch.Path{p.path, p.under} {
			if path.Index == f.link.Index && path.Gateway.IsValid() {
				add(gateway{ip: path.Gateway, src: path.Src})
			}
		}
	}
	return gws
}

// probeLocked sends one probe for gw on f and says so in a neigh event;
// why is "return" or the entry's state.
func (m *Monitor) probeLocked(at time.Time, f *iface, gw netip.Addr, why string) {
	r := neighprobe.Request{Index: f.link.Index, MAC: f.link.MAC, Gateway: gw}
	kind := "neighbor solicitation"
	if gw.Is4() {
		kind = "arp request"
		r.Src = m.probeSourceLocked(f, gw)
	}
	fields := []zap.Field{zap.String("gateway", gw.String()), zap.String("probe", kind), zap.String("why", why)}
	msg := "gateway probed"
	if err := m.prober.Probe(r); err != nil {
		msg = "gateway probe failed"
		fields = append(fields, zap.Error(err))
	} else {
		m.stats.NeighProbes++
	}
	m.emitLocked(Event{Kind: EventNeigh, At: at, Iface: f.link.Name, Msg: msg, Fields: fields})
}

// probeSourceLocked picks the IPv4 address an ARP request for gw asks
// from: the preferred source of a route via gw, else an address of f on
// gw's subnet, else any usable IPv4 address of f.
func (m *Monitor) probeSourceLocked(f *iface, gw netip.Addr) netip.Addr {
	for _, g := range m.gatewaysLocked(f) {
		if g.ip == gw && g.src.Is4() {
			return g.src
		}
	}
	var first netip.Addr
	for _, a := range f.addrs {
		ip := a.Prefix.Addr()
		if !ip.Is4() || a.Tentative() {
			continue
		}
		if a.Prefix.Contains(gw) {
			return ip
		}
		if !first.IsValid() {
			first = ip
		}
	}
	return first
}
