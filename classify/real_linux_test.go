package classify

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/testcert"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// The tests in this file provoke each failure for real, against the
// kernel and real peers, and assert the exact class of the error Go
// returns. The constructed table in classify_test.go says what the package
// promises; these prove the promise matches what Linux and Go produce.

// serveOnce starts a listener on loopback whose connections are handled by
// fn, and stops it when the test ends.
func serveOnce(t *testing.T, network string, fn func(net.Conn)) net.Addr {
	t.Helper()
	ln, err := net.Listen(network, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	netnstest.Serve(t, ln, fn)
	return ln.Addr()
}

func assertClass(t *testing.T, err error, want Class) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want a %v error", want)
	}
	if got := Classify(err); got != want {
		t.Fatalf("Classify(%q) = %v, want %v (chain %T)", err, got, want, err)
	}
}

func TestRealConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = net.Dial("tcp", addr)
	assertClass(t, err, Connection)
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Fatalf("err = %v, want ECONNREFUSED", err)
	}
}

// resetConn waits for the client's first byte (so the connection is fully
// established on both sides), then closes with SO_LINGER 0, which sends an
// RST instead of a FIN.
func resetConn(c net.Conn) {
	_, _ = c.Read(make([]byte, 1))
	_ = c.(*net.TCPConn).SetLinger(0)
	c.Close()
}

func TestRealResetAndBrokenPipe(t *testing.T) {
	t.Parallel()
	addr := serveOnce(t, "tcp", resetConn)
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	// The first read sees the RST.
	_, err = c.Read(make([]byte, 1))
	assertClass(t, err, Connection)
	if !errors.Is(err, unix.ECONNRESET) {
		t.Fatalf("read after RST: %v, want ECONNRESET", err)
	}
	// A write after the reset was consumed gets EPIPE.
	_, err = c.Write([]byte("x"))
	assertClass(t, err, Connection)
	if !errors.Is(err, unix.EPIPE) {
		t.Fatalf("write after RST: %v, want EPIPE", err)
	}
}

func TestRealReadDeadline(t *testing.T) {
	t.Parallel()
	hold := make(chan struct{})
	t.Cleanup(func() { close(hold) })
	addr := serveOnce(t, "tcp", func(c net.Conn) {
		go func() { <-hold; c.Close() }()
	})
	c, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
	_, err = c.Read(make([]byte, 1))
	assertClass(t, err, Timeout)
}

func TestRealNotConnectionErrors(t *testing.T) {
	t.Parallel()
	_, err := os.Open(filepath.Join(t.TempDir(), "missing"))
	assertClass(t, err, Other)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = net.Listen("tcp", ln.Addr().String())
	assertClass(t, err, Other)
	if !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second listen: %v, want EADDRINUSE", err)
	}
}

