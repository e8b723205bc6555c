package classify_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/seed-a56be422/netmon/classify"
	"golang.org/x/sys/unix"
)

// pythonCase is one row of testdata/python_cases.json, the table that
// examples/python/test_classify.py checks the Python client against.
type pythonCase struct {
	Name       string `json:"name"`
	Errno      int    `json:"errno"`
	Python     string `json:"python"`
	Go         string `json:"go"`
	Class      string `json:"class"`
	Connection bool   `json:"connection"`
	NotFound   bool   `json:"not_found"`
	Seed       bool   `json:"seed"`
	Differs    string `json:"differs_from_seed"`
}

// goError builds the Go error a row names. The names are the table's
// vocabulary; an unknown name fails the test, so the table cannot name a
// case that no language checks.
func goError(name string) (error, bool) {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", unix.ECONNRESET)}
	switch name {
	case "os.ErrDeadlineExceeded":
		return &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}, true
	case "context.DeadlineExceeded":
		return context.DeadlineExceeded, true
	case "context.Canceled":
		return context.Canceled, true
	case "x509.UnknownAuthorityError":
		return &wrapper{&tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}}, true
	case "x509.CertificateInvalidError(expired)":
		return &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired}}, true
	case "tls.RecordHeaderError":
		return tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, true
	case "net.DNSError(not-found)":
		return &net.DNSError{Err: "no such host", Name: "robot.example", IsNotFound: true}, true
	case "net.DNSError(temporary)":
		return &net.DNSError{Err: "Temporary failure in name resolution", Name: "robot.example", IsTemporary: true}, true
	case "net.DNSError(network-unreachable)":
		return &net.DNSError{Err: "dial udp 10.0.0.53:53: connect: network is unreachable", Name: "robot.example", IsTemporary: true}, true
	case "io.ErrUnexpectedEOF":
		// As crypto/tls and io.ReadFull return it: bare.
		return io.ErrUnexpectedEOF, true
	case "io.EOF":
		return &net.OpError{Op: "read", Net: "tcp", Err: io.EOF}, true
	case "fmt.Errorf(%w, io.EOF)":
		// Not a connection's: the caller's own end of file.
		return fmt.Errorf("parse config: %w", io.EOF), true
	case "net.ErrClosed":
		return &net.OpError{Op: "write", Net: "tcp", Err: net.ErrClosed}, true
	case "fmt.Errorf(%w, ECONNRESET)":
		return fmt.Errorf("send failed: %w", reset), true
	case "errors.New":
		return errors.New("invalid value"), true
	}
	// A TLS alert by code (tls.AlertError is how QUIC reports them; over
	// TCP crypto/tls uses an unexported type of the same codes, which
	// classify reads the same way).
	var code uint8
	if _, err := fmt.Sscanf(name, "tls.AlertError(%d)", &code); err == nil {
		return tls.AlertError(code), true
	}
	return nil, false
}

// wrapper is a wrapper unknown to classify, standing for the layers a real
// client adds (url.Error and the like).
type wrapper struct{ err error }

func (u *wrapper) Error() string { return "request: " + u.err.Error() }
func (u *wrapper) Unwrap() error { return u.err }

// TestPythonCases checks that Classify and IsConnectionError agree with
// the table the Python client is tested against, so that a robot gets the
// same answer from either language.
func TestPythonCases(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("testdata/python_cases.json")
	if err != nil {
		t.Fatal(err)
	}
	var table struct {
		Cases []pythonCase `json:"cases"`
	}
	if err := json.Unmarshal(b, &table); err != nil {
		t.Fatalf("testdata/python_cases.json: %v", err)
	}
	if len(table.Cases) == 0 {
		t.Fatal("testdata/python_cases.json has no cases")
	}
	seen := map[string]bool{}
	for _, c := range table.Cases {
		t.Run(c.Name, func(t *testing.T) {
			if seen[c.Name] {
				t.Fatalf("duplicate case name %q", c.Name)
			}
			seen[c.Name] = true
			if c.Seed != c.Connection && c.Differs == "" {
				t.Errorf("the seed answers %v and we answer %v, but differs_from_seed does not say why", c.Seed, c.Connection)
			}
			var errs []error
			switch {
			case c.Errno != 0:
				n := syscall.Errno(c.Errno)
				if got := unix.ErrnoName(n); got != c.Name {
					t.Fatalf("errno %d is %s on this system, the row says %s", c.Errno, got, c.Name)
				}
				// Bare, and wrapped the way net returns it.
				errs = append(errs, n, &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", n)})
			case c.Go != "":
				e, ok := goError(c.Go)
				if !ok {
					t.Fatalf("no Go error is built for %q: add it to goError", c.Go)
				}
				errs = append(errs, e)
			default:
				if c.Python == "" {
					t.Fatal("the row names neither an errno, a Python exception nor a Go error")
				}
				t.Skipf("Python-only case (%s)", c.Python)
			}
			wantConn := c.Connection
			for _, e := range errs {
				cl := classify.Classify(e)
				if cl.String() != c.Class {
					t.Errorf("Classify(%#v) = %v, want %s", e, cl, c.Class)
				}
				if got := classify.IsConnectionError(e); got != wantConn {
					t.Errorf("IsConnectionError(%#v) = %v, want %v", e, got, wantConn)
				}
				// Python's is_connection_error is Go's Retryable: the
				// same question, "may resending after the path is back
				// succeed?".
				if got := cl.Retryable(); got != c.Connection {
					t.Errorf("Classify(%#v).Retryable() = %v, want %v (the row's connection)", e, got, c.Connection)
				}
				if got := classify.NotFound(e); got != c.NotFound {
					t.Errorf("NotFound(%#v) = %v, want %v", e, got, c.NotFound)
				}
			}
		})
	}
}
