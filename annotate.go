package netmon

import (
	"strconv"
	"time"
)

// Annotate wraps err with the network's state for an error report. The
// message is one line, even for a joined error, e.g.
//
//	send telemetry: connect: network is unreachable [netmon: down carrier-lost wlan0 -84 dBm 1.2s ago]
//
// where "1.2s ago" is when the state began. errors.Is and errors.As still
// reach the original error, and errors.As finds the *[AnnotatedError] with
// the full [Snapshot]. A nil err stays nil.
func (m *Monitor) Annotate(err error) error {
	if err == nil {
		return nil
	}
	return &AnnotatedError{Err: err, Snapshot: m.Snapshot()}
}

// AnnotatedError is an error with the network's state when it happened.
type AnnotatedError struct {
	Err      error
	Snapshot Snapshot
}

// Error returns the original message followed by a bracketed summary, on
// one line: the line breaks of a multi-line message (errors.Join puts one
// between its errors) become "; ", so a log line or a crash report's
// summary stays whole.
func (e *AnnotatedError) Error() string {
	msg := e.Err.Error()
	b := make([]byte, 0, len(msg)+96)
	for i := 0; i < len(msg); i++ {
		switch c := msg[i]; c {
		case '\n':
			b = append(b, "; "...)
		case '\r':
		default:
			b = append(b, c)
		}
	}
	b = append(b, " [netmon: "...)
	b = e.Snapshot.appendSummary(b)
	b = append(b, ']')
	return string(b)
}

// Unwrap returns the original error.
func (e *AnnotatedError) Unwrap() error { return e.Err }

// appendSummary appends "down carrier-lost wlan0 -84 dBm 1.2s ago".
func (s Snapshot) appendSummary(b []byte) []byte {
	b = append(b, s.State.String()...)
	if s.Reason != "" {
		b = append(b, ' ')
		b = append(b, s.Reason...)
	}
	if s.Iface != "" {
		b = append(b, ' ')
		b = append(b, s.Iface...)
	}
	if s.Target != "" {
		b = append(b, " target "...)
		b = append(b, s.Target...)
	}
	for _, is := range s.Interfaces {
		if is.Name != s.Iface {
			continue
		}
		if is.Wifi != nil && is.Wifi.SignalDBm != 0 {
			b = append(b, ' ')
			b = strconv.AppendInt(b, int64(is.Wifi.SignalDBm), 10)
			b = append(b, " dBm"...)
		}
		if is.DHCP != nil && is.DHCP.Phase != "" && is.DHCP.Phase != "static" {
			b = append(b, " dhcp "...)
			b = append(b, is.DHCP.Phase...)
		}
	}
	if !s.Since.IsZero() {
		b = append(b, ' ')
		b = appendDur(b, s.Time.Sub(s.Since).Round(100*time.Millisecond))
		b = append(b, " ago"...)
	}
	return b
}

// String returns the one-line summary Annotate uses.
func (s Snapshot) String() string { return string(s.appendSummary(nil)) }