func TestRealTLS(t *testing.T) {
	t.Parallel()
	t.Run("plain-text server", func(t *testing.T) {
		t.Parallel()
		addr := serveOnce(t, "tcp", func(c net.Conn) {
			_, _ = io.WriteString(c, "HTTP/1.1 302 Found\r\nLocation: http://portal/\r\n\r\n")
			c.Close()
		})
		_, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: "netmon.test"})
		assertClass(t, err, TLS)
	})
	t.Run("closes mid-handshake", func(t *testing.T) {
		t.Parallel()
		addr := serveOnce(t, "tcp", func(c net.Conn) {
			_, _ = c.Read(make([]byte, 512)) // the ClientHello
			c.Close()
		})
		_, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: "netmon.test"})
		assertClass(t, err, Connection)
	})
	t.Run("untrusted certificate", func(t *testing.T) {
		t.Parallel()
		cfg := testcert.New(t, "netmon.test", "netmon.test").Server
		addr := serveOnce(t, "tcp", func(c net.Conn) {
			tc := tls.Server(c, cfg)
			_ = tc.Handshake()
			tc.Close()
		})
		_, err := tls.Dial("tcp", addr.String(), &tls.Config{ServerName: "netmon.test"})
		assertClass(t, err, Certificate)
		if Classify(err).Retryable() {
			t.Fatal("certificate errors must not be retryable")
		}
	})
	t.Run("clock before the certificate", func(t *testing.T) {
		t.Parallel()
		kit := testcert.New(t, "netmon.test", "netmon.test")
		addr := serveOnce(t, "tcp", func(c net.Conn) {
			tc := tls.Server(c, kit.Server)
			_ = tc.Handshake()
			tc.Close()
		})
		roots := x509.NewCertPool()
		roots.AppendCertsFromPEM(kit.PEM)
		client := &tls.Config{RootCAs: roots, ServerName: "netmon.test",
			Time: func() time.Time { return time.Unix(0, 0) }} // a robot whose clock is not set after boot
		c, err := tls.Dial("tcp", addr.String(), client)
		if err == nil {
			c.Close()
			t.Fatal("handshake succeeded at 1970")
		}
		assertClass(t, err, Certificate)
		if !CertificateTime(err) {
			t.Fatalf("CertificateTime(%v) = false, want true", err)
		}
	})
	t.Run("server rejects client alert", func(t *testing.T) {
		t.Parallel()
		cfg := testcert.New(t, "netmon.test", "netmon.test").Server
		cfg.ClientAuth = tls.RequireAnyClientCert
		addr := serveOnce(t, "tcp", func(c net.Conn) {
			tc := tls.Server(c, cfg)
			_ = tc.Handshake()
			tc.Close()
		})
		c, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true})
		if err == nil {
			// TLS 1.3: the client learns of the server's alert on first read.
			_, err = c.Read(make([]byte, 1))
			c.Close()
		}
		// bad_certificate (TLS 1.2) or certificate_required (TLS 1.3):
		// the client's certificate was refused, and resending the same
		// one will not help.
		assertClass(t, err, Certificate)
	})
	for _, c := range []struct {
		name  string
		alert string
		class Class
		mod   func(client, server *tls.Config)
	}{
		{"protocol version", "protocol version", Rejected, func(c, s *tls.Config) {
			c.MaxVersion, s.MinVersion = tls.VersionTLS12, tls.VersionTLS13
		}},
		{"no application protocol", "no application protocol", Rejected, func(c, s *tls.Config) {
			c.NextProtos, s.NextProtos = []string{"robot/1"}, []string{"robot/2"}
		}},
	} {
		t.Run("server rejects "+c.name, func(t *testing.T) {
			t.Parallel()
			cfg := testcert.New(t, "netmon.test", "netmon.test").Server
			client := &tls.Config{InsecureSkipVerify: true}
			c.mod(client, cfg)
			addr := serveOnce(t, "tcp", func(conn net.Conn) {
				tc := tls.Server(conn, cfg)
				_ = tc.Handshake()
				tc.Close()
			})
			conn, err := tls.Dial("tcp", addr.String(), client)
			if err == nil {
				conn.Close()
				t.Fatal("handshake succeeded")
			}
			if !strings.Contains(err.Error(), c.alert) {
				t.Fatalf("error %q does not carry the alert %q", err, c.alert)
			}
			assertClass(t, err, c.class)
			if Classify(err).Retryable() {
				t.Fatalf("%v must not be retryable", Classify(err))
			}
		})
	}
}

