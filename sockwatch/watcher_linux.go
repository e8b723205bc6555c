package sockwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// watcher is the Linux implementation behind [Watcher].
type watcher struct {
	cfg Config
	log *zap.Logger
	// clock reads the wall clock and CLOCK_MONOTONIC together; run uses it
	// to convert the kernel's timestamps (systemClock; tests step it).
	clock  func() (wall time.Time, mono time.Duration)
	events chan Event
	done   chan struct{} // closed by close, to stop a Run blocked on events
	filter filter        // Config.Cgroups and Config.Destinations, applied by run

	// Set by newWatcher and released by close (under mu); links is also
	// toggled by the overhead benchmark through detach and attach.
	coll   *ebpf.Collection
	links  []link.Link
	reader *ringbuf.Reader
	drops  *ebpf.Map // per-CPU count of records the ring buffer had no room for

	delivered atomic.Uint64
	filtered  atomic.Uint64
	malformed atomic.Uint64

	mu       sync.Mutex // guards the fields below
	started  bool       // Run was called
	closed   bool       // close ran
	closeErr error      // close's result, returned by every call
	lastDrop uint64     // drop count read just before the maps were closed
}

// newWatcher loads and attaches everything, or undoes what it did and
// returns why it could not.
func newWatcher(cfg Config) (_ *watcher, err error) {
	if _, err := os.Stat(kernelBTF); err != nil {
		return nil, fmt.Errorf("sockwatch: kernel BTF (%s, CONFIG_DEBUG_INFO_BTF=y): %w: %w", kernelBTF, ErrNotSupported, err)
	}
	cs, err := collectionSpec(cfg)
	if err != nil {
		return nil, err
	}

	// The channel buffer only smooths hand-off to the consumer; the ring
	// buffer is where bursts are absorbed (and counted when it overflows).
	w := &watcher{cfg: cfg, log: cfg.Logger, events: make(chan Event, 64), done: make(chan struct{}),
		clock: systemClock, filter: newFilter(cfg)}
	defer func() {
		if err != nil {
			w.release()
		}
	}()

	// The library parses the kernel's BTF (for the CO-RE relocations and
	// the tp_btf targets) into a cache that lives only as long as this
	// call; neither it nor cs is kept, so both are garbage afterwards.
	w.coll, err = ebpf.NewCollection(cs)
	if err != nil {
		return nil, explain("load BPF programs", err)
	}
	w.drops = w.coll.Maps[sockwatchMapDrops]
	if m := w.coll.Maps[sockwatchMapComms]; m != nil {
		for _, c := range cfg.Comms {
			var key [commLen]byte
			copy(key[:], c)
			if err := m.Put(key, uint8(1)); err != nil {
				return nil, fmt.Errorf("sockwatch: fill the process-name filter: %w", err)
			}
		}
	}

	if err := w.attach(); err != nil {
		return nil, err
	}

	w.reader, err = ringbuf.NewReader(w.coll.Maps[sockwatchMapEvents])
	if err != nil {
		return nil, fmt.Errorf("sockwatch: ring-buffer reader: %w", err)
	}
	// Loading parsed the object and the kernel's BTF into several MB of
	// heap that is garbage now; the runtime would keep it mapped for a
	// long while (and a robot's memory budget counts it), so give it back
	// at once, for the price of one collection at start-up.
	debug.FreeOSMemory()
	w.log.Info("sockwatch attached",
		zap.Int("programs", len(w.links)), zap.Bool("syscall_tracing", cfg.SyscallTracing),
		zap.Strings("comms", cfg.Comms), zap.Uint64s("cgroups", cfg.Cgroups), zap.Stringers("destinations", cfg.Destinations),
		zap.Int("ring_buffer_bytes", cfg.RingBufferSize))
	return w, nil
}

