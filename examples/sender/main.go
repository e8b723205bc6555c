package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/examples/internal/wire"
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

// multiFlag is a repeatable string flag (--iface a --iface b).
type multiFlag []string

func (f *multiFlag) String() string     { return strings.Join(*f, ",") }
func (f *multiFlag) Set(v string) error { *f = append(*f, v); return nil }

// parseFlags turns the command line into a config, or an error that is
// flag.ErrHelp or says which flag is wrong.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	var ifaces multiFlag
	fs := flag.NewFlagSet("sender", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.addr, "addr", "", "ackserver `host:port` (required)")
	fs.StringVar(&c.id, "id", "", "this sender's `ID` in every message: 1-64 of A-Z a-z 0-9 . _ - (default: the host name)")
	fs.IntVar(&c.count, "count", 0, "number of messages to send, numbered from 1 (required, > 0)")
	fs.Float64Var(&c.rate, "rate", 0, "at most this many messages per `second`; 0 means as fast as acknowledgements allow")
	fs.IntVar(&c.window, "window", 256, "most unacknowledged messages on one connection")
	fs.IntVar(&c.payload, "payload", 32, "payload `bytes` per message")
	fs.BoolVar(&c.tls, "tls", false, "connect with TLS")
	fs.StringVar(&c.caFile, "ca", "", "with --tls, trust the CA certificates in this PEM `file` instead of the system's")
	fs.StringVar(&c.serverName, "server-name", "", "with --tls, the `name` to verify (default: the host of --addr)")
	fs.DurationVar(&c.dialTimeout, "dial-timeout", 5*time.Second, "give up one connection attempt after this long")
	fs.DurationVar(&c.ackTimeout, "ack-timeout", 5*time.Second, "redial when no acknowledgement arrives for this long while messages are outstanding")
	fs.StringVar(&c.outbox, "outbox", "", "append every message to a durable outbox in this `directory` before sending it; a restart with the same flags resumes (see the package doc)")
	fs.BoolVar(&c.monitor, "monitor", true, "drive the Gate from a netmon Monitor of this network namespace (false: a Gate that never closes)")
	fs.Var(&ifaces, "iface", "watch only interfaces matching this `glob` (repeatable; default all but loopback)")
	level := fs.String("log-level", "info", "log `level` on standard error: debug, info, warn, error")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: sender --addr HOST:PORT --count N [--id ID] [--rate R] [--tls] [flags]\n\n"+
			"Sends N messages ID:EPOCH:1 to ID:EPOCH:N (EPOCH random, new every run) to ackserver through\n"+
			"netmon's Gate and exits 0 once every one is acknowledged, printing\n"+
			"\"sent N, acked N, resent K, held T, dial-failures F\".\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.ifaces = ifaces
	var err error
	if c.level, err = zapcore.ParseLevel(*level); err != nil {
		return c, fmt.Errorf("sender: --log-level: %w", err)
	}
	if c.id == "" {
		host, _ := os.Hostname()
		c.id = wire.SafeID(host)
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("sender: unexpected argument %q", fs.Arg(0))
	case c.addr == "":
		return c, errors.New("sender: --addr is required")
	case wire.ValidID(c.id) != nil:
		return c, fmt.Errorf("sender: --id %q: want 1 to %d bytes of A-Z a-z 0-9 . _ -", c.id, wire.MaxIDLen)
	case c.count <= 0:
		return c, fmt.Errorf("sender: --count is %d, want > 0", c.count)
	case c.rate < 0:
		return c, fmt.Errorf("sender: --rate is %v, want >= 0", c.rate)
	case c.window <= 0:
		return c, fmt.Errorf("sender: --window is %d, want > 0", c.window)
	case c.payload < 0 || c.payload > 4096:
		return c, fmt.Errorf("sender: --payload is %d, want 0 to 4096", c.payload)
	case c.dialTimeout <= 0:
		return c, fmt.Errorf("sender: --dial-timeout is %v, want > 0", c.dialTimeout)
	case c.ackTimeout <= 0:
		return c, fmt.Errorf("sender: --ack-timeout is %v, want > 0", c.ackTimeout)
	case !c.tls && (c.caFile != "" || c.serverName != ""):
		return c, errors.New("sender: --ca and --server-name need --tls")
	}
	return c, nil
}

