package gate

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/internal/testcert"
)

// The tests in this file send through Do to real peers on loopback: TLS
// servers that reject the client, or that the client rejects, and an HTTP
// server that asks to be retried later. Each has one deadline for the
// whole exchange; none asserts how long anything took except as a lower
// bound the Gate promises.

// tlsAckServer is a TLS server on loopback that answers each line with
// "ACK line", and counts the lines.
type tlsAckServer struct {
	ln   net.Listener
	wg   sync.WaitGroup
	got  atomic.Int64
	mu   sync.Mutex // guards conns
	conn map[net.Conn]struct{}
}

func startTLSAckServer(t *testing.T, cfg *tls.Config) *tlsAckServer {
	t.Helper()
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s := &tlsAckServer{ln: ln, conn: map[net.Conn]struct{}{}}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.conn[c] = struct{}{}
			s.mu.Unlock()
			s.wg.Go(func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return // includes a failed handshake: the alert went out
					}
					s.got.Add(1)
					if _, err := io.WriteString(c, "ACK "+line); err != nil {
						return
					}
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.conn {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

// tlsSend dials addr with cfg, sends msg and returns nil only once the
// server acknowledged it: at least once, as Do's contract asks.
func tlsSend(cfg *tls.Config, addr, msg string) func(context.Context) error {
	return func(ctx context.Context) error {
		d := tls.Dialer{Config: cfg}
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return err
		}
		defer c.Close()
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
		defer stop()
		if _, err := io.WriteString(c, msg+"\n"); err != nil {
			return err
		}
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if line != "ACK "+msg+"\n" {
			return fmt.Errorf("ack: got %q, want %q", line, "ACK "+msg)
		}
		return nil
	}
}

func certPool(t *testing.T, pemCerts ...[]byte) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	for _, c := range pemCerts {
		if !p.AppendCertsFromPEM(c) {
			t.Fatal("bad PEM")
		}
	}
	return p
}

// TestDoClientCertificateRejectedReturnsAtOnce: a server that does not
// accept the robot's client certificate (revoked, issued by another CA)
// answers with a TLS alert. Resending cannot help: Do returns at once,
// after one attempt, with the alert, classified Certificate.
func TestDoClientCertificateRejectedReturnsAtOnce(t *testing.T) {
	server := testcert.New(t, "server", "127.0.0.1")
	fleetCA := testcert.New(t, "fleet-ca")
	robot := testcert.New(t, "robot") // not issued by fleetCA
	scfg := server.Server.Clone()
	scfg.ClientAuth = tls.RequireAndVerifyClientCert
	scfg.ClientCAs = certPool(t, fleetCA.PEM)
	srv := startTLSAckServer(t, scfg)
	ccfg := &tls.Config{
		RootCAs: certPool(t, server.PEM),
		// Present it although the server asks for fleetCA's, as a robot
		// with a revoked or stale certificate does.
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &robot.Server.Certificates[0], nil
		},
	}

	var h hooks
	// MaxAttempts only keeps a regression from spinning until the
	// deadline; the Gate must stop after the first.
	g := mustNew(t, h.config(Config{Policy: Policy{MaxAttempts: 3}, Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}}))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	err := g.Sender().Do(ctx, tlsSend(ccfg, srv.ln.Addr().String(), "arm stopped"))
	var se *SendError
	if !errors.As(err, &se) {
		t.Fatalf("Do = %v, want a *SendError", err)
	}
	t.Logf("Do = %v", err)
	if se.Attempts != 1 || se.Class != classify.Certificate || se.Decision.Retry {
		t.Errorf("Do gave up after %d attempt(s), class %v, decision %+v; want 1 attempt, class certificate, no retry", se.Attempts, se.Class, se.Decision)
	}
	if !strings.Contains(err.Error(), "remote error: tls:") {
		t.Errorf("Do = %q, want the server's alert in it", err)
	}
	if n := srv.got.Load(); n != 0 {
		t.Errorf("the server accepted %d messages from a rejected client", n)
	}
}

