package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/gate"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"golang.org/x/sync/errgroup"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is main without the exit: 0 when the send succeeded, 1 when it
// failed and was reported, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("errorreport", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "192.0.2.1:7000", "send one telemetry line to this TCP `host:port`")
	hold := fs.Duration("hold", 5*time.Second, "hold the send at most this long while the network is down")
	timeout := fs.Duration("timeout", 3*time.Second, "give up the connection attempt after this long")
	iface := fs.String("iface", "", "watch only interfaces matching this `glob` (default: all but loopback)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || *hold <= 0 || *timeout <= 0 {
		fmt.Fprintln(stderr, "errorreport: --hold and --timeout must be > 0, and no arguments are taken")
		return 2
	}

	// An error reporter writes machine-readable lines: JSON, as zap's
	// production preset does, on standard error.
	log := zap.New(zapcore.NewCore(zapcore.NewJSONEncoder(zap.NewProductionEncoderConfig()),
		zapcore.AddSync(stderr), zapcore.InfoLevel))
	defer func() { _ = log.Sync() }()

	opts := netmon.Options{Logger: log.Named("netmon"), SockErrors: "off"}
	if *iface != "" {
		opts.Interfaces = []string{*iface}
	}
	m, err := netmon.New(opts)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	g, gctx := errgroup.WithContext(mctx)
	events := m.Events()
	baseline := make(chan struct{})
	g.Go(func() error {
		// The first event is the baseline: after it, the snapshot
		// describes the network rather than "starting". The channel must
		// be drained until Run closes it.
		first := true
		for range events {
			if first {
				close(baseline)
				first = false
			}
		}
		return nil
	})
	g.Go(func() error {
		if err := m.Run(gctx); gctx.Err() == nil {
			return err
		}
		return nil
	})

	code := 1
	select {
	case <-baseline:
		code = sendAndReport(ctx, m, log, stdout, *addr, *hold, *timeout)
	case <-gctx.Done():
	}
	stopMonitor()
	if err := g.Wait(); err != nil {
		fmt.Fprintf(stderr, "errorreport: monitor: %v\n", err)
		return 1
	}
	return code
}

// sendAndReport makes one send through the Gate and, if it fails, writes
// the error report.
func sendAndReport(ctx context.Context, m *netmon.Monitor, log *zap.Logger, stdout io.Writer, addr string, hold, timeout time.Duration) int {
	err := m.Gate().With(gate.Policy{MaxHold: hold}).Wait(ctx)
	if err == nil {
		err = send(ctx, addr, timeout)
		if err == nil {
			// Tell the Monitor too: a success with its destination says the
			// path works (and, during a send-errors verdict, a Wait may
			// have been its half-open trial: this reopens the Gate).
			var dst netip.Addr
			if ap, perr := netip.ParseAddrPort(addr); perr == nil {
				dst = ap.Addr()
			}
			m.ReportSuccessTo(dst)
			fmt.Fprintln(stdout, "sent")
			return 0
		}
		// Tell the Monitor: it counts the failure, correlates it with the
		// network's timeline and says what it makes of it. (A sender using
		// Gate.Do need not: Do reports every failed attempt itself.)
		ex := m.Report(err)
		err = m.Annotate(fmt.Errorf("send telemetry: %w", err))
		log.Error("telemetry send failed", zap.Error(err),
			zap.Object("explanation", ex), zap.Object("net", m.Snapshot()),
			zap.Bool("unreachable", errors.Is(err, syscall.ENETUNREACH)))
	} else {
		// Held too long: the network stayed down. The gate's error says why
		// and for how long; the snapshot says the rest.
		err = m.Annotate(fmt.Errorf("send telemetry: %w", err))
		log.Error("telemetry send held too long", zap.Error(err), zap.Object("net", m.Snapshot()))
	}
	fmt.Fprintln(stdout, err)
	return 1
}

// send writes one telemetry line to addr.
func send(ctx context.Context, addr string, timeout time.Duration) error {
	d := net.Dialer{Timeout: timeout}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetWriteDeadline(time.Now().Add(timeout))
	_, err = c.Write([]byte("1 battery=41% temp=38C\n"))
	return err
}
