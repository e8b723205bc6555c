package netmon

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Report tells the Monitor that a send failed with err, and returns the
// Monitor's explanation: the error's class and what the network was doing
// (down, a DHCP renewal or blip, a roam, weak signal, a failed gateway, an
// outage that just ended, the peer's problem, or unexplained).
//
// The error's class is decided first, the link's conditions second, in
// this order:
//
//  1. Before the Monitor's first read of the kernel: CauseNone.
//  2. An error the far end sent (refused, reset, a TLS alert or a record
//     that is not TLS, a certificate, a name that does not exist,
//     [classify.NotFound]): CausePeer, whatever the link does, even while
//     the state is down: the answer came back, so a path worked when the
//     send failed (the state may be down for a reason that does not
//     concern that peer: another family, a target, the data-stall
//     detector). A DHCP renewal or weak signal does not make a port closed.
//  3. While the state is down: CauseLinkDown.
//  4. The rest of the connection class (a broken pipe, a connection
//     aborted or closed under the sender, ENOBUFS) and policy refusals
//     (EACCES, EPERM): CausePeer. They concern one connection or a local
//     rule; the link's conditions never explain them.
//  5. Link-class errors (network or host unreachable, timeouts, DNS
//     failures other than NXDOMAIN): the conditions of
//     the interface they concern, first that holds: a roam, a reconnect
//     (its address came back after the link reconnected: a recent
//     outage), a DHCP blip, a DHCP renewal, a weak signal, a failed
//     gateway; then an outage that ended moments ago. A roam or reconnect
//     comes before a blip: it brings its own address churn, which a blip
//     seen at the same moment is part of.
//  6. Otherwise CauseUnexplained for the network class
//     ([classify.Class.LinkRelated]), CausePeer for the others.
//
// The interface is the uplink, the one [Status] names; for a failure that
// eBPF observed with a destination, the interface the kernel routes that
// destination through (the underlay of a tunnel), as [Explanation].Iface
// says.
//
// Network-class errors that nothing in the kernel's state explains count
// towards the data-stall detector: Options.SendErrorThreshold of them in a
// row move the state to down with reason send-errors, which closes the
// Gate, until the kernel reports a change, a send succeeds
// ([Monitor.ReportSuccessTo]; one held Do call is let through every 500 ms
// to try), the gateway's neighbour entry is confirmed reachable (when the
// verdict rested on it failing), or Options.SendErrorHold passes.
// Failures while another destination answers are that peer's own. Connection-class errors
// (refused, reset) concern one peer and never close the Gate.
//
// Report is safe for concurrent use. Without a subscriber to
// [Monitor.Events] it does not allocate unless it changes the state; with
// one, it queues a sock-error event carrying the error's text.
func (m *Monitor) Report(err error) Explanation {
	return m.report(time.Now(), classify.Classify(err), err, netip.Addr{})
}

// ReportContext is [Monitor.Report] for an error returned by an operation
// that ran under ctx: if ctx has ended, the caller gave up, and the error
// is not counted against the network.
func (m *Monitor) ReportContext(ctx context.Context, err error) Explanation {
	return m.report(time.Now(), classify.ClassifyContext(ctx, err), err, netip.Addr{})
}

// report explains err, a failure of the given class; dst is its
// destination when the sender named it (gate.Call.Dst), the zero Addr if
// not (err's own *net.OpError address wins).
func (m *Monitor) report(now time.Time, class classify.Class, err error, dst netip.Addr) Explanation {
	f := Failure{Class: class, Dst: dst}
	f.Errno, _ = classify.Errno(err)
	f.NotFound = class == classify.DNS && classify.NotFound(err)
	subscribed := m.subscribed.Load() // read once: the text exists only if the event will
	if subscribed && reportable(class) {
		f.Text = err.Error() // outside the lock: Error methods may be slow
	}
	return m.explain(now, f, err, subscribed)
}

