package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vishvananda/netns"
	"go.uber.org/zap"
)

// DefaultReceiveBuffer is the socket receive buffer linkwatch asks for
// when [Config.ReceiveBuffer] is 0: 4 MiB, room for about 5,000 address
// notifications (the kernel's default of 208 KiB overflows after about
// 256). linkwatch first tries SO_RCVBUFFORCE, which needs CAP_NET_ADMIN
// and ignores net.core.rmem_max, then SO_RCVBUF, which the kernel caps at
// rmem_max.
const DefaultReceiveBuffer = 4 << 20

// notificationBytes is about what one address notification costs the
// receive buffer (the 4 MiB default holds about 5,000): for the warning
// when the kernel grants less.
const notificationBytes = 800

// EventBuffer is the capacity of the channel [Watcher.Events] returns. A
// consumer that falls further behind stalls the watcher; the kernel then
// drops messages and the watcher recovers with a [GapEvent].
const EventBuffer = 256

// ErrNotSupported is returned on systems without rtnetlink.
var ErrNotSupported = errors.New("linkwatch: not supported on this system")

// ErrRunning is returned by [Watcher.Run] when it is already running or has
// run: a Watcher watches once, because its events channel closes when Run
// returns.
var ErrRunning = errors.New("linkwatch: Run called twice")

// Config configures a [Watcher]. The zero value watches every interface
// but loopback in the current network namespace.
type Config struct {
	// NetNS is the network namespace to watch; 0 means the namespace of
	// the calling process. The handle must stay open until Run returns.
	// Watching another namespace needs CAP_SYS_ADMIN (setns).
	NetNS netns.NsHandle
	// Include lists interface names or path.Match globs ("wl*") to
	// watch; empty means every interface but loopback. A plain name (no
	// glob characters) must exist when [New] is called, unless
	// AwaitNamed is set. Interfaces that appear later and match are
	// picked up.
	Include []string
	// AwaitNamed lets Include name interfaces that do not exist yet (a
	// USB adapter still enumerating at boot): they are watched for
	// instead of being an error.
	AwaitNamed bool
	// Exclude lists names or globs never watched; it wins over Include.
	Exclude []string
	// ReceiveBuffer is the netlink socket's receive buffer in bytes; 0
	// means [DefaultReceiveBuffer]. The kernel doubles the value for its
	// bookkeeping and has a floor of a few KiB.
	ReceiveBuffer int
	// Logger receives debug lines for ignored messages and warnings for
	// gaps; nil means zap.NewNop().
	Logger *zap.Logger
}

// Watcher watches the kernel's links, addresses, default routes and the
// default gateways' neighbour entries in one network namespace. Create it
// with [New], start it with [Watcher.Run], read [Watcher.Events], and
// query [Watcher.State] from any goroutine.
type Watcher struct {
	cfg    Config
	log    *zap.Logger
	events chan Event
	ran    atomic.Bool

	// ignored counts messages dropped because a process other than the
	// kernel sent them; tests read it.
	ignored atomic.Uint64
	// nhJoinWarned and nhDumpWarned make the warnings about a kernel
	// without nexthop objects appear once.
	nhJoinWarned, nhDumpWarned atomic.Bool
	// gaps counts re-reads after lost messages.
	gaps atomic.Uint64
	// noRules is set once a rule dump was refused (a kernel without
	// policy routing), so that it is said once.
	noRules atomic.Bool
	// subPID is the port id of the subscription socket, so that tests
	// can unicast forged messages to it.
	subPID atomic.Uint32

	// failDump, when set (by tests), runs before every dump of a full
	// read and before the nexthop dump of a route re-read, and fails it
	// with the error it returns.
	failDump func(typ uint16) error
	// fatal is why Run stopped on its own: a full re-read kept failing.
	// Only Run's goroutine touches it.
	fatal error

	lk lookupSock // Lookup's socket

	mu    sync.Mutex // guards model and read
	model *model     // nil until the baseline was read
	read  time.Time  // when the state was last read in full
}

// New checks cfg and returns a Watcher. An interface that Include names
// without glob characters and that does not exist is an error wrapping
// os.ErrNotExist that names it and lists the interfaces that exist
// (unless Config.AwaitNamed is set).
func New(cfg Config) (*Watcher, error) {
	if cfg.ReceiveBuffer < 0 {
		return nil, fmt.Errorf("linkwatch: Config.ReceiveBuffer is %d, want 0 (default) or a positive number of bytes", cfg.ReceiveBuffer)
	}
	if cfg.ReceiveBuffer == 0 {
		cfg.ReceiveBuffer = DefaultReceiveBuffer
	}
	for _, list := range []struct {
		field    string
		patterns []string
	}{{"Include", cfg.Include}, {"Exclude", cfg.Exclude}} {
		for _, p := range list.patterns {
			if _, err := path.Match(p, ""); err != nil {
				return nil, fmt.Errorf("linkwatch: Config.%s pattern %q: %w", list.field, p, err)
			}
			if p == "" {
				return nil, fmt.Errorf("linkwatch: Config.%s has an empty pattern, want a name or glob", list.field)
			}
		}
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Include = slices.Clone(cfg.Include)
	cfg.Exclude = slices.Clone(cfg.Exclude)
	w := &Watcher{
		cfg:    cfg,
		log:    cfg.Logger,
		events: make(chan Event, EventBuffer),
	}
	var names []string
	for _, p := range cfg.Include {
		if !isGlob(p) && !cfg.AwaitNamed {
			names = append(names, p)
		}
	}
	if len(names) > 0 {
		existing, err := w.linkNames()
		if err != nil {
			return nil, err
		}
		for _, n := range names {
			if !slices.Contains(existing, n) {
				slices.Sort(existing)
				return nil, fmt.Errorf("linkwatch: Config.Include names interface %q: %w; interfaces present: %s",
					n, errNoInterface, strings.Join(existing, ", "))
			}
		}
	}
	return w, nil
}

// errNoInterface wraps os.ErrNotExist so that callers can branch with
// errors.Is(err, os.ErrNotExist).
var errNoInterface = fmt.Errorf("no such interface: %w", os.ErrNotExist)

func isGlob(p string) bool { return strings.ContainsAny(p, `*?[\`) }

// include reports whether the interface name is watched.
func (w *Watcher) include(name string, loopback bool) bool {
	for _, p := range w.cfg.Exclude {
		if ok, _ := path.Match(p, name); ok {
			return false
		}
	}
	if len(w.cfg.Include) == 0 {
		return !loopback
	}
	for _, p := range w.cfg.Include {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Events returns the channel of events. The first event is always a
// [Baseline]; the channel is closed when [Watcher.Run] returns. Read it
// promptly: a full channel stalls the watcher (see [EventBuffer]).
func (w *Watcher) Events() <-chan Event { return w.events }

// State returns a copy of the current state. Before the baseline has been
// read it is the zero State. It is safe to call from any goroutine.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.model == nil {
		return State{}
	}
	return w.model.state(w.read)
}

// Run watches until ctx ends, then closes the events channel and returns
// nil once every goroutine it started has ended. It returns an error when
// the netlink socket cannot be opened or re-opened, or when a full re-read
// of the state fails six times in a row (about 3.3 s of retries); lost
// messages (ENOBUFS) are not errors but [GapEvent]s. Run may be called
// once.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.ran.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer close(w.events)
	return w.run(ctx)
}

// emit delivers ev unless ctx ends first.
func (w *Watcher) emit(ctx context.Context, ev Event) bool {
	select {
	case w.events <- ev:
		return true
	case <-ctx.Done():
		return false
	}
}
