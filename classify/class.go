package classify

// Class is what kind of failure an error reports. The zero value is
// [None], the class of a nil error.
type Class uint8

// The classes, from the most benign to the most specific. The order is the
// order of [Class.String]'s table; it carries no other meaning.
const (
	// None is the class of a nil error.
	None Class = iota
	// Other is any error that is not a network failure: file not found,
	// address already in use, a malformed request, an unknown type.
	Other
	// Canceled means the caller gave up: context.Canceled, or (with
	// [ClassifyContext]) any error returned after the caller's own context
	// ended. It is never a connection error.
	Canceled
	// Connection means one connection to one peer failed: refused, reset,
	// aborted, broken pipe, shut down, not connected, an end of stream
	// where a reply was due (io.EOF, io.ErrUnexpectedEOF), a connection
	// closed under the sender (net.ErrClosed), ENOBUFS or EPROTO. The local
	// network may be fine; another peer may work.
	Connection
	// Network means the local path is gone: ENETUNREACH, ENETDOWN,
	// ENETRESET, ENONET, EHOSTUNREACH, EHOSTDOWN, ENOLINK, EADDRNOTAVAIL,
	// or a DNS failure whose text says the network or host is unreachable.
	// It is the class that correlates with link, route and lease changes.
	Network
	// DNS means name resolution failed for another reason: no such host,
	// a resolver timeout, a misbehaving server.
	DNS
	// Timeout means an operation ran out of time: an I/O deadline, a dial
	// timeout, ETIMEDOUT (the kernel gave up on the connection), EAGAIN
	// from a socket timeout, or context.DeadlineExceeded when no context
	// was given to tell it apart from the caller's own deadline.
	Timeout
	// TLS means the TLS session failed below the certificate level: a
	// record that is not TLS (often a captive portal answering in plain
	// text), an alert from either side, an ECH rejection.
	TLS
	// Certificate means the peer's certificate was not accepted: unknown
	// authority, wrong host name, expired or not yet valid (a robot whose
	// clock is not set after boot), no system roots.
	Certificate
	// Policy means local policy refused the send: EACCES or EPERM from
	// connect or sendto (a prohibit route, a firewall rule, a broadcast
	// without SO_BROADCAST). The link is fine; resending will not help
	// until the policy changes.
	Policy
	// Rejected means the peer refused this client for good at the
	// protocol level: a TLS alert for the protocol version, insufficient
	// security, a handshake failure (no common cipher suite), a missing
	// or unsupported extension, no common application protocol (ALPN),
	// an unrecognised server name or access denied. Resending changes
	// nothing until one side's configuration does.
	Rejected

	numClasses
)

var classNames = [numClasses]string{
	None:        "none",
	Other:       "other",
	Canceled:    "canceled",
	Connection:  "connection",
	Network:     "network",
	DNS:         "dns",
	Timeout:     "timeout",
	TLS:         "tls",
	Certificate: "certificate",
	Policy:      "policy",
	Rejected:    "rejected",
}

// String returns the class's lower-case name, e.g. "network". These names
// are stable: logs and metrics labels use them.
func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return "invalid"
}

// IsConnectionError reports whether the class is one the seed's
// is_connection_err accepts, corrected as the package documentation says:
// Connection, Network, DNS, Timeout and TLS. These are the failures that
// resending after the path is back may cure, the question the seed's
// function answers for its sender; Certificate and Rejected are not among
// them (a certificate the client does not trust, a version the server
// refuses). It is the same set as [Class.Retryable].
func (c Class) IsConnectionError() bool {
	return c.Retryable()
}

// Retryable reports whether resending after the network returns may
// succeed: Connection, Network, DNS, Timeout and TLS. Certificate is left
// out on purpose: a captive portal can cause it, but so can a missing CA or
// an unset clock, and resending in a loop would hide those; callers who
// know better may retry it themselves.
func (c Class) Retryable() bool {
	switch c {
	case Connection, Network, DNS, Timeout, TLS:
		return true
	}
	return false
}

// LinkRelated reports whether the class points at the local link or path
// rather than at one peer: only Network. A Monitor correlates these with
// link, route, Wi-Fi and DHCP state; a refused or reset connection
// concerns one peer and says nothing about the link.
func (c Class) LinkRelated() bool { return c == Network }

// ParseClass returns the class whose [Class.String] is name ("network",
// "tls", ...), and false for any other text.
func ParseClass(name string) (Class, bool) {
	for c, n := range classNames {
		if n == name {
			return Class(c), true
		}
	}
	return 0, false
}
