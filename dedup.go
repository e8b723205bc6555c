package netmon

import (
	"net/netip"
	"slices"
	"time"

	"golang.org/x/sys/unix"
)

// A failed send that a sender reports ([Monitor.Report], ReportFailure)
// while the eBPF tracer watches is seen twice: once reported, once traced.
// seenSends pairs the two, so that Stats.Reports (the metric
// netmon_send_errors_total) counts it once: a report and a traced failure
// of the same process, errno and destination within seenWindow of each
// other are one failure, whichever arrives first. A traced failure
// without a destination (a send on a connected socket) pairs with a
// report of any destination. Each one pairs at most once.
//
// The failures of processes that report are kept apart from those of
// the rest of the machine, so that a storm of failures elsewhere cannot
// push a reporter's traced failure out before its report arrives.
const (
	seenWindow    = time.Second
	seenSize      = 256 // reports and reporters' traced failures kept at most
	seenOthers    = 64  // traced failures of other processes kept at most
	seenReporters = 256 // processes that reported, remembered at most
	reporterTTL   = time.Minute
)

// seenSend is one failure kept for pairing.
type seenSend struct {
	at     time.Time
	pid    uint32
	errno  unix.Errno
	dst    netip.Addr
	traced bool // seen by eBPF (else reported)
}

// seenSends keeps the recent failures not yet paired, oldest first. The
// zero value is ready to use.
type seenSends struct {
	mine      []seenSend           // reports, and the traced failures of reporters
	others    []seenSend           // traced failures of processes that did not report
	reporters map[uint32]time.Time // pid -> its last report
}

// pair looks for an unpaired failure of the other source that matches s:
// found, it is removed and pair reports true (s is the same failure, not
// to be counted again); else s is kept and pair reports false.
func (k *seenSends) pair(s seenSend) bool {
	k.mine, k.others = expire(k.mine, s.at), expire(k.others, s.at)
	if !s.traced {
		k.noteReporter(s.pid, s.at)
		if k.take(&k.mine, s) || k.take(&k.others, s) {
			return true
		}
		k.mine = keep(k.mine, s, seenSize)
		return false
	}
	if _, ok := k.reporters[s.pid]; !ok {
		// No report of this process waits: it may still come.
		k.others = keep(k.others, s, seenOthers)
		return false
	}
	if k.take(&k.mine, s) {
		return true
	}
	k.mine = keep(k.mine, s, seenSize)
	return false
}

// take removes from *list the first failure of the other source that
// matches s, and reports whether there was one.
func (k *seenSends) take(list *[]seenSend, s seenSend) bool {
	i := slices.IndexFunc(*list, func(o seenSend) bool {
		if o.traced == s.traced || o.pid != s.pid || o.errno != s.errno {
			return false
		}
		if d := s.at.Sub(o.at); d > seenWindow || d < -seenWindow {
			return false
		}
		return !o.dst.IsValid() || !s.dst.IsValid() || o.dst == s.dst
	})
	if i < 0 {
		return false
	}
	*list = slices.Delete(*list, i, i+1)
	return true
}

// noteReporter remembers that pid reported at t; when seenReporters are
// remembered already, those silent for reporterTTL are forgotten first,
// and if none is, pid is not remembered (its traced failures then wait
// with the others').
func (k *seenSends) noteReporter(pid uint32, t time.Time) {
	if k.reporters == nil {
		k.reporters = make(map[uint32]time.Time)
	}
	if _, ok := k.reporters[pid]; !ok && len(k.reporters) >= seenReporters {
		for p, at := range k.reporters {
			if t.Sub(at) > reporterTTL {
				delete(k.reporters, p)
			}
		}
		if len(k.reporters) >= seenReporters {
			return
		}
	}
	k.reporters[pid] = t
}

// expire drops the failures too old to pair with one seen at t or later.
func expire(list []seenSend, t time.Time) []seenSend {
	i := 0
	for i < len(list) && t.Sub(list[i].at) > seenWindow {
		i++
	}
	return list[i:]
}

// keep appends s to list, dropping the oldest beyond max (by slicing:
// append copies the list to a new array once it reaches the end of its
// own, so the cost stays constant per failure).
func keep(list []seenSend, s seenSend, max int) []seenSend {
	if len(list) >= max {
		list = list[1:]
	}
	return append(list, s)
}
