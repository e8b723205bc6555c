package netmon

import (
	"strconv"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sys/unix"
)

// Cause is what the network was doing when a send failed: the Monitor's
// explanation of a reported error.
type Cause uint8

// Causes, from the correlation in [Monitor.Report].
const (
	// CauseNone: the error is not a failed send (nil, or the caller gave
	// up), or the Monitor has not read the network yet (state unknown).
	CauseNone Cause = iota
	// CauseLinkDown: the state was down; the outage explains the error.
	CauseLinkDown
	// CauseDHCPBlip: the address or default route vanished and returned
	// during a DHCP renewal moments ago.
	CauseDHCPBlip
	// CauseDHCPRenewing: the lease was past T1 (renewing or rebinding).
	CauseDHCPRenewing
	// CauseRoam: the station roamed to another access point moments ago.
	CauseRoam
	// CauseWeakSignal: the signal was weak or critical.
	CauseWeakSignal
	// CauseGatewayFailed: the default gateway's neighbour entry was FAILED.
	CauseGatewayFailed
	// CauseRecentOutage: the link came back moments ago; connections made
	// before or during the outage are failing now.
	CauseRecentOutage
	// CausePeer: a connection-class error (refused, reset, ...) while the
	// network looked fine: one peer's problem, not the link's.
	CausePeer
	// CauseUnexplained: the kernel state explains nothing. Repeated
	// network-class errors of this kind close the Gate (send-errors).
	CauseUnexplained

	numCauses
)

var causeNames = [numCauses]string{
	CauseNone:          "none",
	CauseLinkDown:      "link-down",
	CauseDHCPBlip:      "dhcp-blip",
	CauseDHCPRenewing:  "dhcp-renewing",
	CauseRoam:          "roam",
	CauseWeakSignal:    "weak-signal",
	CauseGatewayFailed: "gateway-failed",
	CauseRecentOutage:  "recent-outage",
	CausePeer:          "peer",
	CauseUnexplained:   "unexplained",
}

// String returns the cause's stable name, e.g. "dhcp-blip".
func (c Cause) String() string {
	if c < numCauses {
		return causeNames[c]
	}
	return "invalid"
}

// Explanation is the Monitor's account of one failed send: the error's
// class and errno, and what the network was doing at that moment.
type Explanation struct {
	At    time.Time
	Class classify.Class
	// Errno is the system error number in the error's chain, 0 if none.
	Errno unix.Errno
	Cause Cause
	// Status is the Monitor's state when the error was reported.
	Status Status
	// Signal is the uplink's (or the lost link's) signal in dBm; 0 when
	// unknown or not wireless.
	Signal int
	// DHCPPhase is the interface's lease phase ("" when unknown).
	DHCPPhase string
	// Into is how long the current outage (or, for a recent outage, the
	// time since it ended) had lasted when the error was reported.
	Into time.Duration
}

// String renders the explanation as one line, e.g.
// "ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm".
func (e Explanation) String() string {
	b := make([]byte, 0, 96)
	b = e.appendText(b)
	return string(b)
}

func (e Explanation) appendText(b []byte) []byte {
	if e.Errno != 0 {
		b = append(b, unix.ErrnoName(e.Errno)...)
	} else {
		b = append(b, e.Class.String()...)
		b = append(b, " error"...)
	}
	iface := e.Status.Iface
	switch e.Cause {
	case CauseLinkDown:
		b = append(b, ' ')
		b = appendDur(b, e.Into)
		b = append(b, " into an outage"...)
		b = appendOf(b, iface)
		b = append(b, " ("...)
		b = append(b, e.Status.Reason...)
		b = append(b, ')')
	case CauseDHCPBlip:
		b = append(b, " during a DHCP renewal blip"...)
		b = appendOf(b, iface)
	case CauseDHCPRenewing:
		b = append(b, " during a DHCP renewal"...)
		b = appendOf(b, iface)
	case CauseRoam:
		b = append(b, " just after a roam"...)
		b = appendOf(b, iface)
	case CauseWeakSignal:
		b = append(b, " at a weak signal"...)
		b = appendOf(b, iface)
	case CauseGatewayFailed:
		b = append(b, " while the gateway"...)
		b = appendOf(b, iface)
		b = append(b, " did not answer ARP/ND"...)
	case CauseRecentOutage:
		b = append(b, ' ')
		b = appendDur(b, e.Into)
		b = append(b, " after an outage"...)
		b = appendOf(b, iface)
	case CausePeer:
		b = append(b, " from the peer while "...)
		if iface == "" {
			iface = "the network"
		}
		b = append(b, iface...)
		b = append(b, " was "...)
		b = append(b, e.Status.State.String()...)
	case CauseUnexplained:
		b = append(b, " unexplained by link state"...)
		b = appendOf(b, iface)
	}
	if e.Signal != 0 {
		b = append(b, " at "...)
		b = strconv.AppendInt(b, int64(e.Signal), 10)
		b = append(b, " dBm"...)
	}
	return b
}

func appendOf(b []byte, iface string) []byte {
	if iface == "" {
		return b
	}
	b = append(b, " of "...)
	return append(b, iface...)
}

// appendDur appends d rounded to 0.1 s (or 1 ms below a second) without
// allocating.
func appendDur(b []byte, d time.Duration) []byte {
	if d < time.Second {
		b = strconv.AppendInt(b, int64(d/time.Millisecond), 10)
		return append(b, "ms"...)
	}
	tenths := int64(d / (100 * time.Millisecond))
	b = strconv.AppendInt(b, tenths/10, 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, tenths%10, 10)
	return append(b, 's')
}

// MarshalLogObject writes the explanation's fields for a zap log line.
func (e Explanation) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("class", e.Class.String())
	if e.Errno != 0 {
		enc.AddString("errno", unix.ErrnoName(e.Errno))
	}
	enc.AddString("cause", e.Cause.String())
	enc.AddString("explanation", e.String())
	if e.Signal != 0 {
		enc.AddInt("signal_dbm", e.Signal)
	}
	if e.DHCPPhase != "" {
		enc.AddString("dhcp_phase", e.DHCPPhase)
	}
	return nil
}
