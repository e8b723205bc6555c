package netmon

import (
	"context"
	"fmt"
	"time"

	"github.com/seed-a56be422/netmon/sockwatch"
	"go.uber.org/zap"
)

// noRouteWindow is how often a no-route event goes out at most: the sends
// that found no route within it after the first are reported together,
// in one event at its end.
const noRouteWindow = 10 * time.Second

// noRouteMsg ends the message of a no-route event: the kernel counts those
// sends, but not who made them.
const noRouteMsg = "sends found no route (processes unknown; --sockerr-syscalls names them)"

// noRoutes tracks the kernel's no-route counters between polls.
type noRoutes struct {
	prev    uint64    // OutNoRoutes + Ip6OutNoRoutes at the last read
	pending uint64    // counted since the last event, not reported yet
	lastAt  time.Time // when the last event went out
}

// noRouteLoop reads the kernel's counters of sends that found no route
// (every ENETUNREACH of every process in the watched network namespace,
// counted by the kernel) every Options.NoRoutePoll, and reports their rise
// while the state is up or degraded (see noRouteLocked). It reads nothing
// while the eBPF tracer traces system calls, which names each of those
// failures itself. A failed read (no /proc) is a notice, and the end of
// the loop. When ctx ends, the sends held for the end of noRouteWindow go
// out in a last event.
func (m *Monitor) noRouteLoop(ctx context.Context) {
	read := func() (uint64, error) {
		var n sockwatch.NoRoutes
		err := inNetNS(m.opts.NetNS, func() (err error) {
			n, err = sockwatch.ReadNoRoutes()
			return err
		})
		return n.IPv4 + n.IPv6, err
	}
	v, err := read()
	if err != nil {
		m.mu.Lock()
		m.noticeLocked(time.Now(), "noroute", "sends that found no route are not counted: "+err.Error())
		m.mu.Unlock()
		return
	}
	m.mu.Lock()
	m.noRoute.prev = v
	m.mu.Unlock()
	t := time.NewTicker(m.opts.NoRoutePoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// A last reading, and the sends held for the window's end go
			// out now: no count in Stats.NoRouteSends is missing from
			// the events when the Monitor stops.
			v, err := read()
			m.mu.Lock()
			if err == nil {
				m.noRouteLocked(time.Now(), v, m.sock != nil && m.opts.SockSyscalls)
			}
			m.noRouteEmitLocked(time.Now())
			m.mu.Unlock()
			return
		case <-t.C:
		}
		m.mu.Lock()
		named := m.sock != nil && m.opts.SockSyscalls
		m.mu.Unlock()
		v, err := read()
		if err != nil {
			continue // read again at the next tick
		}
		m.mu.Lock()
		m.noRouteLocked(time.Now(), v, named)
		m.mu.Unlock()
	}
}

// noRouteLocked takes a new reading v of the counters. A rise while the
// state is up or degraded, and while no syscall tracing names the senders,
// is counted in Stats.NoRouteSends and reported in one sockerr event
// (source "kernel", errno ENETUNREACH, count), at once when none went out
// within noRouteWindow, else at the end of that window with every send
// since. A rise while the state is down is not: the outage explains it.
func (m *Monitor) noRouteLocked(now time.Time, v uint64, named bool) {
	r := &m.noRoute
	if v < r.prev { // a counter that went back: a namespace made again
		r.prev = v
	}
	d := v - r.prev
	r.prev = v
	if d > 0 && !named && m.status.State.CanSend() {
		r.pending += d
		m.stats.NoRouteSends += d
	}
	if now.Sub(r.lastAt) < noRouteWindow {
		return
	}
	m.noRouteEmitLocked(now)
}

// noRouteEmitLocked reports the sends held since the last no-route event,
// if any, in one event.
func (m *Monitor) noRouteEmitLocked(now time.Time) {
	r := &m.noRoute
	if r.pending == 0 {
		return
	}
	n := r.pending
	r.pending, r.lastAt = 0, now
	m.emitLocked(Event{Kind: EventSockErr, At: now, Iface: m.status.Iface, Msg: fmt.Sprintf("%d %s", n, noRouteMsg),
		Fields: []zap.Field{zap.String("source", "kernel"), zap.String("errno", "ENETUNREACH"), zap.Uint64("count", n)}})
}
