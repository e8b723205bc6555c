package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	stop()
	os.Exit(code)
}

// config is what the flags say.
type config struct {
	listen           string
	certFile         string
	keyFile          string
	window           int
	maxHoles         int
	forgetAfter      time.Duration
	maxEpochs        int
	readTimeout      time.Duration
	writeTimeout     time.Duration
	handshakeTimeout time.Duration
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("ackserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7000", "TCP `address` to listen on")
	fs.StringVar(&c.certFile, "tls-cert", "", "serve TLS with this PEM certificate `file` (needs --tls-key)")
	fs.StringVar(&c.keyFile, "tls-key", "", "PEM private key `file` for --tls-cert")
	fs.IntVar(&c.window, "window", 4096, "messages remembered out of order above each epoch's mark (rounded up to a multiple of 64)")
	fs.IntVar(&c.maxHoles, "max-holes", 4096, "most never-received numbers remembered below each epoch's mark; a message that would need more is not acknowledged")
	fs.DurationVar(&c.forgetAfter, "forget-after", 10*time.Minute, "forget an epoch (ID:EPOCH) idle this long; longer than a sender resends one message")
	fs.IntVar(&c.maxEpochs, "max-epochs", 100000, "most epochs remembered; past it the least recently used is forgotten")
	fs.DurationVar(&c.readTimeout, "read-timeout", 2*time.Minute, "close a connection that sends no line for this long")
	fs.DurationVar(&c.writeTimeout, "write-timeout", 10*time.Second, "close a connection whose peer does not take acknowledgements for this long")
	fs.DurationVar(&c.handshakeTimeout, "handshake-timeout", 10*time.Second, "close a TLS connection whose handshake takes longer")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ackserver [--listen ADDR] [--tls-cert FILE --tls-key FILE] [flags]\n\n"+
			"Acknowledges \"ID:EPOCH:N PAYLOAD\" lines with \"ACK ID:EPOCH:N\", de-duplicating per ID:EPOCH.\n"+
			"SIGTERM prints \"received N unique, D duplicates\"; SIGUSR1 resets every connection.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("ackserver: unexpected argument %q", fs.Arg(0))
	case (c.certFile == "") != (c.keyFile == ""):
		return c, errors.New("ackserver: --tls-cert and --tls-key go together")
	case c.window <= 0 || c.window > 1<<20:
		return c, fmt.Errorf("ackserver: --window is %d, want 1 to %d", c.window, 1<<20)
	case c.maxHoles < 0 || c.maxHoles > 1<<20:
		return c, fmt.Errorf("ackserver: --max-holes is %d, want 0 to %d", c.maxHoles, 1<<20)
	case c.maxEpochs <= 0:
		return c, fmt.Errorf("ackserver: --max-epochs is %d, want > 0", c.maxEpochs)
	case c.forgetAfter <= 0 || c.readTimeout <= 0 || c.writeTimeout <= 0 || c.handshakeTimeout <= 0:
		return c, errors.New("ackserver: --forget-after and the timeouts must be > 0")
	}
	return c, nil
}

