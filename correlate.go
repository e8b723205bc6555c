package netmon

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap"
)

// Report tells the Monitor that a send failed with err, and returns the
// Monitor's explanation: the error's class and what the network was doing
// (down, a DHCP renewal or blip, a roam, weak signal, a failed gateway, an
// outage that just ended, the peer's problem, or unexplained).
//
// Network-class errors that nothing in the kernel's state explains count
// towards the data-stall detector: Options.SendErrorThreshold of them in a
// row move the state to down with reason send-errors, which closes the
// Gate, until the kernel reports a change, a send succeeds
// ([Monitor.ReportSuccess]), the gateway's neighbour entry is confirmed
// reachable, or Options.SendErrorHold passes. Connection-class errors
// (refused, reset) concern one peer and never close the Gate.
//
// Report is safe for concurrent use. Without a subscriber to
// [Monitor.Events] it does not allocate unless it changes the state; with
// one, it queues a sock-error event carrying the error's text.
func (m *Monitor) Report(err error) Explanation {
	return m.report(time.Now(), classify.Classify(err), err)
}

// ReportContext is [Monitor.Report] for an error returned by an operation
// that ran under ctx: if ctx has ended, the caller gave up, and the error
// is not counted against the network.
func (m *Monitor) ReportContext(ctx context.Context, err error) Explanation {
	return m.report(time.Now(), classify.ClassifyContext(ctx, err), err)
}

func (m *Monitor) report(now time.Time, class classify.Class, err error) Explanation {
	ex := Explanation{At: now, Class: class}
	ex.Errno, _ = classify.Errno(err)
	var text string
	subscribed := m.subscribed.Load() // read once: the text exists only if the event will
	if subscribed && class != classify.None && class != classify.Canceled && class != classify.Other {
		text = err.Error() // outside the lock: Error methods may be slow
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	ex.Status = m.status
	if class == classify.None || class == classify.Canceled || class == classify.Other {
		m.stats.Reports[class][CauseNone]++
		return ex
	}
	ex.Cause = m.correlateLocked(now, class, &ex)
	m.stats.Reports[class][ex.Cause]++
	if m.stallEvidenceLocked(class, ex.Cause) {
		m.recordFailureLocked(now, errDestination(err))
	}
	if subscribed && !m.done {
		exCopy := ex
		m.emitLocked(Event{Kind: EventSockErr, At: now, Iface: ex.Status.Iface, Msg: "send failed",
			Fields: []zap.Field{zap.String("source", "report"), zap.Int("pid", os.Getpid()), zap.String("comm", selfComm()),
				zap.String("error", text)}, Explanation: &exCopy})
		m.wakeLocked()
	}
	return ex
}

// correlateLocked finds the cause of a send error from the timeline.
func (m *Monitor) correlateLocked(now time.Time, class classify.Class, ex *Explanation) Cause {
	f := m.ifaces[m.statusIdx]
	if f != nil {
		if f.wifi != nil {
			ex.Signal = f.wifi.SignalDBm
		}
		if f.dhcp != nil {
			ex.DHCPPhase = f.dhcp.Phase
		}
	}
	recent := func(t time.Time) bool { return !t.IsZero() && now.Sub(t) < m.opts.Recent }
	switch {
	case m.status.State == Unknown:
		// Before the first read of the kernel nothing is known:
		// claiming an outage would mislead.
		return CauseNone
	case !m.status.State.CanSend():
		ex.Into = now.Sub(m.status.Since)
		return CauseLinkDown
	case f == nil:
	case f.dhcp != nil && recent(f.dhcp.LastBlip):
		return CauseDHCPBlip
	case f.dhcp != nil && (f.dhcp.Phase == "renewing" || f.dhcp.Phase == "rebinding"):
		return CauseDHCPRenewing
	case f.wifi != nil && recent(f.wifi.LastRoam):
		return CauseRoam
	case f.wifi.weak():
		return CauseWeakSignal
	case f.gatewayFailed():
		return CauseGatewayFailed
	}
	if recent(m.lastUpAt) {
		ex.Into = now.Sub(m.lastUpAt)
		return CauseRecentOutage
	}
	if !stallCounts(class) {
		return CausePeer
	}
	return CauseUnexplained
}

// ReportSuccess tells the Monitor that a send succeeded: the path works,
// so the data-stall detector resets and a send-errors outage ends.
func (m *Monitor) ReportSuccess() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.stats.Successes++
	if !m.stallActive() {
		return
	}
	m.resetStallLocked()
	m.evaluateLocked(time.Now())
}

// selfComm is this process's name as the kernel knows it (/proc/self/comm,
// what eBPF reports as comm), so that reported and observed failures of the
// same process read alike.
var selfComm = sync.OnceValue(func() string {
	if b, err := os.ReadFile("/proc/self/comm"); err == nil {
		return strings.TrimSpace(string(b))
	}
	return filepath.Base(os.Args[0])
})
