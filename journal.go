package netmon

import (
	"time"

	"go.uber.org/zap/zapcore"
)

// Flap is one outage: from the moment the state left up/degraded to the
// moment it returned.
type Flap struct {
	// Start is when the state left up or degraded.
	Start time.Time `json:"start"`
	// End is when the state became up or degraded again. That happens only
	// once the path has stayed usable for [Options].Stabilize, so End
	// includes the wait.
	End      time.Time     `json:"end"`
	Duration time.Duration `json:"duration_ns"`     // End - Start
	Iface    string        `json:"iface,omitempty"` // the interface the outage began on ([Status].Iface)
	// Cause is the reason the outage began with (carrier-lost,
	// wifi-disconnected, lease-expired, no-default-route, send-errors, ...).
	Cause Reason `json:"cause"`
	// Detail adds what the cause alone does not say: "802.11 reason N"
	// when Iface had lost its Wi-Fi association with reason code N as the
	// outage began, else "".
	Detail string `json:"detail,omitempty"`
	// SignalBefore and BSSIDBefore are the signal (dBm, the driver's
	// average when known) and access point of Iface when the outage began;
	// SignalAfter and BSSIDAfter those of the interface that carries
	// traffic when it ended, which may be another one. They are 0 and ""
	// for an interface wifiwatch does not report (wired, or Wi-Fi not
	// watched).
	SignalBefore int    `json:"signal_before_dbm,omitempty"`
	SignalAfter  int    `json:"signal_after_dbm,omitempty"`
	BSSIDBefore  string `json:"bssid_before,omitempty"`
	BSSIDAfter   string `json:"bssid_after,omitempty"`
	// Stabilize is the stabilisation window the return waited out before
	// End: Options.Stabilize, or more when the link had been bouncing
	// (flap damping); 0 when stabilisation is off.
	Stabilize time.Duration `json:"stabilize_ns,omitempty"`
}

// MarshalLogObject writes the flap's fields for a zap log line.
func (f Flap) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("cause", string(f.Cause))
	enc.AddDuration("duration", f.Duration)
	enc.AddTime("start", f.Start)
	if f.Detail != "" {
		enc.AddString("detail", f.Detail)
	}
	if f.SignalBefore != 0 {
		enc.AddInt("signal_before_dbm", f.SignalBefore)
	}
	if f.SignalAfter != 0 {
		enc.AddInt("signal_after_dbm", f.SignalAfter)
	}
	if f.BSSIDBefore != "" {
		enc.AddString("bssid_before", f.BSSIDBefore)
	}
	if f.BSSIDAfter != "" {
		enc.AddString("bssid_after", f.BSSIDAfter)
	}
	if f.Stabilize != 0 {
		enc.AddDuration("stabilize", f.Stabilize)
	}
	return nil
}

// journal keeps the last flaps in a ring, oldest first when listed. It is
// guarded by the Monitor's mutex.
type journal struct {
	ring  []Flap
	next  int // index the next flap is written to
	full  bool
	total int           // flaps ever recorded
	down  time.Duration // total down time of all recorded flaps
}

func newJournal(n int) journal { return journal{ring: make([]Flap, n)} }

func (j *journal) add(f Flap) {
	j.total++
	j.down += f.Duration
	if len(j.ring) == 0 {
		return
	}
	j.ring[j.next] = f
	j.next++
	if j.next == len(j.ring) {
		j.next, j.full = 0, true
	}
}

// list returns the kept flaps, oldest first.
func (j *journal) list() []Flap {
	if !j.full {
		return append([]Flap(nil), j.ring[:j.next]...)
	}
	out := make([]Flap, 0, len(j.ring))
	out = append(out, j.ring[j.next:]...)
	return append(out, j.ring[:j.next]...)
}

// last returns the most recent flap.
func (j *journal) last() (Flap, bool) {
	if j.next == 0 && !j.full {
		return Flap{}, false
	}
	i := j.next - 1
	if i < 0 {
		i = len(j.ring) - 1
	}
	return j.ring[i], true
}

// since counts the kept flaps that ended at or after t. Flaps are added as
// they end, so it walks back from the newest and stops at the first older
// one: the cost is the flaps in the window, not the journal, and nothing
// is copied.
func (j *journal) since(t time.Time) int {
	n, kept := 0, j.next
	if j.full {
		kept = len(j.ring)
	}
	for k := 1; k <= kept; k++ {
		i := j.next - k
		if i < 0 {
			i += len(j.ring)
		}
		if j.ring[i].End.Before(t) {
			break
		}
		n++
	}
	return n
}