// run is main without the exit: 0 after a clean stop (ctx ended), 1 on a
// runtime error, 2 on a usage error. ready, if not nil, receives the
// listening address (for tests).
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- net.Addr) int {
	cfg, err := parseFlags(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, err)
		fmt.Fprintln(stderr, "run 'ackserver -h' for usage")
		return 2
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()

	var tlsConf *tls.Config
	if cfg.certFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.certFile, cfg.keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "ackserver: load --tls-cert/--tls-key: %v\n", err)
			return 1
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", cfg.listen)
	if err != nil {
		fmt.Fprintf(stderr, "ackserver: %v\n", err)
		return 1
	}
	log.Info("listening", zap.Stringer("addr", ln.Addr()), zap.Bool("tls", tlsConf != nil),
		zap.Int("window", cfg.window), zap.Duration("forget-after", cfg.forgetAfter))
	if ready != nil {
		ready <- ln.Addr()
	}

	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	s := newServer(log, tlsConf, cfg)
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.serve(ln) }()
	forget := time.NewTicker(min(cfg.forgetAfter/4+time.Millisecond, time.Minute))
	defer forget.Stop()

	code := 0
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-usr1:
			n := s.resetAll()
			log.Info("reset every connection", zap.Int("connections", n))
		case now := <-forget.C:
			if n := s.forget(now); n > 0 {
				log.Info("forgot idle epochs", zap.Int("epochs", n), zap.Duration("idle", cfg.forgetAfter))
			}
		case err := <-serveErr:
			// Accept failed for good (not because we closed the listener).
			fmt.Fprintf(stderr, "ackserver: %v\n", err)
			code = 1
			break loop
		}
	}
	s.shutdown(ln)
	if code == 0 {
		<-serveErr
	}
	st := s.stats()
	if st.bad > 0 || st.refused > 0 || st.unverified > 0 {
		log.Warn("not every line was an acknowledged message",
			zap.Uint64("malformed", st.bad), zap.Uint64("refused-ahead", st.refused), zap.Uint64("unverified", st.unverified))
	}
	fmt.Fprintf(stdout, "received %d unique, %d duplicates\n", st.unique, st.dups)
	return code
}

// newLogger logs human-readable lines to w (standard error).
func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel)).Named("ackserver")
}

// stats are the server's counters.
type stats struct {
	unique     uint64 // first copies, over every sender and epoch (unverified included)
	dups       uint64 // copies seen before
	unverified uint64 // below a resumed epoch's mark: counted in unique (see epochs)
	refused    uint64 // too far ahead: not acknowledged
	bad        uint64 // malformed lines, answered with ERR
	accepts    uint64 // connections accepted
	acceptErrs uint64 // failed accepts (each followed by a backoff)
	handlers   int    // connections being served now
	epochs     int    // epochs remembered
	epochBytes int    // bytes their windows and holes take
}

// server counts the messages received on every connection. Connections
// are served concurrently: a sender may redial before the server has seen
// its previous connection close.
type server struct {
	log *zap.Logger
	tls *tls.Config
	cfg config

	wg   sync.WaitGroup // one per connection handler
	quit chan struct{}  // closed by shutdown: ends an accept backoff

	mu     sync.Mutex // guards the fields below
	seen   *epochs
	st     stats
	conns  map[*net.TCPConn]struct{} // open connections, for resetAll and shutdown
	closed bool
}

func newServer(log *zap.Logger, tlsConf *tls.Config, cfg config) *server {
	return &server{
		log: log, tls: tlsConf, cfg: cfg, quit: make(chan struct{}),
		seen:  newEpochs(cfg.window, cfg.maxHoles, cfg.forgetAfter, cfg.maxEpochs),
		conns: map[*net.TCPConn]struct{}{},
	}
}

// Accept backoff, as net/http's Server.Serve: 5 ms doubling to 1 s.
const (
	acceptDelayMin = 5 * time.Millisecond
	acceptDelayMax = time.Second
)

// serve accepts connections until ln is closed; it returns nil then, or
// the error that stopped it. An accept that fails for want of a resource
// (EMFILE, ENFILE, ENOBUFS, ENOMEM) or a peer that gave up is retried after
// a backoff, so that running out of descriptors does not become a busy loop.
func (s *server) serve(ln net.Listener) error {
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			if !temporaryAccept(err) {
				return fmt.Errorf("ackserver: accept: %w", err)
			}
			delay = min(max(2*delay, acceptDelayMin), acceptDelayMax)
			s.mu.Lock()
			s.st.acceptErrs++
			s.mu.Unlock()
			s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("in", delay))
			t := time.NewTimer(delay)
			select {
			case <-t.C:
			case <-s.quit:
				t.Stop()
				return nil
			}
			continue
		}
		delay = 0
		tc, ok := c.(*net.TCPConn)
		if !ok {
			_ = c.Close()
			continue
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			_ = c.Close()
			continue
		}
		s.conns[tc] = struct{}{}
		s.st.accepts++
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.drop(tc)
			err := s.handle(tc)
			s.log.Debug("connection ended", zap.Stringer("peer", tc.RemoteAddr()), zap.Error(err))
		}()
	}
}