// run is main without the exit: 0 when every message was acknowledged, 1
// when the sender stopped before, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "run 'sender -h' for usage")
		return 2
	}
	log := zap.New(zapcore.NewCore(
		zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(stderr), cfg.level)).Named("sender")
	defer func() { _ = log.Sync() }()

	if cfg.tls {
		if cfg.tlsConf, err = tlsConfig(cfg); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
	}
	s := newSender(cfg, log)
	if cfg.outbox != "" {
		if s.box, err = s.openOutbox(); err != nil {
			fmt.Fprintln(stderr, err)
			return 1
		}
		defer s.box.Close()
		s.cfg.epoch = s.box.Epoch()
	} else if s.cfg.epoch, err = newEpoch(); err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	first, last := s.seq(1), s.seq(cfg.count)
	fmt.Fprintf(stdout, "sending %s to %s\n", first, last)
	if s.box != nil {
		st := s.box.Stats()
		fmt.Fprintf(stdout, "outbox %s: %d pending, next %d\n", cfg.outbox, st.Records, s.box.Last()+1)
	}
	err = s.runWithMonitor(ctx)
	fmt.Fprintln(stdout, s.summary())
	if err != nil {
		log.Error("stopped before every message was acknowledged", zap.Error(err))
		return 1
	}
	return 0
}

// newEpoch returns a random EPOCH, from 1. Random rather than the clock:
// a robot without a real-time clock may boot twice at the same time.
func newEpoch() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("sender: epoch: %w", err)
		}
		if e := binary.LittleEndian.Uint64(b[:]); e != 0 {
			return e, nil
		}
	}
}

// runWithMonitor starts the Monitor (unless --monitor=false), delivers
// every message through its Gate and stops the Monitor again. It returns
// only after the Monitor's goroutines have ended.
func (s *sender) runWithMonitor(ctx context.Context) error {
	if !s.cfg.monitor {
		g, err := gate.New(gate.Config{})
		if err != nil {
			return err
		}
		s.g = g.Sender()
		return s.deliverAll(ctx)
	}
	m, err := netmon.New(netmon.Options{
		Logger:     s.log.Named("netmon"),
		Interfaces: s.cfg.ifaces,
		// The sender reports its own errors; it does not need eBPF to see
		// them, nor the privileges eBPF needs.
		SockErrors: "off",
	})
	if err != nil {
		return err
	}
	s.g, s.report, s.rebindC = m.Gate(), func(err error) { m.Report(err) }, m.RebindC
	s.success = m.ReportSuccessTo
	s.lastRebind = m.LastRebind

	mctx, stopMonitor := context.WithCancel(ctx)
	defer stopMonitor()
	g, gctx := errgroup.WithContext(mctx)
	events := m.Events()
	g.Go(func() error {
		// Log the Monitor's view, so that a run's log explains its
		// reconnects. The channel must be drained until Run closes it.
		for ev := range events {
			switch ev.Kind {
			case netmon.EventBaseline, netmon.EventState, netmon.EventRebind, netmon.EventFlap, netmon.EventGap, netmon.EventNotice:
				s.log.Info(ev.Msg, zap.Inline(ev))
			default:
				s.log.Debug(ev.Msg, zap.Inline(ev))
			}
		}
		return nil
	})
	g.Go(func() error {
		err := m.Run(gctx)
		if gctx.Err() != nil {
			return nil // stopped because delivery ended or the signal came
		}
		return err
	})
	var derr error
	g.Go(func() error {
		derr = s.deliverAll(gctx)
		stopMonitor()
		return nil
	})
	if err := g.Wait(); err != nil {
		return fmt.Errorf("sender: monitor: %w", err)
	}
	if derr != nil && ctx.Err() != nil {
		return fmt.Errorf("sender: interrupted: %w", derr)
	}
	return derr
}

// deliverAll delivers every message, from the outbox with --outbox.
func (s *sender) deliverAll(ctx context.Context) error {
	if s.box != nil {
		return s.deliverOutbox(ctx, s.box)
	}
	return s.deliver(ctx)
}

// tlsConfig builds the client's TLS configuration from the flags.
func tlsConfig(c config) (*tls.Config, error) {
	conf := &tls.Config{ServerName: c.serverName, MinVersion: tls.VersionTLS12}
	if c.caFile != "" {
		pem, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("sender: --ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("sender: --ca %s: no PEM certificate found", c.caFile)
		}
		conf.RootCAs = pool
	}
	return conf, nil
}