// Failure is a failed send described by what is known about it rather
// than by a Go error: what another process reports through the local API
// of `netmon watch --socket` (its errno, class, text, destination, and who
// it is). [Monitor.ReportFailure] explains it exactly as [Monitor.Report]
// explains an error with the same class, errno and destination.
type Failure struct {
	// Class is the failure's class. When it is classify.None and Errno is
	// set, the class is the errno's.
	Class classify.Class
	// Errno is the system error number, 0 if none is known.
	Errno unix.Errno
	// NotFound reports a DNS failure in which a resolver said the name
	// does not exist (an answer came back, see [Monitor.Report]).
	NotFound bool
	// Dst is the destination the send failed towards, zero if unknown.
	// It counts towards the data-stall detector as an error's
	// *net.OpError address does.
	Dst netip.Addr
	// Text is the error's text, carried by the sock-error event.
	Text string
	// PID and Comm name the process that failed, for the sock-error
	// event; zero means this process.
	PID  int
	Comm string
}

// ReportFailure is [Monitor.Report] for a failure known by its facts
// rather than a Go error: a report from another process (the local API).
func (m *Monitor) ReportFailure(f Failure) Explanation {
	if f.Class == classify.None && f.Errno != 0 {
		f.Class = classify.Classify(f.Errno)
	}
	if f.Class != classify.DNS {
		f.NotFound = false
	}
	return m.explain(time.Now(), f, nil, m.subscribed.Load())
}

// reportable reports whether a failure of this class is a failed send the
// Monitor explains and counts against the network.
func reportable(class classify.Class) bool {
	return class != classify.None && class != classify.Canceled && class != classify.Other
}

// explain correlates f with the timeline; err, when not nil, is the
// error f was read from, whose destination is looked up only if the
// failure counts towards the data-stall detector. subscribed is whether an
// event goes out, as read when f.Text was made.
func (m *Monitor) explain(now time.Time, f Failure, err error, subscribed bool) Explanation {
	class := f.Class
	ex := Explanation{At: now, Class: class, Errno: f.Errno}
	ev := evidenceOf(class, f.Errno, class == classify.DNS && f.NotFound)
	m.mu.Lock()
	defer m.mu.Unlock()
	if now.Before(m.evalAt) {
		now = m.evalAt // never before what the state already judged
	}
	ex.Status = m.status
	if !reportable(class) {
		m.stats.Reports[class][CauseNone]++
		return ex
	}
	ex.Cause = m.correlateLocked(now, m.statusIdx, class, ev, &ex)
	dst, dstRead := f.Dst, err == nil
	if m.sock != nil {
		// The tracer may have seen this failure too: count it once.
		if !dstRead {
			if d := errDestination(err); d.IsValid() {
				dst = d
			}
			dstRead = true
		}
		pid := f.PID
		if pid == 0 {
			pid = os.Getpid()
		}
		if !m.seen.pair(seenSend{at: now, pid: uint32(pid), errno: f.Errno, dst: dst.Unmap()}) {
			m.stats.Reports[class][ex.Cause]++
		}
	} else {
		m.stats.Reports[class][ex.Cause]++
	}
	if m.stallEvidenceLocked(class, ex.Cause) {
		if !dstRead {
			if d := errDestination(err); d.IsValid() {
				dst = d
			}
		}
		m.recordFailureLocked(now, dst)
	}
	if subscribed && !m.done {
		pid, comm := f.PID, f.Comm
		if pid == 0 {
			pid, comm = os.Getpid(), selfComm()
		}
		fields := []zap.Field{zap.String("source", "report"), zap.Int("pid", pid), zap.String("comm", comm),
			zap.String("error", f.Text)}
		if f.Dst.IsValid() {
			fields = append(fields, zap.String("dst", f.Dst.String()))
		}
		exCopy := ex
		m.emitLocked(Event{Kind: EventSockErr, At: now, Iface: ex.iface(), Msg: "send failed", Fields: fields, Explanation: &exCopy})
		m.wakeLocked()
	}
	return ex
}

// evidence is what a failed send proves about the path to its peer.
type evidence uint8

