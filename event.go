package netmon

import (
	"time"

	"go.uber.org/zap/zapcore"
)

// EventKind names an event; the names are the `event` values of
// `netmon watch --log-format json`.
type EventKind string

// Event kinds.
const (
	EventBaseline EventKind = "baseline" // the first event: the state when watching began
	EventState    EventKind = "state"    // the overall state or its reason changed
	EventLink     EventKind = "link"     // a link appeared, changed or went away
	EventAddr     EventKind = "addr"     // an address appeared, changed or went away
	EventRoute    EventKind = "route"    // a default route appeared, changed or went away
	EventNeigh    EventKind = "neigh"    // a gateway's neighbour entry changed
	EventWifi     EventKind = "wifi"     // association, disconnect, roam, signal band
	EventDHCP     EventKind = "dhcp"     // lease acquired, renewed, renewing, rebinding, expired, blip
	EventSockErr  EventKind = "sockerr"  // a failed send, reported or observed with eBPF; or sends the kernel counted as finding no route (source "kernel", count)
	EventFlap     EventKind = "flap"     // an outage ended: one line with cause and duration
	EventRebind   EventKind = "rebind"   // connections should be redialled: their local address went away
	EventGap      EventKind = "gap"      // kernel messages were lost and the state was re-read
	EventNotice   EventKind = "notice"   // a watcher is unavailable or degraded (Wi-Fi, eBPF)
	// EventDropped says the subscriber fell behind and missed Dropped
	// events (see [Monitor.Events]); it comes just before the next event
	// delivered. `netmon watch` logs it with the key count, and also when
	// its own log writer falls behind stdout.
	EventDropped EventKind = "dropped"
)

// Rank orders event kinds for dropping, from 0 (dropped first) to 2
// (dropped last): a full queue of events drops the oldest event of the
// lowest rank queued. Baseline ranks 2; state, flap and dropped events
// rank 1; every other kind (link, addr, route, neigh, wifi, dhcp,
// sockerr, rebind, gap, notice) ranks 0.
func (k EventKind) Rank() int {
	switch k {
	case EventBaseline:
		return 2
	case EventState, EventFlap, EventDropped:
		return 1
	}
	return 0
}

// Event is one thing the Monitor saw or decided, in the vocabulary of the
// CLI's log lines. Fields that do not apply are zero.
type Event struct {
	Kind  EventKind
	At    time.Time
	Iface string
	// Msg is a short human-readable description ("carrier lost",
	// "10.0.0.5/24 removed").
	Msg string
	// Status is set for baseline and state events.
	Status Status
	// Fields carries event-specific details as key/value pairs, in the
	// order they are logged (oper, carrier, addr, signal_dbm, errno, ...).
	Fields []zapcore.Field
	// Flap is set for flap events.
	Flap *Flap
	// Explanation is set for sockerr events.
	Explanation *Explanation
	// Dropped is set for dropped events: how many events were lost.
	Dropped uint64
}

// MarshalLogObject writes the event as the CLI logs it: `event`, then
// `state`/`reason` for baseline and state events only, then `iface` and the
// event's fields (and `count` for dropped events).
func (e Event) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("event", string(e.Kind))
	if e.Kind == EventBaseline || e.Kind == EventState {
		enc.AddString("state", e.Status.State.String())
		enc.AddString("reason", string(e.Status.Reason))
		if e.Status.Target != "" {
			enc.AddString("target", e.Status.Target)
		}
	}
	if e.Iface != "" {
		enc.AddString("iface", e.Iface)
	}
	for _, f := range e.Fields {
		f.AddTo(enc)
	}
	if e.Flap != nil {
		_ = e.Flap.MarshalLogObject(enc)
	}
	if e.Explanation != nil {
		_ = e.Explanation.MarshalLogObject(enc)
	}
	if e.Kind == EventDropped {
		enc.AddUint64("count", e.Dropped)
	}
	return nil
}
