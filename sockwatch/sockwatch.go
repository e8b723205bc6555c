package sockwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"go.uber.org/zap"
)

// Errors a caller can branch on with errors.Is. The error returned by [New]
// wraps one of them and says, in its text, exactly what is missing.
var (
	// ErrNotSupported means this system cannot run sockwatch at all: not
	// Linux, no kernel BTF, no BPF ring buffer, or a missing tracepoint.
	// It is cilium/ebpf's sentinel, so feature probes from that library
	// match it too.
	ErrNotSupported = ebpf.ErrNotSupported

	// ErrPermission means the kernel refused to load or attach the
	// programs: the process lacks CAP_BPF or CAP_PERFMON (or root), or a
	// lockdown or LSM policy forbids BPF tracing.
	ErrPermission = errors.New("sockwatch: permission denied")

	// ErrClosed is returned by [Watcher.Run] after [Watcher.Close], and when
	// Run is called a second time.
	ErrClosed = net.ErrClosed
)

// DefaultRingBufferSize is the ring buffer size used when
// [Config.RingBufferSize] is 0: 256 KiB holds about 2,900 events, enough
// for a burst of a few hundred failing senders while the reader catches up.
const DefaultRingBufferSize = 256 << 10

// Config configures a [Watcher]. The zero value is valid: asynchronous
// socket errors of every process, the default errno set, a 256 KiB ring
// buffer, no logging.
type Config struct {
	// RingBufferSize is the size in bytes of the BPF ring buffer between
	// the kernel and [Watcher.Run]. It must be a power of two and a
	// multiple of the page size. 0 means [DefaultRingBufferSize]. When the
	// buffer is full the kernel drops the event and counts it in
	// [Stats.Dropped]; nothing is lost silently.
	RingBufferSize int

	// Comms limits events to processes whose name (the kernel's comm, at
	// most 15 bytes, as in /proc/PID/comm) is one of these. The filter runs
	// in the kernel, so other processes cost no ring-buffer space. nil
	// means every process. For asynchronous errors the name is the one the
	// connecting thread had when it called connect.
	Comms []string

	// Cgroups limits events to processes in one of these cgroups, given by
	// cgroup v2 ID: the inode number of the cgroup directory (stat -c %i
	// /sys/fs/cgroup/system.slice/robot.service), which is what
	// bpf_get_current_cgroup_id returns and [Event.Cgroup] holds. A
	// process matches only the cgroup it is in itself, not the cgroups
	// above it: name the leaf (the service, the container's scope). For
	// asynchronous errors the cgroup is the one the connecting thread was
	// in when it called connect; events whose cgroup is unknown (PID 0)
	// never match. nil means every cgroup; 0 is not a valid entry.
	//
	// Unlike Comms, this filter runs in user space, in [Watcher.Run],
	// before an event is delivered: events it rejects are counted in
	// [Stats.Filtered], and they do use ring-buffer space.
	Cgroups []uint64

	// Destinations limits events to those whose destination is in one of
	// these prefixes (a single host is a /32 or /128). An IPv4-mapped
	// IPv6 destination (::ffff:10.0.0.5) is matched as the IPv4 address it
	// carries. Events without a destination (a send on a connected socket
	// with syscall tracing) never match. nil or empty means every
	// destination. Like Cgroups, it runs in user space and what it rejects
	// is counted in [Stats.Filtered]. When both are set an event must
	// match both.
	Destinations []netip.Prefix

	// SyscallTracing also attaches a program to the raw tracepoint
	// sys_exit that reports failed connect(2), sendto(2) and sendmsg(2):
	// synchronous failures such as ENETUNREACH when no route matches, or a
	// UDP sendto to an unreachable network. Without it only asynchronous
	// errors (sock:inet_sk_error_report) are seen. It costs every syscall
	// of every process on the machine about 78 ns (measured), because the kernel takes
	// the slow syscall path for all tasks once any syscall tracepoint is
	// enabled; that is why it is off by default.
	SyscallTracing bool

	// Errnos is the set of errors reported. nil means [DefaultErrnos].
	// Values must be between 1 and 4095 (the kernel's error range).
	// EINPROGRESS is never reported: it is how a non-blocking connect
	// starts, not a failure.
	Errnos []syscall.Errno

	// Logger receives one line when the watcher attaches and one when it
	// detaches, with the event and drop counts (overflow while running is
	// in [Watcher.Stats]). nil means zap.NewNop().
	Logger *zap.Logger
}