const (
	// linkSide: nothing came back (unreachable, a timeout, a DNS failure
	// other than NXDOMAIN, a policy refusal); the link may explain it.
	linkSide evidence = iota
	// localSide: the sender's side failed: one connection broke after
	// the fact (a broken pipe, aborted, closed, ENOBUFS) or local policy
	// refused the send (EACCES, EPERM). The link's conditions do not
	// explain it; an outage in progress does.
	localSide
	// answered: the far end sent the error (refused, reset, TLS,
	// certificate, NXDOMAIN): a path worked when the send failed.
	answered
)

// evidenceOf sorts a failure by class, errno and whether a resolver said
// the name does not exist.
func evidenceOf(class classify.Class, errno unix.Errno, nxdomain bool) evidence {
	switch class {
	case classify.TLS, classify.Certificate, classify.Rejected:
		return answered
	case classify.DNS:
		if nxdomain {
			return answered
		}
	case classify.Connection:
		if errno == unix.ECONNREFUSED || errno == unix.ECONNRESET {
			return answered
		}
		return localSide
	case classify.Policy:
		return localSide
	}
	return linkSide
}

// correlateLocked finds the cause of a send error from the timeline, the
// error's class first and then the conditions of the interface idx (the
// uplink, or the one the failed send's destination routes through): see
// [Monitor.Report] for the order.
func (m *Monitor) correlateLocked(now time.Time, idx int, class classify.Class, ev evidence, ex *Explanation) Cause {
	f := m.ifaces[idx]
	if f != nil {
		ex.Iface = f.link.Name
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
	case ev == answered:
		return CausePeer
	case !m.status.State.CanSend():
		ex.Into = now.Sub(m.status.Since)
		return CauseLinkDown
	case ev == localSide:
		return CausePeer
	case f == nil:
	case f.wifi != nil && (recent(f.wifi.LastRoam) || now.Before(f.wifi.roamUntil)):
		// A roam (done, or under way: the hold between two APs) or a
		// reconnect moves the station, and the address
		// churn that comes with it: it explains more than a blip seen
		// at the same moment (issue 14).
		return CauseRoam
	case f.dhcp != nil && recent(f.dhcp.LastReconnect):
		ex.Into = now.Sub(f.dhcp.LastReconnect)
		return CauseRecentOutage
	case f.dhcp != nil && recent(f.dhcp.LastBlip):
		return CauseDHCPBlip
	case f.dhcp != nil && (f.dhcp.Phase == "renewing" || f.dhcp.Phase == "rebinding"):
		return CauseDHCPRenewing
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

// ReportSuccess tells the Monitor that a send succeeded, towards a
// destination it does not know: [Monitor.ReportSuccessTo] with the zero
// Addr.
func (m *Monitor) ReportSuccess() { m.ReportSuccessTo(netip.Addr{}) }

// ReportSuccessTo tells the Monitor that a send to dst succeeded (the zero
// Addr when the destination is unknown): the path works, so the data-stall
// detector forgets the failures before it and a send-errors outage ends;
// a success towards a declared target's address ends that target's own
// verdict too. Until a send to dst fails again, a known dst is live for
// Options.SendErrorWindow: failures towards other destinations while it
// answers are those peers' own, and close no Gate (two dead servers among
// three do not hold the sender whose server answers).
//
// It costs one atomic load, and writes nothing shared, unless the detector
// holds something (a count of failures or a closed Gate) or dst is given:
// [gate.Gate.Do] calls it after every send, with [gate.Call].Dst when the
// call gives one. While the detector holds nothing, a success with a
// destination costs a clock read and is remembered (the last one, updated
// at most every 100 ms per destination), so that the first failures
// elsewhere already find it live; every success is counted once failures
// are.
func (m *Monitor) ReportSuccessTo(dst netip.Addr) {
	if m.stallWord.Load()&stallBit == 0 {
		// The common case: one atomic load, nothing written, unless
		// the success names its destination (then a clock read and,
		// at most every succMarkEvery, one pointer store).
		if dst.IsValid() {
			m.markSuccess(dst.Unmap())
		}
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	if now.Before(m.evalAt) {
		now = m.evalAt
	}
	m.successLocked(now, dst.Unmap())
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
