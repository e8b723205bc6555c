package netmon

import (
	"net/netip"
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
const (
	seenWindow = time.Second
	seenSize   = 64 // failures kept at most: the oldest goes first
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
	list []seenSend
}

// pair looks for an unpaired failure of the other source that matches s:
// found, it is removed and pair reports true (s is the same failure, not
// to be counted again); else s is kept and pair reports false.
func (k *seenSends) pair(s seenSend) bool {
	// Forget what is too old to pair with s or anything after it.
	i := 0
	for i < len(k.list) && s.at.Sub(k.list[i].at) > seenWindow {
		i++
	}
	k.list = k.list[i:]
	for j, o := range k.list {
		if o.traced == s.traced || o.pid != s.pid || o.errno != s.errno {
			continue
		}
		if d := s.at.Sub(o.at); d > seenWindow || d < -seenWindow {
			continue
		}
		if o.dst.IsValid() && s.dst.IsValid() && o.dst != s.dst {
			continue
		}
		k.list = append(k.list[:j], k.list[j+1:]...)
		return true
	}
	if len(k.list) >= seenSize {
		k.list = k.list[1:]
	}
	k.list = append(k.list, s)
	return false
}