// TestDoCertificateNotYetValidRetriedUntilTheClockIsSet: a robot without
// an RTC boots with its clock in the past, so the server's certificate is
// "not yet valid". While the clock is not synchronised ([Config.ClockSynced]
// says so), Do retries; once the clock is set, the certificate is accepted
// and the message delivered, once.
func TestDoCertificateNotYetValidRetriedUntilTheClockIsSet(t *testing.T) {
	server := testcert.New(t, "server", "127.0.0.1")
	srv := startTLSAckServer(t, server.Server)
	var clockSet atomic.Bool
	ccfg := &tls.Config{
		RootCAs: certPool(t, server.PEM),
		Time: func() time.Time {
			if clockSet.Load() {
				return time.Now()
			}
			return time.Date(1970, 1, 1, 0, 0, 12, 0, time.UTC) // just booted
		},
	}
	var decisions []Decision
	g := mustNew(t, Config{
		Backoff:     Backoff{Initial: time.Millisecond, Max: 5 * time.Millisecond},
		ClockSynced: clockSet.Load,
		OnError: func(a Attempt) {
			decisions = append(decisions, a.Decision)
			if a.N == 3 {
				clockSet.Store(true) // NTP answers
			}
		},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := g.Sender().DoCall(ctx, Call{}, tlsSend(ccfg, srv.ln.Addr().String(), "battery 12%"))
	if err != nil {
		t.Fatalf("Do = %v, want delivery once the clock is set", err)
	}
	if res.Attempts != 4 || len(decisions) != 3 {
		t.Fatalf("%d attempts, decisions %+v; want 3 failed attempts, then a delivery", res.Attempts, decisions)
	}
	for i, d := range decisions {
		if !d.Retry || d.Reason != ReasonClockUnsynchronized {
			t.Errorf("decision %d = %+v, want a retry for %q", i+1, d, ReasonClockUnsynchronized)
		}
	}
	if n := srv.got.Load(); n != 1 {
		t.Errorf("the server got %d messages, want 1", n)
	}
}

// TestDoHTTP503RetryAfter: an HTTP server answers 503 with Retry-After;
// the send says so with Retryable, and the next attempt waits that long.
func TestDoHTTP503RetryAfter(t *testing.T) {
	var (
		mu    sync.Mutex // guards times
		times []time.Time
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "draining", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "stored\n")
	}))
	defer srv.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}

	send := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/events", strings.NewReader("door open"))
		if err != nil {
			return Permanent(err)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return err // the answer is part of the acknowledgement
		}
		switch {
		case resp.StatusCode/100 == 2:
			return nil
		case resp.StatusCode == http.StatusServiceUnavailable, resp.StatusCode == http.StatusTooManyRequests:
			secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
			return Retryable(fmt.Errorf("POST %s: %s", req.URL, resp.Status), time.Duration(secs)*time.Second)
		}
		return Permanent(fmt.Errorf("POST %s: %s", req.URL, resp.Status))
	}
	var h hooks
	g := mustNew(t, h.config(Config{Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}}))
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	res, err := g.Sender().DoCall(ctx, Call{}, send)
	if err != nil {
		t.Fatalf("Do = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if res.Attempts != 2 || len(times) != 2 {
		t.Fatalf("%d attempts, %d requests; want 2", res.Attempts, len(times))
	}
	if d := h.errs[0].Decision; !d.Retry || d.After != time.Second || d.Reason != ReasonRetryAfter {
		t.Errorf("decision after the 503 = %+v, want a retry after 1s", d)
	}
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("the retry came %v after the 503, want no sooner than its Retry-After, 1s", gap)
	}
}

// TestDoProbeToADeadDestinationDoesNotHoldTheHealthyOnes: with
// Release.Probe, the oldest held call goes to a destination that refuses
// connections (a closed port on loopback); calls to a healthy TCP server
// wait behind it. The probe's failure passes the role on, a healthy call
// succeeds, and every healthy call is released and delivered while the
// call to the dead destination keeps retrying.
func TestDoProbeToADeadDestinationDoesNotHoldTheHealthyOnes(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // connections to it are refused from now on
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	const healthy = 5
	srv := startFlakyServer(t, ln, healthy)

	g := mustNew(t, Config{
		StartClosed: lost,
		Release:     Release{Probe: true},
		Backoff:     Backoff{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond},
	})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	deadCtx, stopDead := context.WithCancel(ctx)
	deadDone := make(chan error, 1)
	go func() {
		c := &ackClient{dial: dialTCP(deadAddr)}
		defer c.close()
		deadDone <- g.Sender().Do(deadCtx, func(ctx context.Context) error { return c.send(ctx, 999) })
	}()
	for g.Stats().HeldNow < 1 {
		if ctx.Err() != nil {
			t.Fatal("the call to the dead destination was never held")
		}
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	errs := make(chan error, healthy)
	for i := range healthy {
		wg.Go(func() {
			c := &ackClient{dial: dialTCP(ln.Addr().String())}
			defer c.close()
			if err := g.Sender().Do(ctx, func(ctx context.Context) error { return c.send(ctx, uint64(i)) }); err != nil {
				errs <- fmt.Errorf("healthy call %d: %w", i, err)
			}
		})
	}
	for g.Stats().HeldNow < 1+healthy {
		if ctx.Err() != nil {
			t.Fatalf("only %d calls held", g.Stats().HeldNow)
		}
		time.Sleep(time.Millisecond)
	}
	g.Open() // the oldest, the dead destination's call, probes first

	select {
	case <-srv.reach:
	case <-ctx.Done():
		t.Fatalf("the healthy calls were not delivered: %v; stats %+v", ctx.Err(), g.Stats())
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	select {
	case err := <-deadDone:
		t.Fatalf("the call to the dead destination ended (%v), want it retrying", err)
	default:
	}
	stopDead()
	if err := <-deadDone; !errors.Is(err, context.Canceled) || !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("dead destination's Do = %v, want canceled after refusals", err)
	}
}
