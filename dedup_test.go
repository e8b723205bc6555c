package netmon

import (
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestSeenSendsPair: a report and a traced failure of the same process,
// errno and destination pair once, in either order and within seenWindow
// only; another destination, errno or process does not pair; a storm of
// traced failures of other processes does not push out a reporter's.
func TestSeenSendsPair(t *testing.T) {
	t0 := time.Now()
	dst := netip.MustParseAddr("192.0.2.1")
	rep := func(at time.Duration, pid uint32, errno unix.Errno, d netip.Addr) seenSend {
		return seenSend{at: t0.Add(at), pid: pid, errno: errno, dst: d}
	}
	tr := func(at time.Duration, pid uint32, errno unix.Errno, d netip.Addr) seenSend {
		s := rep(at, pid, errno, d)
		s.traced = true
		return s
	}
	tests := []struct {
		name  string
		sends []seenSend
		want  []bool // pair's answer for each
	}{
		{"report first", []seenSend{rep(0, 7, unix.ENETUNREACH, dst), tr(time.Millisecond, 7, unix.ENETUNREACH, dst)}, []bool{false, true}},
		{"traced first", []seenSend{tr(0, 7, unix.ENETUNREACH, dst), rep(time.Millisecond, 7, unix.ENETUNREACH, dst)}, []bool{false, true}},
		{"pairs once", []seenSend{rep(0, 7, unix.ECONNREFUSED, dst), tr(0, 7, unix.ECONNREFUSED, dst), tr(0, 7, unix.ECONNREFUSED, dst)}, []bool{false, true, false}},
		{"traced without destination", []seenSend{rep(0, 7, unix.EPIPE, dst), tr(0, 7, unix.EPIPE, netip.Addr{})}, []bool{false, true}},
		{"other destination", []seenSend{rep(0, 7, unix.ENETUNREACH, dst), tr(0, 7, unix.ENETUNREACH, netip.MustParseAddr("192.0.2.2"))}, []bool{false, false}},
		{"other errno", []seenSend{rep(0, 7, unix.ENETUNREACH, dst), tr(0, 7, unix.EHOSTUNREACH, dst)}, []bool{false, false}},
		{"other process", []seenSend{rep(0, 7, unix.ENETUNREACH, dst), tr(0, 8, unix.ENETUNREACH, dst)}, []bool{false, false}},
		{"too late", []seenSend{rep(0, 7, unix.ENETUNREACH, dst), tr(2*seenWindow, 7, unix.ENETUNREACH, dst)}, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var k seenSends
			for i, s := range tt.sends {
				if got := k.pair(s); got != tt.want[i] {
					t.Errorf("send %d (traced %v): pair = %v, want %v", i, s.traced, got, tt.want[i])
				}
			}
		})
	}
	t.Run("storm elsewhere", func(t *testing.T) {
		var k seenSends
		k.pair(rep(0, 7, unix.ENETUNREACH, dst))               // process 7 reports: a reporter
		k.pair(tr(time.Millisecond, 7, unix.ENETUNREACH, dst)) // paired
		k.pair(tr(2*time.Millisecond, 7, unix.ENETUNREACH, dst))
		for i := range 10 * (seenSize + seenOthers) {
			k.pair(tr(3*time.Millisecond, uint32(1000+i), unix.ECONNREFUSED, dst))
		}
		if !k.pair(rep(4*time.Millisecond, 7, unix.ENETUNREACH, dst)) {
			t.Error("a storm of other processes' failures pushed out the reporter's traced failure")
		}
		if len(k.mine) > seenSize || len(k.others) > seenOthers {
			t.Errorf("kept %d and %d failures, want at most %d and %d", len(k.mine), len(k.others), seenSize, seenOthers)
		}
	})
}
