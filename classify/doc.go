// Package classify tells whether an error is a connection error and what
// kind, so that a sender can decide whether an important message must be
// resent once the network is back.
//
// [Classify] returns a [Class]; [IsConnectionError] is the Go form of the
// seed's Python is_connection_err. Both walk the whole error chain the way
// errors.Is does (through %w, errors.Join, *net.OpError, *os.SyscallError,
// *url.Error and crypto/tls's permanent errors), in one pass, without
// allocating and without type assertions on the outermost error only. The
// package has no state, starts no goroutines and does no I/O.
//
// # Classes
//
//   - [None]: nil.
//   - [Connection]: ECONNREFUSED, ECONNRESET, ECONNABORTED, EPIPE, ESHUTDOWN,
//     ENOTCONN, ENOBUFS, EPROTO; io.ErrClosedPipe and net.ErrClosed; io.EOF
//     and io.ErrUnexpectedEOF where a network read returned them: bare (as
//     net.Conn's Read returns io.EOF) or below a *net.OpError or *url.Error.
//     One peer or one connection failed.
//   - [Network]: ENETUNREACH, ENETDOWN, ENETRESET, ENONET, EHOSTUNREACH,
//     EHOSTDOWN, ENOLINK, EADDRNOTAVAIL, and a *net.DNSError whose text
//     names one of them. The local path is gone ([Class.LinkRelated]).
//   - [DNS]: any other *net.DNSError (no such host, resolver timeout,
//     server misbehaving). [NotFound] tells "no such host" (a resolver
//     answered) apart from the others.
//   - [Timeout]: ETIMEDOUT, EAGAIN, os.ErrDeadlineExceeded,
//     context.DeadlineExceeded, and any error at the end of a chain whose
//     Timeout method reports true (net's dial timeout, http's client
//     timeout).
//   - [TLS]: tls.RecordHeaderError (a plain-text answer, typically a captive
//     portal), *tls.ECHRejectionError, and the TLS alerts not named below
//     (close_notify, bad_record_mac, decode_error, internal_error, ...).
//     Alerts are read by code, from tls.AlertError on QUIC and, on TCP, from
//     the *net.OpError whose Op is "remote error" or "local error".
//   - [Certificate]: *tls.CertificateVerificationError and the x509 errors
//     (unknown authority, host name, expired or not yet valid, no roots), and
//     the certificate alerts: bad_certificate, unsupported_certificate,
//     certificate_revoked, certificate_expired, certificate_unknown,
//     unknown_ca, certificate_required (a server refusing the client's
//     certificate). [CertificateTime] tells a certificate refused for its
//     validity period, which an unset clock causes.
//   - [Rejected]: the alerts that say the two ends cannot agree whatever is
//     resent: handshake_failure, access_denied, protocol_version,
//     insufficient_security, inappropriate_fallback, missing_extension,
//     unsupported_extension, unrecognized_name, no_application_protocol.
//   - [Policy]: EACCES and EPERM.
//   - [Canceled]: context.Canceled, and everything [ClassifyContext] sees
//     after the caller's context ended.
//   - [Other]: everything else (ENOENT, EADDRINUSE, EINVAL, EMSGSIZE, ...).
//
// When errors are joined, the most telling branch wins, in this order:
// Network, Connection, Timeout, DNS, TLS, Certificate, Rejected, Policy,
// Canceled, Other. A network that is gone explains a peer that reset.
//
// # Where this package differs from the seed
//
// The seed (Python) returns True for ConnectionError subclasses, any DNS
// failure, any timeout, OSError with ENETUNREACH, ENETDOWN, ENETRESET,
// ENONET or ENOTCONN, and "any SSL error". [IsConnectionError] keeps all of
// that and changes the following, each for a robot on Wi-Fi:
//
//   - EHOSTUNREACH and EHOSTDOWN are connection errors (class Network). The
//     seed misses EHOSTUNREACH, yet it is the most common Wi-Fi failure:
//     associated, but the gateway stopped answering ARP (after about 3 s).
//   - EADDRNOTAVAIL is a Network error: the source address went away with a
//     DHCP change, or an IPv6 address is still tentative after link-up.
//   - EACCES and EPERM from connect or sendto are Policy, not connection
//     errors: a prohibit route or a firewall, not link loss. They are
//     checked as errnos before anything could call them os.ErrPermission.
//   - context.Canceled is not a connection error: the caller gave up.
//   - Certificate failures have their own class and are not connection
//     errors, although the seed's "any SSL error" branch meant them to be
//     (a captive portal on Wi-Fi causes them): a missing CA, a revoked
//     client certificate or a clock not yet set after boot does not heal
//     by resending at once. [CertificateTime] tells the clock's case,
//     which a sender may retry until the clock is set (the gate does).
//   - A plain-text answer to a TLS client and TLS alerts other than the
//     certificate alerts and the permanent ones ([Rejected]: version,
//     security level, ALPN, access denied) are TLS errors, and connection
//     errors. The seed meant "any SSL error" to count; in Python
//     ssl.SSLError subclasses OSError, so its SSL branch is never reached.
//     This package follows the intent, not the accident, except where
//     resending cannot help.
//   - net.ErrClosed is a Connection error, and so are io.EOF and
//     io.ErrUnexpectedEOF from a network read: a stream ended where a reply
//     was due. Only the caller knows whether an EOF was expected; a sender
//     that got one before its acknowledgement must resend. An EOF wrapped
//     by anything but the network's own wrappers (fmt's %w, an
//     *fs.PathError, errors.Join) is the caller's (a file's end) and Other:
//     return a connection's read error as it is, or wrap it in a
//     *net.OpError, so that it stays retryable.
//   - ENOLINK is Network (the link under the socket is gone); ENOBUFS and
//     EPROTO are Connection (a full qdisc or device queue while the link
//     flaps, a protocol failure on one connection); EAGAIN is Timeout (it is
//     what a socket with SO_SNDTIMEO or SO_RCVTIMEO returns when its timeout
//     passes). The seed has none of them; each is what a sender should
//     retry after the path is back.
//   - io.ErrClosedPipe is Connection, like net.ErrClosed: the writing end
//     lost its reader.
//   - A *net.DNSError hides the socket error behind text (golang/go#63116);
//     offline, every lookup fails with "... connect: network is
//     unreachable". Those are Network, not DNS, so the Monitor can correlate
//     them with the link.
//
// # Traps this package avoids
//
// It never uses the deprecated Temporary method. It looks at Timeout only
// at the end of a chain, so a wrapper that forwards Timeout cannot hide a
// more specific cause. It checks errnos before generic os sentinels. It
// walks joined errors. It matches message text in two documented places
// only: the DNS case above, and net/http's unexported errors.New values
// that mean a connection died under a request ("http: server closed idle
// connection", "http2: client connection lost", the graceful GOAWAY and
// the unusable pooled connection), which are Connection; only those exact
// texts on a plain errors.New value match. Other text-only errors (gRPC
// status errors, a GOAWAY with an error code) are Other: read their codes
// where they are made.
//
// A write error on a *tls.Conn, a write-deadline timeout included, is
// permanent: crypto/tls stores it and every later write returns it again.
// The class of the repeated error is the class of the first, so a Timeout
// on a TLS connection is retryable only on a new connection; a sender must
// redial before it resends (a send function given to gate.Gate.Do should
// drop its connection after an error for this reason). The caller's own deadline is told apart from a network timeout
// only by [ClassifyContext]: the error values alone cannot do it, because
// context.DeadlineExceeded itself claims to be a timeout.
package classify
