package classify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"syscall"
)

// maxDepth bounds the walk of an error chain, so that a cyclic or absurdly
// deep chain (an Unwrap that returns its receiver) ends instead of hanging.
// Real chains are under ten deep.
const maxDepth = 64

// Classify returns the class of err. It walks the whole chain, including
// errors joined with errors.Join or wrapped with several %w verbs, and
// never allocates. A nil error is [None].
//
// Classify cannot tell a timeout of the network from the caller's own
// deadline when both look like context.DeadlineExceeded; use
// [ClassifyContext] where the caller's context is at hand.
func Classify(err error) Class {
	if err == nil {
		return None
	}
	return walk(err, 0, false)
}

// ClassifyContext is [Classify] for an error returned by an operation that
// ran under ctx. When ctx has ended, the caller gave up (its own deadline
// passed or it cancelled), and the class is [Canceled] whatever the error
// looks like: a dial that fails with "i/o timeout" because the caller's
// deadline passed is not evidence of a network problem.
func ClassifyContext(ctx context.Context, err error) Class {
	if err == nil {
		return None
	}
	if ctx.Err() != nil {
		return Canceled
	}
	return walk(err, 0, false)
}

// IsConnectionError reports whether err is a connection error in the sense
// of the seed's is_connection_err, extended as the package documentation
// describes. It is Classify(err).IsConnectionError().
func IsConnectionError(err error) bool {
	return Classify(err).IsConnectionError()
}

// Errno returns the first system error number in err's chain, if any.
func Errno(err error) (syscall.Errno, bool) {
	return findErrno(err, 0)
}

// NotFound reports whether err's chain holds a *net.DNSError saying that
// the name does not exist (NXDOMAIN, or no records of the type asked: the
// resolver answered, Go's IsNotFound). It tells a [DNS] failure that proves
// a resolver answered apart from one that may be the link's (a resolver
// timeout, a server that misbehaved): Classify returns DNS for both. A
// DNSError whose text names an unreachable network is [Network], never
// NotFound. Like Classify it walks joined errors and never allocates.
func NotFound(err error) bool {
	return notFound(err, 0)
}

