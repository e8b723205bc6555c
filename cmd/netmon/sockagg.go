package main

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// defaultSockLogInterval is --sockerr-log-interval's default: a failure
// that repeats is summarised at most this often, per process, errno and
// destination. journald's default rate limit (10,000 lines per 30 s per
// service) is then out of reach of any storm: at most sockAggKeys + 1
// summary lines per interval.
const defaultSockLogInterval = 10 * time.Second

// sockAggKeys bounds the aggregation table: how many (process, errno,
// destination) keys are followed apart within an interval. Failures of
// further keys are counted together and summarised in one line.
const sockAggKeys = 256

// sockKey is what makes failures the same for logging: the process name
// (a reconnect loop that forks a new process each time is one program),
// the errno (or the class when there is none) and the destination.
type sockKey struct {
	comm, errno, dst string
}

// sockCount is a key's repeats since its last line.
type sockCount struct {
	n      uint64 // repeats not logged yet
	pid    int64  // the last repeat's process
	iface  string // and the interface it was explained against
	cause  string
	source string
}

// sockAgg decides which sockerr events `netmon watch` logs: the first of
// a key at once, its repeats within the interval as one summary event at
// the end of it (see flush). Other events pass. It is used by one
// goroutine.
type sockAgg struct {
	interval time.Duration
	since    time.Time // when the interval began: the last flush
	max      int
	keys     map[sockKey]*sockCount
	overflow sockCount // failures of keys beyond max
}

func newSockAgg(interval time.Duration, max int) *sockAgg {
	return &sockAgg{interval: interval, since: time.Now(), max: max, keys: map[sockKey]*sockCount{}}
}

// add reports whether ev is to be logged now; a repeat is counted instead.
// Only failed sends of a known process are aggregated: the kernel's
// no-route line (source "kernel") is already one line per window.
func (a *sockAgg) add(ev netmon.Event) bool {
	if ev.Kind != netmon.EventSockErr {
		return true
	}
	var k sockKey
	var pid int64
	var source string
	for _, f := range ev.Fields {
		switch f.Key {
		case "comm":
			k.comm = f.String
		case "dst":
			k.dst = f.String
		case "pid":
			pid = f.Integer
		case "source":
			source = f.String
		}
	}
	if source == "kernel" || ev.Explanation == nil {
		return true
	}
	k.errno = ev.Explanation.Class.String()
	if ev.Explanation.Errno != 0 {
		k.errno = unix.ErrnoName(ev.Explanation.Errno)
	}
	c := a.keys[k]
	if c == nil {
		if len(a.keys) < a.max {
			a.keys[k] = &sockCount{}
			return true
		}
		c = &a.overflow
	}
	c.n++
	c.pid, c.iface, c.cause, c.source = pid, ev.Iface, ev.Explanation.Cause.String(), source
	return false
}

// flush returns the summary events of the interval that ends at now, one
// per key that repeated, sorted by key, then one for the keys beyond the
// table's bound; it forgets the keys that did not repeat, so that their
// next failure is logged at once again. With final (watch is stopping)
// it forgets every key.
func (a *sockAgg) flush(now time.Time, final bool) []netmon.Event {
	var out []netmon.Event
	// The interval that ends: a whole one, or the part of one before the
	// final flush.
	span := min(now.Sub(a.since), a.interval).Round(time.Millisecond)
	a.since = now
	for _, k := range slices.SortedFunc(maps.Keys(a.keys), cmpKeys) {
		c := a.keys[k]
		if c.n == 0 || final {
			delete(a.keys, k)
		}
		if c.n == 0 {
			continue
		}
		msg := fmt.Sprintf("%s: %d more %s", k.comm, c.n, k.errno)
		if k.dst != "" {
			msg += " to " + k.dst
		}
		msg += " in " + span.String()
		out = append(out, a.summary(now, span, msg, c, zap.String("comm", k.comm), zap.String("errno", k.errno), zap.String("dst", k.dst)))
		*c = sockCount{}
	}
	if c := &a.overflow; c.n > 0 {
		msg := fmt.Sprintf("%d more failures of further processes or destinations in %v (more than %d logged apart)", c.n, span, a.max)
		out = append(out, a.summary(now, span, msg, c))
		*c = sockCount{}
	}
	return out
}

// summary is a summary line: event sockerr, source "summary", the key's
// comm, errno and dst, count, the interval it covers (shorter than
// --sockerr-log-interval in the last line before watch stops), the last
// repeat's pid, cause and the source it came from.
func (a *sockAgg) summary(now time.Time, span time.Duration, msg string, c *sockCount, key ...zapcore.Field) netmon.Event {
	fields := append([]zapcore.Field{zap.String("source", "summary")}, key...)
	fields = append(fields, zap.Uint64("count", c.n), zap.Duration("interval", span),
		zap.Int64("last_pid", c.pid), zap.String("last_cause", c.cause), zap.String("of", c.source))
	return netmon.Event{Kind: netmon.EventSockErr, At: now, Iface: c.iface, Msg: msg, Fields: fields}
}

func cmpKeys(x, y sockKey) int {
	return cmp.Or(strings.Compare(x.comm, y.comm), strings.Compare(x.errno, y.errno), strings.Compare(x.dst, y.dst))
}
