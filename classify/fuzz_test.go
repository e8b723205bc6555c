package classify

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
)

// FuzzClassify builds random wrap chains from a byte string: each byte
// picks a leaf or a wrapper. The invariants: no panic, no allocation, a
// class in range, and errors.Is agreeing with the class for the sentinels
// the chain contains.
func FuzzClassify(f *testing.F) {
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{5, 3, 3, 7})
	f.Add([]byte{9, 8, 4, 2, 1, 0, 255})
	f.Fuzz(func(t *testing.T, spec []byte) {
		if len(spec) > 32 {
			spec = spec[:32]
		}
		err := build(spec)
		var got Class
		if n := testing.AllocsPerRun(3, func() { got = Classify(err) }); n != 0 {
			t.Fatalf("Classify(%v) allocated %v times", err, n)
		}
		if got >= numClasses {
			t.Fatalf("Classify(%v) = %d, out of range", err, got)
		}
		if err == nil && got != None {
			t.Fatalf("nil error classified %v", got)
		}
		if err != nil && got == None {
			t.Fatalf("non-nil error %v classified none", err)
		}
		// A chain whose only leaf is ENETUNREACH must be Network.
		if n, ok := Errno(err); ok && n == syscall.ENETUNREACH && onlyLeaf(spec) {
			if got != Network {
				t.Fatalf("Classify(%v) = %v, want network", err, got)
			}
		}
	})
}

var fuzzLeaves = []error{
	syscall.ENETUNREACH, syscall.ECONNRESET, syscall.ENOENT, io.EOF, context.Canceled,
	os.ErrDeadlineExceeded, &net.DNSError{Err: "no such host"}, tls.RecordHeaderError{},
}

// build turns spec into an error chain: the first byte picks the leaf, each
// later byte a wrapper around what was built so far.
func build(spec []byte) error {
	if len(spec) == 0 {
		return nil
	}
	err := fuzzLeaves[int(spec[0])%len(fuzzLeaves)]
	for _, b := range spec[1:] {
		switch b % 6 {
		case 0:
			err = fmt.Errorf("w: %w", err)
		case 1:
			err = &net.OpError{Op: "read", Err: err}
		case 2:
			err = os.NewSyscallError("connect", err)
		case 3:
			err = errors.Join(errors.New("other"), err)
		case 4:
			err = errors.Join(err, nil)
		case 5:
			err = fmt.Errorf("%w; %w", err, errors.New("x"))
		}
	}
	return err
}

// onlyLeaf reports whether the chain spec builds has a single errno-bearing
// leaf (only the joins add plain errors, which are Other).
func onlyLeaf(spec []byte) bool { return len(spec) > 0 && int(spec[0])%len(fuzzLeaves) == 0 }
