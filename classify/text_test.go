package classify

import (
	"syscall"
	"testing"
)

func TestParseText(t *testing.T) {
	for _, c := range []struct {
		text     string
		class    Class
		errno    syscall.Errno
		notFound bool
	}{
		// Python's OSError texts.
		{"[Errno 101] Network is unreachable", Network, syscall.ENETUNREACH, false},
		{"ConnectionRefusedError: [Errno 111] Connection refused", Connection, syscall.ECONNREFUSED, false},
		{"OSError: [Errno 113] No route to host", Network, syscall.EHOSTUNREACH, false},
		{"BrokenPipeError: [Errno 32] Broken pipe", Connection, syscall.EPIPE, false},
		{"[Errno 110] Connection timed out", Timeout, syscall.ETIMEDOUT, false},
		{"PermissionError: [Errno 13] Permission denied", Policy, syscall.EACCES, false},
		{"[Errno 2] No such file or directory", Other, syscall.ENOENT, false},
		// Errno names and C library texts.
		{"send failed: ENETUNREACH", Network, syscall.ENETUNREACH, false},
		{"write: connection reset by peer", Connection, syscall.ECONNRESET, false},
		{"connect(): Network is unreachable", Network, syscall.ENETUNREACH, false},
		// Resolvers.
		{"socket.gaierror: [Errno -2] Name or service not known", DNS, 0, true},
		{"lookup broker.example.com: no such host", DNS, 0, true},
		{"[Errno -3] Temporary failure in name resolution", DNS, 0, false},
		// Certificates before TLS.
		{"ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)", Certificate, 0, false},
		{"tls: failed to verify certificate: x509: certificate signed by unknown authority", Certificate, 0, false},
		{"ssl.SSLError: [SSL: WRONG_VERSION_NUMBER] wrong version number (_ssl.c:1006)", TLS, 0, false},
		{"remote error: tls: handshake failure", Rejected, 0, false},
		{"remote error: tls: bad record MAC", TLS, 0, false},
		{"ssl.SSLError: [SSL: TLSV1_ALERT_PROTOCOL_VERSION] tlsv1 alert protocol version (_ssl.c:1006)", Rejected, 0, false},
		{"ssl.SSLError: [SSL: TLSV13_ALERT_CERTIFICATE_REQUIRED] tlsv13 alert certificate required (_ssl.c:2580)", Certificate, 0, false},
		{"ssl.SSLError: [SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca (_ssl.c:1006)", Certificate, 0, false},
		// Timeouts, ends of stream, cancellations.
		{"socket.timeout: timed out", Timeout, 0, false},
		{"TimeoutError", Timeout, 0, false},
		{"asyncio.IncompleteReadError: 0 bytes read on a total of 4 expected bytes; unexpected EOF", Connection, 0, false},
		{"CancelledError: cancelled", Canceled, 0, false},
		// Nothing network about it.
		{"ValueError: invalid literal for int()", Other, 0, false},
		{"", Other, 0, false},
		// Not errno names: part of a longer word, or lower case.
		{"ENETUNREACHABLE_FOO happened", Other, 0, false},
		{"the eperm flag", Other, 0, false},
		// Short texts match whole words only.
		{"geofence service unavailable", Other, 0, false},
		{"Errno 5 whereof", Other, 0, false},
		{"HTTP 503: alerting backend busy", Other, 0, false},
		{"invalid certificate_id in request", Other, 0, false},
		{"user not found in mdns cache", Other, 0, false},
		{"read: EOF", Connection, 0, false},
		{"dns lookup failed", DNS, 0, false},
		// An "[Errno" that is not one.
		{"[Errno x] what", Other, 0, false},
		{"[Errno 99999] huge", Other, 0, false},
	} {
		got := ParseText(c.text)
		want := Text{Class: c.class, Errno: c.errno, NotFound: c.notFound}
		if got != want {
			t.Errorf("ParseText(%q) = %+v, want %+v", c.text, got, want)
		}
	}
}

func TestParseClass(t *testing.T) {
	for c := None; c < numClasses; c++ {
		got, ok := ParseClass(c.String())
		if !ok || got != c {
			t.Errorf("ParseClass(%q) = %v, %v; want %v", c.String(), got, ok, c)
		}
	}
	for _, bad := range []string{"", "Network", "invalid", "net"} {
		if c, ok := ParseClass(bad); ok {
			t.Errorf("ParseClass(%q) = %v, true; want false", bad, c)
		}
	}
}

// FuzzParseText: no panic; the class in range; an errno found is
// classified as Classify classifies it; NotFound only with DNS.
func FuzzParseText(f *testing.F) {
	for _, s := range []string{"[Errno 101] Network is unreachable", "ECONNRESET", "[Errno ", "[Errno 1", "E", "x509: y",
		"Name or service not known", "\xff[Errno 5]"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := ParseText(s)
		if got.Class >= numClasses || got.Class == None {
			t.Fatalf("ParseText(%q) class %d", s, got.Class)
		}
		if got.Errno != 0 && Classify(got.Errno) != got.Class {
			t.Fatalf("ParseText(%q) = %+v, but Classify(%v) = %v", s, got, got.Errno, Classify(got.Errno))
		}
		if got.NotFound && got.Class != DNS {
			t.Fatalf("ParseText(%q) = %+v: NotFound without DNS", s, got)
		}
		if got.Errno > maxErrno {
			t.Fatalf("ParseText(%q) errno %d out of range", s, got.Errno)
		}
	})
}