// TestIntegrationRealPathFailures runs in fresh namespaces: a namespace
// with no route, an on-link peer that never answers ARP, a resolver that
// cannot be reached, and a packet socket on a down interface.
func TestIntegrationRealPathFailures(t *testing.T) {
	t.Parallel()
	a, b := netnstest.New(t), netnstest.New(t)
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.201.0.1/24", "dev", "va")
	b.IP("addr", "add", "10.201.0.2/24", "dev", "vb")

	t.Run("ENETUNREACH no route", func(t *testing.T) {
		var err error
		_ = a.Do(func() error {
			_, err = net.DialTimeout("tcp4", "192.0.2.1:80", 5*time.Second)
			return nil
		})
		assertClass(t, err, Network)
		if !errors.Is(err, unix.ENETUNREACH) {
			t.Fatalf("got %v, want ENETUNREACH", err)
		}
	})

	t.Run("EHOSTUNREACH no ARP answer", func(t *testing.T) {
		// One ARP probe 100 ms apart instead of three a second apart, so the
		// kernel gives up quickly; the address is on-link but unowned.
		a.Sysctl("net/ipv4/neigh/va/mcast_solicit", "1")
		a.Sysctl("net/ipv4/neigh/va/retrans_time_ms", "100")
		var err error
		_ = a.Do(func() error {
			_, err = net.DialTimeout("tcp4", "10.201.0.77:80", 10*time.Second)
			return nil
		})
		assertClass(t, err, Network)
		if !errors.Is(err, unix.EHOSTUNREACH) {
			t.Fatalf("got %v, want EHOSTUNREACH", err)
		}
	})

	t.Run("DNS resolver unreachable", func(t *testing.T) {
		// The resolver dials on goroutines of its own, which would run in
		// the test's namespace; so its Dial enters the namespace for every
		// dial it makes, to a resolver address there is no route to.
		var dials atomic.Int32
		r := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
			dials.Add(1)
			var c net.Conn
			var err error
			if derr := a.Do(func() error {
				c, err = (&net.Dialer{}).DialContext(ctx, network, "192.0.2.53:53")
				return nil
			}); derr != nil {
				return nil, derr
			}
			return c, err
		}}
		_, err := r.LookupHost(context.Background(), "robot.example")
		if dials.Load() == 0 {
			t.Fatal("the resolver never dialled")
		}
		assertClass(t, err, Network)
		var dnsErr *net.DNSError
		if !errors.As(err, &dnsErr) {
			t.Fatalf("got %T %v, want *net.DNSError", err, err)
		}
	})

	t.Run("EACCES broadcast without SO_BROADCAST", func(t *testing.T) {
		// Go's net package sets SO_BROADCAST on every IPv4 UDP socket, so
		// this is the socket a C or Python sender has: a plain one.
		var err error
		if derr := a.Do(func() error {
			fd, serr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
			if serr != nil {
				return serr
			}
			defer unix.Close(fd)
			serr = unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{10, 201, 0, 255}, Port: 9})
			if serr != nil {
				err = &net.OpError{Op: "write", Net: "udp", Err: os.NewSyscallError("sendto", serr)}
			}
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		assertClass(t, err, Policy)
		if !errors.Is(err, unix.EACCES) {
			t.Fatalf("broadcast: %v, want EACCES", err)
		}
		if IsConnectionError(err) {
			t.Fatal("EACCES must not be a connection error")
		}
	})

	t.Run("ENETDOWN packet socket on down interface", func(t *testing.T) {
		a.IP("link", "set", "va", "down")
		defer a.IP("link", "set", "va", "up")
		var err error
		if derr := a.Do(func() error {
			fd, serr := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
			if serr != nil {
				return serr
			}
			defer unix.Close(fd)
			ifi, ierr := net.InterfaceByName("va")
			if ierr != nil {
				return ierr
			}
			frame := make([]byte, 60)
			serr = unix.Sendto(fd, frame, 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6, Protocol: 0x0008})
			err = os.NewSyscallError("sendto", serr)
			return nil
		}); derr != nil {
			t.Fatal(derr)
		}
		assertClass(t, err, Network)
		if !errors.Is(err, unix.ENETDOWN) {
			t.Fatalf("got %v, want ENETDOWN", err)
		}
	})
}

// TestTLSAlertNoAlloc: an alert crypto/tls received over TCP (its
// unexported type, read by reflect) is classified without allocating.
// Not parallel: AllocsPerRun needs the process to itself.
func TestTLSAlertNoAlloc(t *testing.T) {
	cfg := testcert.New(t, "netmon.test", "netmon.test").Server
	cfg.MinVersion = tls.VersionTLS13
	addr := serveOnce(t, "tcp", func(conn net.Conn) {
		tc := tls.Server(conn, cfg)
		_ = tc.Handshake()
		tc.Close()
	})
	conn, err := tls.Dial("tcp", addr.String(), &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("handshake succeeded")
	}
	if n := testing.AllocsPerRun(100, func() { Classify(err) }); n != 0 {
		t.Errorf("classifying %v allocated %v times", err, n)
	}
	assertClass(t, err, Rejected)
}