// attach attaches the loaded programs to their tracepoints. The owner
// program goes first so that a connect racing with New is attributed
// rather than reported with PID 0.
func (w *watcher) attach() error {
	progs := []struct{ prog, name string }{
		{sockwatchProgSockwatchOwner, "sock:inet_sock_set_state"},
		{sockwatchProgSockwatchError, "sock:inet_sk_error_report"},
	}
	if w.cfg.SyscallTracing {
		progs = append(progs, struct{ prog, name string }{sockwatchProgSockwatchSys, "sys_exit"})
	}
	for _, tp := range progs {
		l, err := link.AttachTracing(link.TracingOptions{Program: w.coll.Programs[tp.prog], AttachType: ebpf.AttachTraceRawTp})
		if err != nil {
			return explain("attach tp_btf "+tp.name, err)
		}
		w.links = append(w.links, l)
	}
	return nil
}

// detach detaches the programs but keeps them, the maps and the reader,
// so that attach can put them back (the overhead benchmark uses this to
// interleave attached and detached runs).
func (w *watcher) detach() error {
	var errs []error
	for _, l := range w.links {
		if err := l.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sockwatch: detach: %w", err))
		}
	}
	w.links = nil
	return errors.Join(errs...)
}

// kernelBTF is where the running kernel's BTF is, which the CO-RE
// relocations and the tp_btf attachments need.
const kernelBTF = "/sys/kernel/btf/vmlinux"

// systemClock returns the wall clock and CLOCK_MONOTONIC, read back to back.
func systemClock() (time.Time, time.Duration) {
	var ts unix.Timespec
	now := time.Now()
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return now, 0 // cannot happen on Linux
	}
	return now, time.Duration(ts.Nano())
}

// clockEvery is how many records in a row, at most, take their wall time
// from one reading of the clock (see run).
const clockEvery = 256

// bootTime returns the wall-clock time at which CLOCK_MONOTONIC read 0
// according to clock, so that a kernel timestamp t becomes
// bootTime(clock).Add(t).
func bootTime(clock func() (time.Time, time.Duration)) time.Time {
	wall, mono := clock()
	return wall.Add(-mono)
}

// explain turns a load or attach error into one that says what is missing.
// The kernel answers EPERM both for missing capabilities and for a locked
// down kernel; the capability check tells them apart.
func explain(what string, err error) error {
	var verr *ebpf.VerifierError
	switch {
	case errors.As(err, &verr):
		// EACCES from the verifier is a bug in the programs (or a kernel
		// whose BTF they do not fit), not a missing privilege.
		return fmt.Errorf("sockwatch: %s: verifier rejected the program: %w", what, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("sockwatch: %s: %w", what, err)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("sockwatch: %s: tracepoint not found in this kernel: %w: %w", what, ErrNotSupported, err)
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		if missing := missingCaps(); len(missing) > 0 {
			return fmt.Errorf("sockwatch: %s: missing %s (or run as root): %w: %w", what, strings.Join(missing, ", "), ErrPermission, err)
		}
		return fmt.Errorf("sockwatch: %s: refused although CAP_BPF and CAP_PERFMON are held (kernel lockdown or LSM policy?): %w: %w", what, ErrPermission, err)
	}
	return fmt.Errorf("sockwatch: %s: %w", what, err)
}

// missingCaps lists the effective capabilities sockwatch needs that the
// process lacks.
func missingCaps() []string {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return []string{"CAP_BPF", "CAP_PERFMON"}
	}
	has := func(c int) bool { return data[c/32].Effective&(1<<(uint(c)%32)) != 0 }
	var missing []string
	if !has(unix.CAP_BPF) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_BPF")
	}
	if !has(unix.CAP_PERFMON) && !has(unix.CAP_SYS_ADMIN) {
		missing = append(missing, "CAP_PERFMON")
	}
	return missing
}