// DefaultErrnos returns the errnos reported when [Config.Errnos] is nil:
// the errors a sender sees when the network path, rather than the
// application, failed.
func DefaultErrnos() []syscall.Errno {
	return []syscall.Errno{
		syscall.ENETUNREACH, syscall.EHOSTUNREACH, syscall.ENETDOWN,
		syscall.EHOSTDOWN, errENONET, syscall.EADDRNOTAVAIL,
		syscall.ECONNREFUSED, syscall.ECONNRESET, syscall.ECONNABORTED,
		syscall.ETIMEDOUT, syscall.ENETRESET,
	}
}

// commLen is the size of the kernel's task comm, NUL included
// (TASK_COMM_LEN).
const commLen = 16

// maxErrnos bounds Config.Errnos. The programs test a bitmap, so the
// length costs nothing there; the bound keeps the error for a runaway
// list clear.
const maxErrnos = 64

// Validate reports whether [New] would accept cfg, without loading
// anything: a command line can check its flags at parse time. The error
// names the field and what would be valid.
func (cfg Config) Validate() error {
	_, err := cfg.validate()
	return err
}

// validate checks cfg and returns a copy with defaults filled in.
func (cfg Config) validate() (Config, error) {
	if cfg.RingBufferSize == 0 {
		cfg.RingBufferSize = DefaultRingBufferSize
	}
	if n := cfg.RingBufferSize; n < 4096 || n&(n-1) != 0 {
		return cfg, fmt.Errorf("sockwatch: Config.RingBufferSize %d: want 0 or a power of two >= 4096", n)
	}
	if cfg.Errnos == nil {
		cfg.Errnos = DefaultErrnos()
	}
	if len(cfg.Errnos) == 0 || len(cfg.Errnos) > maxErrnos {
		return cfg, fmt.Errorf("sockwatch: Config.Errnos has %d entries: want nil or 1 to %d", len(cfg.Errnos), maxErrnos)
	}
	for _, e := range cfg.Errnos {
		if e < 1 || e > 4095 || e == syscall.EINPROGRESS {
			return cfg, fmt.Errorf("sockwatch: Config.Errnos contains %d: want 1 to 4095, not EINPROGRESS", int(e))
		}
	}
	for _, c := range cfg.Comms {
		if c == "" || len(c) > commLen-1 {
			return cfg, fmt.Errorf("sockwatch: Config.Comms entry %q: want 1 to %d bytes", c, commLen-1)
		}
	}
	dsts, err := validateFilter(cfg)
	if err != nil {
		return cfg, err
	}
	cfg.Destinations = dsts
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	return cfg, nil
}

// Op is the operation that failed.
type Op uint8

// The operations sockwatch observes.
const (
	// OpUnknown is never produced by the kernel programs; it marks a
	// record from a newer program version.
	OpUnknown Op = iota
	// OpConnect is a connect(2) that returned an error.
	OpConnect
	// OpSendto is a sendto(2) (also send(2), which libc implements with
	// sendto) that returned an error.
	OpSendto
	// OpSendmsg is a sendmsg(2) that returned an error.
	OpSendmsg
	// OpAsync is an error the kernel stored on a socket after the call
	// that caused it returned: a refused or timed-out non-blocking
	// connect, a reset, an ICMP unreachable. Applications see it later
	// from getsockopt(SO_ERROR), recv or the next send.
	OpAsync
)

var opNames = [...]string{"unknown", "connect", "sendto", "sendmsg", "async"}

