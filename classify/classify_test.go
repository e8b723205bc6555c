package classify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/url"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// opErr builds the chain Go returns for a failed socket call:
// *net.OpError -> *os.SyscallError -> syscall.Errno.
func opErr(op, syscallName string, n syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Err: os.NewSyscallError(syscallName, n)}
}

// timeoutOnly is an error type unknown to the package that only says it is
// a timeout, like net's unexported timeoutError.
type timeoutOnly struct{}

func (timeoutOnly) Error() string   { return "timed out" }
func (timeoutOnly) Timeout() bool   { return true }
func (timeoutOnly) Temporary() bool { return true }

// canceledLike is an unexported-style error whose Is maps to
// context.Canceled, like net's canceledError.
type canceledLike struct{}

func (canceledLike) Error() string        { return "operation was canceled" }
func (canceledLike) Is(target error) bool { return target == context.Canceled }

// selfLoop unwraps to itself: a broken chain must not hang the walk.
type selfLoop struct{}

func (selfLoop) Error() string   { return "loop" }
func (s selfLoop) Unwrap() error { return s }

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		err  error
		want Class
	}{
		{"nil", nil, None},
		{"refused", opErr("dial", "connect", unix.ECONNREFUSED), Connection},
		{"reset", opErr("read", "read", unix.ECONNRESET), Connection},
		{"aborted", opErr("read", "read", unix.ECONNABORTED), Connection},
		{"broken pipe", opErr("write", "write", unix.EPIPE), Connection},
		{"shutdown", opErr("write", "write", unix.ESHUTDOWN), Connection},
		{"not connected", opErr("close", "shutdown", unix.ENOTCONN), Connection},
		{"enobufs", opErr("write", "sendto", unix.ENOBUFS), Connection},
		{"net unreachable", opErr("dial", "connect", unix.ENETUNREACH), Network},
		{"net down", opErr("write", "sendto", unix.ENETDOWN), Network},
		{"net reset", opErr("read", "read", unix.ENETRESET), Network},
		{"no network", opErr("dial", "connect", errENONET), Network},
		{"host unreachable", opErr("dial", "connect", unix.EHOSTUNREACH), Network},
		{"host down", opErr("dial", "connect", unix.EHOSTDOWN), Network},
		{"addr not avail", opErr("dial", "bind", unix.EADDRNOTAVAIL), Network},
		{"etimedout", opErr("read", "read", unix.ETIMEDOUT), Timeout},
		{"eacces prohibit route", opErr("dial", "connect", unix.EACCES), Policy},
		{"eperm firewall", opErr("write", "sendto", unix.EPERM), Policy},
		{"einval blackhole", opErr("dial", "connect", unix.EINVAL), Other},
		{"emsgsize", opErr("write", "sendto", unix.EMSGSIZE), Other},
		{"addr in use", opErr("listen", "bind", unix.EADDRINUSE), Other},
		{"file not found", &fs.PathError{Op: "open", Path: "/x", Err: unix.ENOENT}, Other},
		{"bare errno", unix.ECONNRESET, Connection},
		{"wrapped %w", fmt.Errorf("send telemetry: %w", opErr("dial", "connect", unix.ENETUNREACH)), Network},
		{"double wrapped", fmt.Errorf("a: %w", fmt.Errorf("b: %w", opErr("write", "write", unix.EPIPE))), Connection},
		{"url error", &url.Error{Op: "Post", URL: "https://x", Err: opErr("dial", "connect", unix.ECONNREFUSED)}, Connection},
		{"deadline exceeded io", &net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, Timeout},
		{"context deadline", context.DeadlineExceeded, Timeout},
		{"context deadline wrapped", fmt.Errorf("dial: %w", context.DeadlineExceeded), Timeout},
		{"net timeout type", &net.OpError{Op: "dial", Err: timeoutOnly{}}, Timeout},
		{"context canceled", context.Canceled, Canceled},
		{"canceled-like", &net.OpError{Op: "dial", Err: canceledLike{}}, Canceled},
		{"eof", io.EOF, Connection},
		// An end of stream is a connection's only bare (net.Conn's Read
		// returns io.EOF so) or below a network wrapper: wrapped by the
		// caller, it is the caller's own (a file's).
		{"unexpected eof wrapped", fmt.Errorf("read reply: %w", io.ErrUnexpectedEOF), Other},
		{"file eof wrapped", fmt.Errorf("reading config: %w", io.EOF), Other},
		{"eof path error", &os.PathError{Op: "read", Path: "/etc/robot.conf", Err: io.EOF}, Other},
		{"eof bare", io.EOF, Connection},
		{"eof under op error", &net.OpError{Op: "read", Net: "tcp", Err: io.EOF}, Connection},
		{"eof under url error", fmt.Errorf("upload: %w", &url.Error{Op: "Post", URL: "http://robot/", Err: io.EOF}), Connection},
		{"eof under url and fmt", &url.Error{Op: "Post", URL: "http://robot/", Err: fmt.Errorf("read: %w", io.ErrUnexpectedEOF)}, Connection},
		{"net closed", &net.OpError{Op: "write", Err: net.ErrClosed}, Connection},
		{"http idle connection closed", &url.Error{Op: "Post", URL: "http://robot/", Err: errors.New("http: server closed idle connection")}, Connection},
		{"http2 connection lost", fmt.Errorf("upload: %w", &url.Error{Op: "Post", URL: "https://robot/", Err: errors.New("http2: client connection lost")}), Connection},
		{"http2 graceful GOAWAY", errors.New("http2: Transport received Server's graceful shutdown GOAWAY"), Connection},
		{"similar text is not matched", errors.New("http2: client connection lost!"), Other},
		{"closed pipe", io.ErrClosedPipe, Connection},
		{"os closed is not net closed", os.ErrClosed, Other},
		{"permission sentinel alone", os.ErrPermission, Other},
		{"dns not found", &net.DNSError{Err: "no such host", Name: "x", IsNotFound: true}, DNS},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", IsTimeout: true}, DNS},
		{"dns offline", &net.DNSError{Err: "dial udp 10.0.0.1:53: connect: network is unreachable", IsTemporary: true}, Network},
		{"dns offline in dial", &net.OpError{Op: "dial", Err: &net.DNSError{Err: "connect: no route to host"}}, Network},
		{"dns canceled", &net.DNSError{Err: "operation was canceled", UnwrapErr: context.Canceled}, Canceled},
		{"tls record header", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, TLS},
		// Alerts by code: certificate alerts are Certificate, those no
		// resend changes are Rejected, the rest TLS.
		{"tls alert quic handshake failure", tls.AlertError(40), Rejected},
		{"tls alert quic protocol version", tls.AlertError(70), Rejected},
		{"tls alert quic bad certificate", tls.AlertError(42), Certificate},
		{"tls alert quic certificate required", tls.AlertError(116), Certificate},
		{"tls alert quic internal error", tls.AlertError(80), TLS},
		{"tls alert quic bad record mac", tls.AlertError(20), TLS},
		{"tls remote alert over tcp", &net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}, TLS},
		{"tls local alert", &net.OpError{Op: "local error", Err: errors.New("tls: bad record MAC")}, TLS},
		{"cert unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, Certificate},
		{"cert expired", fmt.Errorf("x: %w", x509.CertificateInvalidError{Reason: x509.Expired}), Certificate},
		{"cert hostname", x509.HostnameError{Host: "robot"}, Certificate},
		{"cert behind proxyconnect", &net.OpError{Op: "proxyconnect", Err: &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, Certificate},
		{"joined network wins", errors.Join(opErr("read", "read", unix.ECONNRESET), opErr("dial", "connect", unix.ENETUNREACH)), Network},
		{"joined with nil", errors.Join(nil, io.EOF), Other},
		{"joined net eof", errors.Join(nil, &net.OpError{Op: "read", Net: "tcp", Err: io.EOF}), Connection},
		{"joined other only", errors.Join(errors.New("a"), errors.New("b")), Other},
		{"multi %w", fmt.Errorf("%w and %w", errors.New("x"), opErr("dial", "connect", unix.EHOSTUNREACH)), Network},
		{"nested join", fmt.Errorf("outer: %w", errors.Join(errors.New("x"), fmt.Errorf("in: %w", context.Canceled))), Canceled},
		{"self loop", selfLoop{}, Other},
		{"plain", errors.New("boom"), Other},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Classify(tt.err); got != tt.want {
				t.Errorf("Classify(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestIsConnectionErrorMatchesSeed(t *testing.T) {
	t.Parallel()
	yes := []error{
		opErr("write", "write", unix.EPIPE), opErr("write", "write", unix.ESHUTDOWN),
		opErr("read", "read", unix.ECONNABORTED), opErr("dial", "connect", unix.ECONNREFUSED),
		opErr("read", "read", unix.ECONNRESET), &net.DNSError{Err: "no such host", IsNotFound: true},
		os.ErrDeadlineExceeded, opErr("dial", "connect", unix.ENETUNREACH),
		opErr("write", "sendto", unix.ENETDOWN), opErr("read", "read", unix.ENETRESET),
		opErr("dial", "connect", errENONET), opErr("close", "shutdown", unix.ENOTCONN),
		tls.RecordHeaderError{}, io.ErrUnexpectedEOF,
		// Divergences from the seed, documented in the package doc.
		opErr("dial", "connect", unix.EHOSTUNREACH), opErr("dial", "connect", unix.EHOSTDOWN),
		opErr("dial", "bind", unix.EADDRNOTAVAIL),
	}
	no := []error{
		// Divergences from the seed's "any SSL error": resending cannot
		// cure a certificate nobody trusts or a version the server refuses.
		&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, tls.AlertError(70),
		nil, context.Canceled, opErr("dial", "connect", unix.EACCES), opErr("write", "sendto", unix.EPERM),
		&fs.PathError{Op: "open", Path: "/x", Err: unix.ENOENT}, opErr("listen", "bind", unix.EADDRINUSE),
		errors.New("boom"),
	}
	for _, err := range yes {
		if !IsConnectionError(err) {
			t.Errorf("IsConnectionError(%v) = false, want true", err)
		}
	}
	for _, err := range no {
		if IsConnectionError(err) {
			t.Errorf("IsConnectionError(%v) = true, want false", err)
		}
	}
}

func TestClassifyContextCallerDeadline(t *testing.T) {
	t.Parallel()
	timeout := &net.OpError{Op: "dial", Err: timeoutOnly{}}
	live := context.Background()
	if got := ClassifyContext(live, timeout); got != Timeout {
		t.Errorf("live ctx: got %v, want timeout", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got := ClassifyContext(ctx, timeout); got != Canceled {
		t.Errorf("ended ctx: got %v, want canceled", got)
	}
	if got := ClassifyContext(ctx, nil); got != None {
		t.Errorf("nil error: got %v, want none", got)
	}
}

func TestClassPredicates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		c                         Class
		name                      string
		conn, retryable, linkRelt bool
	}{
		{None, "none", false, false, false},
		{Other, "other", false, false, false},
		{Canceled, "canceled", false, false, false},
		{Connection, "connection", true, true, false},
		{Network, "network", true, true, true},
		{DNS, "dns", true, true, false},
		{Timeout, "timeout", true, true, false},
		{TLS, "tls", true, true, false},
		{Certificate, "certificate", false, false, false},
		{Policy, "policy", false, false, false},
		{Rejected, "rejected", false, false, false},
		{Class(200), "invalid", false, false, false},
	}
	for _, tt := range tests {
		if got := tt.c.String(); got != tt.name {
			t.Errorf("Class(%d).String() = %q, want %q", tt.c, got, tt.name)
		}
		if got := tt.c.IsConnectionError(); got != tt.conn {
			t.Errorf("%v.IsConnectionError() = %v", tt.c, got)
		}
		if got := tt.c.Retryable(); got != tt.retryable {
			t.Errorf("%v.Retryable() = %v", tt.c, got)
		}
		if got := tt.c.LinkRelated(); got != tt.linkRelt {
			t.Errorf("%v.LinkRelated() = %v", tt.c, got)
		}
	}
}

func TestErrno(t *testing.T) {
	t.Parallel()
	tests := []struct {
		err  error
		want syscall.Errno
		ok   bool
	}{
		{opErr("dial", "connect", unix.ENETUNREACH), unix.ENETUNREACH, true},
		{errors.Join(errors.New("x"), fmt.Errorf("y: %w", unix.EPIPE)), unix.EPIPE, true},
		{errors.New("x"), 0, false},
		{nil, 0, false},
		{selfLoop{}, 0, false},
	}
	for _, tt := range tests {
		got, ok := Errno(tt.err)
		if got != tt.want || ok != tt.ok {
			t.Errorf("Errno(%v) = %v, %v; want %v, %v", tt.err, got, ok, tt.want, tt.ok)
		}
	}
}

// TestClassifyDoesNotAllocate pins the allocation-free promise for every
// shape in the table, not just the benchmarked ones.
func TestClassifyDoesNotAllocate(t *testing.T) {
	errs := []error{
		opErr("dial", "connect", unix.ENETUNREACH),
		&fs.PathError{Op: "open", Path: "/x", Err: unix.ENOENT},
		errors.Join(opErr("read", "read", unix.ECONNRESET), io.EOF),
		&net.DNSError{Err: "connect: network is unreachable"},
		&net.OpError{Op: "dial", Err: canceledLike{}},
		&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}},
	}
	for _, err := range errs {
		if n := testing.AllocsPerRun(100, func() { _ = Classify(err) }); n != 0 {
			t.Errorf("Classify(%v): %v allocs, want 0", err, n)
		}
	}
}

func TestNotFoundTellsNXDOMAINFromATimeout(t *testing.T) {
	t.Parallel()
	nx := &net.DNSError{Err: "no such host", Name: "robot.invalid", IsNotFound: true}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nxdomain", nx, true},
		{"nxdomain in dial", &net.OpError{Op: "dial", Net: "tcp", Err: nx}, true},
		{"nxdomain wrapped in url error", fmt.Errorf("post: %w", &url.Error{Op: "Post", URL: "https://robot.invalid/", Err: nx}), true},
		{"nxdomain by text only", &net.DNSError{Err: "no such host", Name: "x"}, true},
		{"nxdomain joined", errors.Join(errors.New("a"), nx), true},
		{"dns timeout", &net.DNSError{Err: "i/o timeout", Name: "x", IsTimeout: true}, false},
		{"dns server misbehaving", &net.DNSError{Err: "server misbehaving", Name: "x", IsTemporary: true}, false},
		{"dns offline", &net.DNSError{Err: "dial udp 10.0.0.1:53: connect: network is unreachable", IsTemporary: true}, false},
		{"refused", opErr("dial", "connect", unix.ECONNREFUSED), false},
		{"nil", nil, false},
		{"self loop", selfLoop{}, false},
	}
	for _, tt := range tests {
		if got := NotFound(tt.err); got != tt.want {
			t.Errorf("%s: NotFound(%v) = %v, want %v", tt.name, tt.err, got, tt.want)
		}
	}
	// Both are DNS to Classify; only NotFound tells them apart.
	if c := Classify(nx); c != DNS {
		t.Errorf("Classify(nxdomain) = %v, want dns", c)
	}
}

func TestCertificateTime(t *testing.T) {
	expired := x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 1970-01-01 is before 2026-11-30"}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"expired or not yet valid", &tls.CertificateVerificationError{Err: expired}, true},
		{"wrapped", &net.OpError{Op: "remote error", Err: fmt.Errorf("x: %w", &tls.CertificateVerificationError{Err: expired})}, true},
		{"unknown authority", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}, false},
		{"other invalid", x509.CertificateInvalidError{Reason: x509.NotAuthorizedToSign}, false},
		{"the peer's alert", tls.AlertError(alertCertificateExpired), false},
		{"nil", nil, false},
	} {
		if got := CertificateTime(c.err); got != c.want {
			t.Errorf("%s: CertificateTime(%v) = %v, want %v", c.name, c.err, got, c.want)
		}
	}
}