// run is Watcher.Run. It is the only sender on events and closes it.
func (w *watcher) run(ctx context.Context) error {
	w.mu.Lock()
	if w.started || w.closed {
		w.mu.Unlock()
		return fmt.Errorf("sockwatch: Run: %w", ErrClosed)
	}
	w.started = true
	w.mu.Unlock()
	defer close(w.events)
	defer w.close()

	// Closing the reader is the only way to interrupt a blocked Read.
	stop := context.AfterFunc(ctx, func() { _ = w.reader.Close() })
	defer stop()

	// One Record is reused: ReadInto grows its buffer once and the
	// decoder copies out what it keeps, so the loop does not allocate.
	//
	// The offset between the kernel's monotonic timestamps and the wall
	// clock is read again at the start of every batch (the first record
	// read after the ring buffer was empty): a robot without a real-time
	// clock steps its wall clock by months at its first NTP sync, and
	// events after the step must carry the new time. Within a batch the
	// records were queued moments apart, so one reading serves them all;
	// but a storm can keep the ring buffer from ever emptying, so the
	// offset is also read again every clockEvery records.
	var rec ringbuf.Record
	var boot time.Time
	newBatch, n := true, 0
	for {
		if err := w.reader.ReadInto(&rec); err != nil {
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			return fmt.Errorf("sockwatch: read ring buffer: %w", err)
		}
		if n++; newBatch || n >= clockEvery {
			boot, n = bootTime(w.clock), 0
		}
		// Remaining, not Reader.AvailableBytes: that one reads the
		// ring without the reader's lock, racing with the Close that
		// the cancellation runs.
		newBatch = rec.Remaining == 0
		ev, err := decodeRecord(rec.RawSample, boot)
		if err != nil {
			w.malformed.Add(1)
			w.log.Error("sockwatch: malformed record", zap.Error(err))
			continue
		}
		if !w.filter.match(ev) {
			w.filtered.Add(1)
			continue
		}
		select {
		case w.events <- ev:
			w.delivered.Add(1)
		case <-ctx.Done():
			return nil
		case <-w.done:
			return nil
		}
	}
}

// stats reads the counters. After close the maps are gone, so the drop
// count read just before is returned instead.
func (w *watcher) stats() Stats {
	s := Stats{Events: w.delivered.Load(), Filtered: w.filtered.Load(), Malformed: w.malformed.Load()}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		s.Dropped = w.lastDrop
		return s
	}
	s.Dropped = w.readDrops()
	return s
}

// readDrops sums the per-CPU drop counters. Callers hold mu.
func (w *watcher) readDrops() uint64 {
	var perCPU []uint64
	if err := w.drops.Lookup(uint32(0), &perCPU); err != nil {
		return w.lastDrop
	}
	var n uint64
	for _, v := range perCPU {
		n += v
	}
	return n
}

// close releases everything once; concurrent and later calls wait for the
// first and return its result.
func (w *watcher) close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return w.closeErr
	}
	w.closed = true
	close(w.done)
	w.lastDrop = w.readDrops()
	if !w.started {
		// Nobody will run the loop that owns the channel.
		close(w.events)
	}
	w.closeErr = w.release()
	if d := w.lastDrop; d > 0 {
		w.log.Warn("sockwatch: ring buffer overflowed", zap.Uint64("dropped", d))
	}
	w.log.Info("sockwatch detached", zap.Uint64("events", w.delivered.Load()), zap.Uint64("filtered", w.filtered.Load()),
		zap.Uint64("dropped", w.lastDrop))
	return w.closeErr
}

// release detaches the programs first (so nothing writes to the maps any
// more), then closes the reader and the maps and programs.
func (w *watcher) release() error {
	var errs []error
	if err := w.detach(); err != nil {
		errs = append(errs, err)
	}
	if w.reader != nil {
		if err := w.reader.Close(); err != nil {
			errs = append(errs, fmt.Errorf("sockwatch: close ring-buffer reader: %w", err))
		}
	}
	if w.coll != nil {
		w.coll.Close()
	}
	return errors.Join(errs...)
}