func notFound(err error, depth int) bool {
	for ; err != nil && depth < maxDepth; depth++ {
		switch e := err.(type) {
		case *net.DNSError:
			if e.IsNotFound || e.Err == "no such host" {
				return true
			}
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if notFound(inner, depth+1) {
					return true
				}
			}
			return false
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

func findErrno(err error, depth int) (syscall.Errno, bool) {
	for ; err != nil && depth < maxDepth; depth++ {
		switch e := err.(type) {
		case syscall.Errno:
			return e, true
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				if n, ok := findErrno(inner, depth+1); ok {
					return n, true
				}
			}
			return 0, false
		case interface{ Unwrap() error }:
			err = e.Unwrap()
		default:
			return 0, false
		}
	}
	return 0, false
}

// walk classifies err by looking at each error in its chain, outermost
// first. Wrappers that only add context (*net.OpError, *os.SyscallError,
// *url.Error, crypto/tls's permanentError, fmt's %w) are passed through; the
// first error that says what happened decides. An end of stream counts as
// a connection error only where a network read can have returned it: as
// the outermost error (net.Conn's Read returns io.EOF bare), or below a
// *net.OpError or *url.Error.
func walk(err error, depth int, netAbove bool) Class {
	fromNet := netAbove || depth == 0
	for ; err != nil; depth++ {
		if depth >= maxDepth {
			return Other
		}
		if c, ok := decide(err, fromNet); ok {
			return c
		}
		netAbove = netAbove || netWrapper(err)
		fromNet = netAbove
		switch e := err.(type) {
		case interface{ Unwrap() []error }:
			return joined(e.Unwrap(), depth+1, netAbove)
		case interface{ Unwrap() error }:
			next := e.Unwrap()
			if next == nil {
				return leaf(err)
			}
			err = next
		default:
			return leaf(err)
		}
	}
	return Other
}

// netWrapper reports whether err is a wrapper that the network packages
// put around what a connection returned: below it, an end of stream is a
// connection's.
func netWrapper(err error) bool {
	switch err.(type) {
	case *net.OpError, *url.Error:
		return true
	}
	return false
}

// joined classifies the branches of a joined error and keeps the most
// telling class: see rank.
func joined(errs []error, depth int, netAbove bool) Class {
	best := None
	for _, e := range errs {
		if e == nil {
			continue
		}
		if c := walk(e, depth, netAbove); rank[c] > rank[best] {
			best = c
		}
	}
	if best == None {
		return Other
	}
	return best
}

// rank orders classes for joined errors: when one branch says the network
// is gone and another that a peer reset, the network explains both.
var rank = [numClasses]uint8{
	None:        0,
	Other:       1,
	Canceled:    2,
	Policy:      3,
	Rejected:    4,
	Certificate: 5,
	TLS:         6,
	DNS:         7,
	Timeout:     8,
	Connection:  9,
	Network:     10,
}

// decide reports the class of err itself, if err is an error whose type or
// value says what happened. It does not look at wrapped errors.
func decide(err error, fromNet bool) (Class, bool) {
	switch e := err.(type) {
	case syscall.Errno:
		return errnoClass(e), true
	case *net.OpError:
		// crypto/tls reports alerts over TCP as an OpError around an
		// unexported alert type; the Op is the only handle on them.
		if e.Op == "remote error" || e.Op == "local error" {
			return alertClass(e.Err), true
		}
		return 0, false
	case tls.AlertError:
		return alertCodeClass(uint8(e)), true
	case *net.DNSError:
		return dnsClass(e)
	case *tls.CertificateVerificationError,
		x509.UnknownAuthorityError, x509.HostnameError, x509.CertificateInvalidError,
		x509.SystemRootsError, x509.ConstraintViolationError, x509.UnhandledCriticalExtension,
		x509.InsecureAlgorithmError:
		return Certificate, true
	case tls.RecordHeaderError, *tls.ECHRejectionError:
		return TLS, true
	}
	// Sentinels, compared by identity: each is a distinct value, and errors
	// that merely mention them are handled by their wrappers above.
	switch err {
	case context.Canceled:
		return Canceled, true
	case context.DeadlineExceeded, os.ErrDeadlineExceeded:
		return Timeout, true
	case io.EOF, io.ErrUnexpectedEOF:
		// A stream ended where a reply was due, if it was a connection's:
		// bare (net.Conn's Read returns io.EOF unwrapped) or below a
		// network wrapper. Wrapped by anything else, it is the caller's
		// own end of file, and resending will not change it.
		if fromNet {
			return Connection, true
		}
		return Other, true
	case net.ErrClosed, io.ErrClosedPipe:
		return Connection, true
	}
	return 0, false
}

// leaf classifies an error at the end of a chain whose type decide did
// not know. net's unexported timeout and cancellation errors land here and
// are recognised by behaviour, as the net package documents.
func leaf(err error) Class {
	if t, ok := err.(interface{ Timeout() bool }); ok && t.Timeout() {
		return Timeout
	}
	if reflect.TypeOf(err) == errorStringType {
		// Its Error returns the stored text: no allocation.
		if slices.Contains(lostConnectionTexts, err.Error()) {
			return Connection
		}
	}
	if is, ok := err.(interface{ Is(error) bool }); ok {
		switch {
		case is.Is(context.Canceled):
			return Canceled
		case is.Is(context.DeadlineExceeded):
			return Timeout
		}
	}
	return Other
}

// errorStringType is the type of errors.New's values.
var errorStringType = reflect.TypeOf(errors.New(""))

// lostConnectionTexts are net/http's unexported errors.New values that
// mean a connection died under a request (trap 14 of the research: no type
// or sentinel reaches them). Only these exact texts match, and only on a
// plain errors.New value.
var lostConnectionTexts = []string{
	"http: server closed idle connection",                           // a kept-alive connection the server had closed (POST is not retried)
	"http2: client connection lost",                                 // HTTP/2 read loop ended: the connection died
	"http2: Transport received Server's graceful shutdown GOAWAY",   // the server is draining; redial
	"http2: client conn is closed", "http2: client conn not usable", // the pooled connection cannot carry the request
}

// dnsClass classifies a resolver error. *net.DNSError keeps the socket
// error that made the lookup fail only as text (golang/go#63116), and while
// offline every lookup fails that way, so the text is what tells an
// unreachable network from a name that does not exist. Context errors are
// wrapped since Go 1.23 and decide through the chain.
func dnsClass(e *net.DNSError) (Class, bool) {
	if e.UnwrapErr != nil {
		return 0, false
	}
	for _, s := range unreachableTexts {
		if strings.Contains(e.Err, s) {
			return Network, true
		}
	}
	return DNS, true
}

// unreachableTexts are the strerror texts of the errnos in the Network
// class, as Go prints them inside a DNSError's Err.
var unreachableTexts = [...]string{
	"network is unreachable",
	"no route to host",
	"network is down",
	"host is down",
	"cannot assign requested address",
}

// errnoClass maps a system error number to its class. The table is the
// package's contract; see the package documentation for why each errno is
// where it is.
func errnoClass(n syscall.Errno) Class {
	switch n {
	case syscall.ENETUNREACH, syscall.ENETDOWN, syscall.ENETRESET,
		syscall.EHOSTUNREACH, syscall.EHOSTDOWN, syscall.ENOLINK, syscall.EADDRNOTAVAIL:
		return Network
	case syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED, syscall.EPIPE,
		syscall.ESHUTDOWN, syscall.ENOTCONN, syscall.ENOBUFS, syscall.EPROTO:
		return Connection
	case syscall.ETIMEDOUT, syscall.EAGAIN:
		return Timeout
	case syscall.EACCES, syscall.EPERM:
		return Policy
	}
	if osNetworkErrno(n) {
		return Network
	}
	return Other
}
