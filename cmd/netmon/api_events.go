package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// streamBuffer is how many lines an event stream may fall behind before it
// is cut off.
const streamBuffer = 1024

// eventHub fans the Monitor's events out to the API's event streams, each
// line encoded once for all of them. Publishing never waits: a stream
// whose buffer is full is cut off, and its handler ends it with a line
// saying how many events it missed.
type eventHub struct {
	enc zapcore.Encoder // JSON, as `watch --log-format json`

	n    atomic.Int32 // streams subscribed, read without mu on the way in
	mu   sync.Mutex
	subs map[*eventStream]struct{}
	// last is the last baseline or state event published: a new stream
	// starts with it as its baseline, so that the state it is told is the
	// one the events that follow change.
	last    netmon.Event
	hasLast bool
	// dropped counts the events streams missed because they were cut off
	// (netmon_events_dropped_total{queue="api"}).
	dropped atomic.Uint64
}

// eventStream is one client's subscription.
type eventStream struct {
	lines  chan []byte
	cut    chan struct{} // closed when the stream fell behind
	missed uint64        // events not queued since it was cut; under the hub's mu
}

func newEventHub() *eventHub {
	enc, _ := newEncoder("json")
	return &eventHub{enc: enc, subs: map[*eventStream]struct{}{}}
}

// publish hands ev to every stream. It costs nothing beyond remembering a
// state event when nobody streams.
func (h *eventHub) publish(ev netmon.Event) {
	state := ev.Kind == netmon.EventBaseline || ev.Kind == netmon.EventState
	if !state && h.n.Load() == 0 {
		return
	}
	var line []byte
	if h.n.Load() > 0 {
		var err error
		if line, err = eventLine(h.enc, ev); err != nil {
			return // an event zap cannot encode; the log line shows the same failure
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if state {
		h.last, h.hasLast = ev, true
	}
	if line == nil && len(h.subs) > 0 {
		// A stream subscribed since the check above: it must not miss
		// this event, nor a state change its baseline predates.
		var err error
		if line, err = eventLine(h.enc, ev); err != nil {
			return
		}
	}
	for s := range h.subs {
		if s.missed > 0 {
			s.missed++
			h.dropped.Add(1)
			continue
		}
		select {
		case s.lines <- line:
		default:
			s.missed = 1
			h.dropped.Add(1)
			close(s.cut)
		}
	}
}

// subscribe starts a stream whose first line is a baseline: the last
// state published, if any (else the Monitor's own baseline is still to
// come).
func (h *eventHub) subscribe() *eventStream {
	s := &eventStream{lines: make(chan []byte, streamBuffer), cut: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.hasLast {
		ev := h.last
		ev.Kind, ev.Msg = netmon.EventBaseline, "baseline"
		if line, err := eventLine(h.enc, ev); err == nil {
			s.lines <- line
		}
	}
	h.subs[s] = struct{}{}
	h.n.Add(1)
	return s
}

// unsubscribe ends s and returns how many events it missed: those not
// queued since it was cut off, plus those queued and not sent.
func (h *eventHub) unsubscribe(s *eventStream) uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return 0
	}
	delete(h.subs, s)
	h.n.Add(-1)
	if s.missed == 0 {
		return 0
	}
	h.dropped.Add(uint64(len(s.lines)))
	return s.missed + uint64(len(s.lines))
}

// events streams the Monitor's events as JSON lines until the client goes,
// netmon stops, or the client falls streamBuffer lines behind, when a last
// line says how many it missed.
func (a *api) events(w http.ResponseWriter, r *http.Request) {
	s := a.hub.subscribe()
	defer a.hub.unsubscribe(s)
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	write := func(b []byte) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(apiWriteTimeout))
		_, err := w.Write(b)
		return err == nil
	}
	if r.Method == http.MethodHead || rc.Flush() != nil {
		return
	}
	// When the client goes or netmon stops, a write blocked on a client
	// that reads nothing ends at once, not at its deadline: shutdown never
	// waits for a stalled stream. On the way out the deadline is set
	// again, so that a client that reads gets the body's proper end.
	fired := make(chan struct{})
	stop := context.AfterFunc(r.Context(), func() {
		_ = rc.SetWriteDeadline(time.Now())
		close(fired)
	})
	defer func() {
		if !stop() {
			<-fired // it ran, or runs: after it, not before
		}
		_ = rc.SetWriteDeadline(time.Now().Add(time.Second))
	}()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-s.cut:
			n := a.hub.unsubscribe(s)
			ev := netmon.Event{Kind: netmon.EventDropped, At: time.Now(), Dropped: n,
				Msg:    fmt.Sprintf("cut off: this client fell %d events behind and missed %d", streamBuffer, n),
				Fields: []zap.Field{zap.Bool("cut_off", true)}}
			if line, err := eventLine(a.hub.enc, ev); err == nil && write(line) {
				_ = rc.Flush()
			}
			return
		case line := <-s.lines:
			if !write(line) {
				return
			}
			// Whatever else is queued goes in the same flush.
			for more := true; more; {
				select {
				case line = <-s.lines:
					if !write(line) {
						return
					}
				default:
					more = false
				}
			}
			if rc.Flush() != nil {
				return
			}
		}
	}
}
