package netmon

import (
	"encoding/json"
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
	// CausePeer: the peer's side failed, whatever the link's conditions:
	// the peer (or a resolver) answered with the error (refused, reset, a
	// TLS or certificate error, a name that does not exist), even while
	// the state was down; or, while it was up, another connection-class
	// error (a broken pipe, ...), a policy refusal, or a timeout that
	// nothing in the link's state explains.
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
	// Iface is the interface the error was explained against: the one the
	// kernel routes the failed send's destination through (the underlay
	// of a tunnel) when eBPF observed it with a destination, else the
	// uplink (Status.Iface). "" when none is known.
	Iface string
	// Signal is that interface's signal in dBm; 0 when unknown or not
	// wireless.
	Signal int
	// DHCPPhase is that interface's lease phase ("" when unknown).
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
	iface := e.iface()
	switch e.Cause {
	case CauseLinkDown:
		b = append(b, ' ')
		b = appendDur(b, e.Into)
		b = append(b, " into an outage"...)
		b = appendOf(b, e.Status.Iface)
		b = append(b, " ("...)
		b = append(b, e.Status.Reason...)
		b = append(b, ')')
		b = e.appendVia(b)
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
		overall := e.Status.Iface
		if overall == "" {
			overall = "the network"
		}
		b = append(b, overall...)
		b = append(b, " was "...)
		b = append(b, e.Status.State.String()...)
		b = e.appendVia(b)
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

// iface is the interface the explanation concerns: Iface, else the
// uplink.
func (e Explanation) iface() string {
	if e.Iface != "" {
		return e.Iface
	}
	return e.Status.Iface
}

// appendVia names the interface the failed send used when it is not the
// one the overall state names.
func (e Explanation) appendVia(b []byte) []byte {
	if e.Iface == "" || e.Iface == e.Status.Iface {
		return b
	}
	b = append(b, " via "...)
	return append(b, e.Iface...)
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

// MarshalJSON encodes the explanation as the local API's POST /v1/report
// answers: class, errno (its name; left out when none), cause, the
// explanation's text, the interface with its signal and lease phase
// (each left out when unknown), the state and reason then, how long the
// outage had lasted (into_seconds, left out when zero), whether the class
// is a connection error and retryable ([classify.Class]), and when.
func (e Explanation) MarshalJSON() ([]byte, error) {
	v := struct {
		Class           string    `json:"class"`
		Errno           string    `json:"errno,omitempty"`
		Cause           string    `json:"cause"`
		Explanation     string    `json:"explanation"`
		Iface           string    `json:"iface,omitempty"`
		Signal          int       `json:"signal_dbm,omitempty"`
		DHCPPhase       string    `json:"dhcp_phase,omitempty"`
		State           State     `json:"state"`
		Reason          Reason    `json:"reason"`
		IntoSec         float64   `json:"into_seconds,omitempty"`
		ConnectionError bool      `json:"connection_error"`
		Retryable       bool      `json:"retryable"`
		At              time.Time `json:"at"`
	}{
		Class: e.Class.String(), Cause: e.Cause.String(), Explanation: e.String(), Iface: e.iface(),
		Signal: e.Signal, DHCPPhase: e.DHCPPhase, State: e.Status.State, Reason: e.Status.Reason,
		IntoSec: e.Into.Seconds(), ConnectionError: e.Class.IsConnectionError(), Retryable: e.Class.Retryable(), At: e.At,
	}
	if e.Errno != 0 {
		v.Errno = unix.ErrnoName(e.Errno)
	}
	return json.Marshal(v)
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
