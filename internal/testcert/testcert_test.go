package testcert

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
)

// TestHandshake: a client trusting PEM completes a handshake with Server
// for a named host and an IP host, and one trusting another certificate
// fails with an unknown-authority error.
func TestHandshake(t *testing.T) {
	c := New(t, "server", "netmon.test", "127.0.0.1")
	other := New(t, "other", "netmon.test")
	for _, tt := range []struct {
		name, serverName string
		ca               []byte
		ok               bool
	}{
		{"dns name", "netmon.test", c.PEM, true},
		{"ip address", "127.0.0.1", c.PEM, true},
		{"other ca", "netmon.test", other.PEM, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// Loopback TCP, not net.Pipe: the kernel's buffers let both
			// sides write their last flight without waiting on the other.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			done := make(chan struct{})
			defer func() { <-done }()
			go func() {
				defer close(done)
				if sc, err := ln.Accept(); err == nil {
					_ = tls.Server(sc, c.Server).Handshake()
					sc.Close()
				}
			}()
			cc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(tt.ca)
			err = tls.Client(cc, &tls.Config{RootCAs: pool, ServerName: tt.serverName}).Handshake()
			var unknown x509.UnknownAuthorityError
			switch {
			case tt.ok && err != nil:
				t.Fatalf("handshake: %v", err)
			case !tt.ok && !errors.As(err, &unknown):
				t.Fatalf("handshake = %v, want an unknown-authority error", err)
			}
		})
	}
}
