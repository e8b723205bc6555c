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
	"strconv"
	"sync"
	"syscall"

	"github.com/seed-a56be422/netmon/examples/internal/wire"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the exit, so that the flag handling can be read in
// one place: 0 after a clean stop, 1 on a runtime error, 2 on a usage error.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ackserver", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:7000", "TCP `address` to listen on")
	certFile := fs.String("tls-cert", "", "serve TLS with this PEM certificate `file` (needs --tls-key)")
	keyFile := fs.String("tls-key", "", "PEM private key `file` for --tls-cert")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: ackserver [--listen ADDR] [--tls-cert FILE --tls-key FILE]\n\n"+
			"Acknowledges \"SEQ PAYLOAD\" lines with \"ACK SEQ\", de-duplicating by SEQ.\n"+
			"SIGTERM prints \"received N unique, D duplicates\"; SIGUSR1 resets every connection.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || (*certFile == "") != (*keyFile == "") {
		fmt.Fprintln(stderr, "ackserver: --tls-cert and --tls-key go together, and no arguments are taken")
		fs.Usage()
		return 2
	}
	log := newLogger(stderr)
	defer func() { _ = log.Sync() }()

	var tlsConf *tls.Config
	if *certFile != "" {
		cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
		if err != nil {
			fmt.Fprintf(stderr, "ackserver: load --tls-cert/--tls-key: %v\n", err)
			return 1
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(stderr, "ackserver: %v\n", err)
		return 1
	}
	log.Info("listening", zap.Stringer("addr", ln.Addr()), zap.Bool("tls", tlsConf != nil))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	usr1 := make(chan os.Signal, 1)
	signal.Notify(usr1, syscall.SIGUSR1)
	defer signal.Stop(usr1)

	s := newServer(log, tlsConf)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-usr1:
				n := s.resetAll()
				log.Info("reset every connection", zap.Int("connections", n))
			}
		}
	}()
	serveErr := make(chan error, 1)
	go func() { serveErr <- s.serve(ln) }()

	code := 0
	select {
	case <-ctx.Done():
	case err := <-serveErr:
		// Accept failed for good (not because we closed the listener).
		fmt.Fprintf(stderr, "ackserver: %v\n", err)
		code = 1
	}
	stop()
	<-done
	_ = ln.Close()
	s.shutdown()
	unique, dups, bad := s.counts()
	if bad > 0 {
		log.Warn("malformed lines ignored", zap.Uint64("lines", bad))
	}
	fmt.Fprintf(stdout, "received %d unique, %d duplicates\n", unique, dups)
	return code
}

// newLogger logs human-readable lines to w (standard error).
func newLogger(w io.Writer) *zap.Logger {
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	return zap.New(zapcore.NewCore(enc, zapcore.AddSync(w), zapcore.InfoLevel)).Named("ackserver")
}

// server counts the messages received on every connection. Connections
// are served concurrently: a sender may redial before the server has seen
// its previous connection close.
type server struct {
	log *zap.Logger
	tls *tls.Config

	wg sync.WaitGroup // one per connection handler

	mu     sync.Mutex // guards the fields below
	seen   map[uint64]struct{}
	dups   uint64
	bad    uint64
	conns  map[*net.TCPConn]struct{} // open connections, for resetAll and shutdown
	closed bool
}

func newServer(log *zap.Logger, tlsConf *tls.Config) *server {
	return &server{log: log, tls: tlsConf, seen: map[uint64]struct{}{}, conns: map[*net.TCPConn]struct{}{}}
}

// serve accepts connections until ln is closed; it returns nil then, or
// the error that stopped it.
func (s *server) serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			if errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EMFILE) {
				// A peer gave up before accept, or we are briefly out of
				// descriptors: neither ends the server.
				s.log.Warn("accept", zap.Error(err))
				continue
			}
			return fmt.Errorf("ackserver: accept: %w", err)
		}
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
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			defer s.forget(tc)
			var rw io.ReadWriter = tc
			if s.tls != nil {
				rw = tls.Server(tc, s.tls)
			}
			err := s.handle(rw)
			s.log.Debug("connection ended", zap.Stringer("peer", tc.RemoteAddr()), zap.Error(err))
		}()
	}
}

// forget closes c and drops it from the open set.
func (s *server) forget(c *net.TCPConn) {
	_ = c.Close()
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// handle reads lines from rw and acknowledges each well-formed one. It
// returns when the connection fails or the peer closes it. Acks are
// buffered and flushed whenever no further input is already buffered, so
// a burst of messages costs one write, not one per message.
func (s *server) handle(rw io.ReadWriter) error {
	r := bufio.NewReaderSize(rw, 64<<10)
	w := bufio.NewWriterSize(rw, 16<<10)
	for {
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
		seq, ok := wire.ParseMessage(line)
		if !ok {
			s.mu.Lock()
			s.bad++
			s.mu.Unlock()
			continue
		}
		s.record(seq)
		w.WriteString("ACK ")
		w.Write(strconv.AppendUint(nil, seq, 10))
		w.WriteByte('\n')
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return err
			}
		}
	}
}

// record counts seq as unique or as a duplicate.
func (s *server) record(seq uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.seen[seq]; ok {
		s.dups++
		return
	}
	s.seen[seq] = struct{}{}
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

// shutdown closes every connection and waits for their handlers.
func (s *server) shutdown() {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// counts returns the unique and duplicate messages and the malformed lines.
func (s *server) counts() (unique, dups, bad uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return uint64(len(s.seen)), s.dups, s.bad
}