// String returns the lower-case name of the operation ("connect").
func (o Op) String() string {
	if int(o) < len(opNames) {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Event is one failed socket operation of some process on the machine.
type Event struct {
	// Time is when the error happened, converted from the kernel's
	// monotonic clock with the wall clock as [Watcher.Run] read it when it
	// read the event (again for each batch), so a wall-clock step dates
	// the events after it by the new clock.
	Time time.Time
	// Mono is the same instant on CLOCK_MONOTONIC, for correlating with
	// other kernel timestamps without wall-clock jumps.
	Mono time.Duration
	// PID is the process ID (the kernel's tgid, what ps shows). It is 0
	// when the owner of the socket is unknown: an asynchronous error on a
	// socket that was not connected by connect(2) while sockwatch ran
	// (accepted TCP sockets, connected UDP sockets).
	PID uint32
	// TID is the thread ID (the kernel's pid) of the thread that failed.
	TID uint32
	// Comm is the thread's name, as in /proc/PID/task/TID/comm.
	Comm string
	// Errno is the error the operation failed with.
	Errno syscall.Errno
	// Op is the operation that failed.
	Op Op
	// Protocol is the IP protocol (6 TCP, 17 UDP) of an [OpAsync] event,
	// and 0 for the others, whose syscall arguments do not carry it.
	Protocol uint16
	// Dst is the destination. It is invalid (the zero AddrPort) when the
	// call named none (send on a connected socket) or the address family
	// is not IPv4 or IPv6.
	Dst netip.AddrPort
	// NetNS is the inode number of the network namespace, as in
	// readlink /proc/PID/ns/net ("net:[4026531840]"); 0 if unknown.
	NetNS uint32
	// Cgroup is the cgroup v2 ID of the process (the inode number of its
	// cgroup directory); 0 if unknown.
	Cgroup uint64
}

// Err returns the failure as an error that names the operation and the
// destination, so that classify.Classify and errors.Is(err, syscall.X)
// work on it like on an error the application itself saw.
func (e Event) Err() error {
	network := "ip"
	switch e.Protocol {
	case syscall.IPPROTO_TCP:
		network = "tcp"
	case syscall.IPPROTO_UDP:
		network = "udp"
	}
	var addr net.Addr
	if e.Dst.IsValid() {
		if network == "udp" {
			addr = net.UDPAddrFromAddrPort(e.Dst)
		} else {
			addr = net.TCPAddrFromAddrPort(e.Dst)
		}
	}
	return &net.OpError{Op: e.Op.String(), Net: network, Addr: addr, Err: e.Errno}
}

// Stats counts what a [Watcher] saw since [New].
type Stats struct {
	// Events is the number of events delivered on [Watcher.Events].
	Events uint64
	// Dropped is the number of events the kernel could not queue because
	// the ring buffer was full. Events + Filtered + Dropped is every
	// failure that passed the in-kernel filters ([Config.Errnos] and
	// [Config.Comms]).
	Dropped uint64
	// Filtered is the number of events read from the ring buffer and not
	// delivered because they did not match [Config.Cgroups] or
	// [Config.Destinations].
	Filtered uint64
	// Malformed is the number of ring-buffer records that could not be
	// decoded (a bug, never expected).
	Malformed uint64
}

// Watcher observes failed socket operations system-wide with eBPF. Create
// one with [New], call [Watcher.Run] once, read [Watcher.Events] until it is
// closed. All methods are safe for concurrent use.
type Watcher struct {
	w *watcher
}

var _ io.Closer = (*Watcher)(nil)

// New loads the BPF programs and attaches them to their tracepoints. On a
// system that cannot run them it returns an error wrapping
// [ErrNotSupported]; without the needed privileges an error wrapping
// [ErrPermission] that names the missing capabilities. Either way nothing
// stays loaded. Loading needs a few MB of heap for the kernel's BTF, which
// New returns to the operating system (debug.FreeOSMemory) before it
// returns.
func New(cfg Config) (*Watcher, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	w, err := newWatcher(cfg)
	if err != nil {
		return nil, err
	}
	return &Watcher{w: w}, nil
}

// Run reads events from the kernel and sends them on [Watcher.Events] until
// ctx ends or [Watcher.Close] is called. Before it returns it detaches every
// program and closes the Events channel. It returns nil when stopped by ctx
// or Close, ErrClosed if the watcher was closed before Run started or Run
// was already called, and the reader's error if reading failed.
func (w *Watcher) Run(ctx context.Context) error { return w.w.run(ctx) }

// Events returns the channel of events. It is closed when [Watcher.Run]
// returns, or by [Watcher.Close] if Run never started. Events are delivered
// in the order the kernel queued them; a reader that falls behind makes the
// kernel drop (and count) new events, it never stalls the applications.
func (w *Watcher) Events() <-chan Event { return w.w.events }

// Stats returns the counters. It is cheap enough to call once a second.
func (w *Watcher) Stats() Stats { return w.w.stats() }

// Close detaches and unloads everything and interrupts [Watcher.Run]. It
// is idempotent; the first call's error is returned by every call.
func (w *Watcher) Close() error { return w.w.close() }