// temporaryAccept reports whether an accept error is worth retrying.
func temporaryAccept(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED, syscall.EPROTO} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// drop closes c and removes it from the open set.
func (s *server) drop(c *net.TCPConn) {
	_ = c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// maxLine is the longest line taken: a 4 KiB payload and the longest SEQ
// fit. A longer line ends the connection.
const maxLine = 8 << 10

// handle serves one connection: the TLS handshake within
// --handshake-timeout, then lines, each within --read-timeout of the last,
// and their answers, each written within --write-timeout. A peer that
// vanishes (half-open: no FIN, no RST) is let go at the first deadline.
// Answers are buffered and flushed whenever no further input is already
// buffered, so a burst of messages costs one write, not one per message.
func (s *server) handle(c *net.TCPConn) error {
	var rw net.Conn = c
	if s.tls != nil {
		tc := tls.Server(c, s.tls)
		_ = c.SetDeadline(time.Now().Add(s.cfg.handshakeTimeout))
		if err := tc.Handshake(); err != nil {
			return err
		}
		_ = c.SetDeadline(time.Time{})
		rw = tc
	}
	r := bufio.NewReaderSize(rw, maxLine)
	w := bufio.NewWriterSize(rw, 4<<10)
	var out []byte
	badLogged, aheadLogged := false, false // log once per connection: a confused peer sends many
	for {
		if r.Buffered() == 0 {
			if w.Buffered() > 0 {
				_ = rw.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout))
				if err := w.Flush(); err != nil {
					return err
				}
			}
			_ = rw.SetReadDeadline(time.Now().Add(s.cfg.readTimeout))
		}
		line, err := r.ReadSlice('\n')
		if err != nil {
			if errors.Is(err, bufio.ErrBufferFull) {
				// A line longer than the buffer is not ours; give up on
				// the connection rather than guess where the next begins.
				return fmt.Errorf("ackserver: line longer than %d bytes", r.Size())
			}
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		out = out[:0]
		seq, _, perr := wire.ParseMessage(line)
		if perr != nil {
			s.mu.Lock()
			s.st.bad++
			s.mu.Unlock()
			if !badLogged {
				badLogged = true
				s.log.Warn("malformed line answered with ERR", zap.Stringer("peer", c.RemoteAddr()), zap.Error(perr))
			}
			out = wire.AppendErr(out, perr.Error())
		} else if s.record(seq) == ahead {
			if !aheadLogged {
				aheadLogged = true
				s.log.Warn("message too far ahead: not acknowledged, the sender must resend it", zap.Stringer("seq", seq))
			}
		} else {
			out = wire.AppendAck(out, seq)
		}
		if w.Available() < len(out) {
			_ = rw.SetWriteDeadline(time.Now().Add(s.cfg.writeTimeout)) // this write flushes
		}
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
}

// record judges seq and counts it.
func (s *server) record(seq wire.Seq) verdict {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.seen.record(seq, time.Now())
	switch v {
	case unique:
		s.st.unique++
	case unverified:
		s.st.unique++
		s.st.unverified++
	case duplicate:
		s.st.dups++
	case ahead:
		s.st.refused++
	}
	return v
}

// forget drops the epochs idle for --forget-after at now.
func (s *server) forget(now time.Time) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.seen.forget(now)
}

// resetAll resets every open connection: SO_LINGER 0 makes close send a
// TCP RST instead of a FIN, as when a server process dies. It returns how
// many it reset.
func (s *server) resetAll() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		_ = c.SetLinger(0)
		_ = c.Close()
	}
	return len(s.conns)
}

// shutdown closes ln and every connection and waits for their handlers.
func (s *server) shutdown(ln net.Listener) {
	s.mu.Lock()
	if !s.closed {
		close(s.quit)
	}
	s.closed = true
	_ = ln.Close()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// stats returns the counters.
func (s *server) stats() stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.st
	st.handlers = len(s.conns)
	st.epochs, st.epochBytes = s.seen.size()
	return st
}
