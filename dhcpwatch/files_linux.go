package dhcpwatch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Events that make a lease file worth reading again. IN_MODIFY is needed
// because dhclient keeps its lease log open and appends to it; a write
// cut in the middle of a block is ignored by the parser and read again at
// the next event. IN_DELETE and IN_MOVED_FROM tell of a file that went:
// dhcpcd and systemd-networkd unlink theirs when they release the lease.
const (
	fileMask = unix.IN_CLOSE_WRITE | unix.IN_MODIFY | unix.IN_MOVED_TO | unix.IN_CREATE |
		unix.IN_DELETE | unix.IN_MOVED_FROM | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
	// ancestorMask waits for a missing directory to be created.
	ancestorMask = unix.IN_CREATE | unix.IN_MOVED_TO | unix.IN_DELETE_SELF | unix.IN_MOVE_SELF | unix.IN_ONLYDIR
)

// inotify holds the watcher's state while it runs.
type inotify struct {
	w    *LeaseFiles
	fd   int
	wds  map[int32]string // watch descriptor -> directory it watches
	want map[string]bool  // pattern directories -> being watched directly
	last map[string][]Lease
}

func (w *LeaseFiles) run(ctx context.Context) error {
	fd, err := unix.InotifyInit1(unix.IN_NONBLOCK | unix.IN_CLOEXEC)
	if err != nil {
		return fmt.Errorf("dhcpwatch: inotify_init1: %w", os.NewSyscallError("inotify_init1", err))
	}
	// A non-blocking fd in an *os.File is served by the runtime's poller,
	// so Close interrupts a Read waiting for events: that is how ctx
	// stops the loop without a second goroutine or a timeout.
	f := os.NewFile(uintptr(fd), "inotify")
	stop := context.AfterFunc(ctx, func() { _ = f.Close() })
	defer func() {
		if stop() {
			_ = f.Close()
		}
	}()
	in := &inotify{w: w, fd: fd, wds: map[int32]string{}, want: map[string]bool{}, last: map[string][]Lease{}}
	for _, p := range w.patterns {
		in.want[filepath.Dir(p.Glob)] = false
	}
	in.setup()
	if !in.scanAll(ctx) {
		return context.Cause(ctx)
	}
	w.markReady()
	buf := make([]byte, 64*(unix.SizeofInotifyEvent+unix.NAME_MAX+1))
	for {
		n, err := f.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("dhcpwatch: read inotify events: %w", err)
		}
		if !in.handle(ctx, buf[:n]) {
			return context.Cause(ctx)
		}
	}
}

// setup adds a watch on every pattern directory that exists, and on the
// nearest existing ancestor of each one that does not, so that its
// creation is noticed without polling.
func (in *inotify) setup() {
	for dir, ok := range in.want {
		if ok {
			continue
		}
		// IN_MASK_ADD: one directory can be both a pattern directory and
		// the ancestor of another, and inotify keeps one watch per inode,
		// whose mask a plain add would replace.
		wd, err := unix.InotifyAddWatch(in.fd, dir, fileMask|unix.IN_MASK_ADD)
		if err == nil {
			in.wds[int32(wd)] = dir
			in.want[dir] = true
			continue
		}
		for a := filepath.Dir(dir); ; a = filepath.Dir(a) {
			if wd, err := unix.InotifyAddWatch(in.fd, a, ancestorMask|unix.IN_MASK_ADD); err == nil {
				in.wds[int32(wd)] = a
				break
			}
			if a == "/" {
				break
			}
		}
	}
}

// handle processes a buffer of inotify events. It returns false when ctx
// ended while sending.
func (in *inotify) handle(ctx context.Context, buf []byte) bool {
	var changed []string
	rescan := false
	for len(buf) >= unix.SizeofInotifyEvent {
		ev := (*unix.InotifyEvent)(unsafe.Pointer(&buf[0]))
		end := unix.SizeofInotifyEvent + int(ev.Len)
		if end > len(buf) {
			break
		}
		name := string(buf[unix.SizeofInotifyEvent:end])
		for len(name) > 0 && name[len(name)-1] == 0 {
			name = name[:len(name)-1]
		}
		buf = buf[end:]
		dir, known := in.wds[ev.Wd]
		switch {
		case ev.Mask&unix.IN_Q_OVERFLOW != 0:
			rescan = true // events were lost: read everything again
		case ev.Mask&(unix.IN_IGNORED|unix.IN_DELETE_SELF|unix.IN_MOVE_SELF) != 0:
			if known {
				delete(in.wds, ev.Wd)
				if _, isPattern := in.want[dir]; isPattern {
					in.want[dir] = false
				}
				_, _ = unix.InotifyRmWatch(in.fd, uint32(ev.Wd))
			}
			rescan = true
		case !known:
		case ev.Mask&unix.IN_ISDIR != 0:
			// A directory appeared: it may be (on the way to) a
			// pattern directory.
			rescan = true
		case in.want[dir] && name != "":
			changed = append(changed, filepath.Join(dir, name))
		default:
			// An ancestor changed: a pattern directory may exist now.
			rescan = true
		}
	}
	if rescan {
		in.setup()
		return in.scanAll(ctx)
	}
	slices.Sort(changed)
	for _, p := range slices.Compact(changed) {
		if !in.read(ctx, p) {
			return false
		}
	}
	return true
}

// scanAll reads every file that matches a pattern, and reports the files
// read before that are gone (a rescan after lost events).
func (in *inotify) scanAll(ctx context.Context) bool {
	seen := map[string]bool{}
	for _, p := range in.w.patterns {
		names, _ := filepath.Glob(p.Glob) // the pattern was checked in NewLeaseFiles
		for _, n := range names {
			seen[n] = true
			if !in.read(ctx, n) {
				return false
			}
		}
	}
	for _, path := range slices.Sorted(maps.Keys(in.last)) {
		if !seen[path] && !in.gone(ctx, path) {
			return false
		}
	}
	return true
}

// gone reports that the file at path, whose leases were sent, is gone.
func (in *inotify) gone(ctx context.Context, path string) bool {
	ls, ok := in.last[path]
	delete(in.last, path)
	if !ok || len(ls) == 0 {
		return true
	}
	select {
	case in.w.events <- Lease{Source: path, Kind: ls[0].Kind}:
		return true
	case <-ctx.Done():
		return false
	}
}

// read parses path if it matches a pattern and sends its leases that
// changed since it was last read. Any problem with the file is a warning.
func (in *inotify) read(ctx context.Context, path string) bool {
	kind := Kind(0)
	for _, p := range in.w.patterns {
		if ok, _ := filepath.Match(p.Glob, path); ok {
			kind = p.Kind
			break
		}
	}
	if kind == 0 {
		return true
	}
	data, mtime, err := readFile(path, in.w.maxSize)
	if errors.Is(err, os.ErrNotExist) {
		return in.gone(ctx, path) // deleted or renamed away
	}
	if err != nil {
		in.w.log.Warn("dhcpwatch: lease file unreadable", zap.String("file", path), zap.Error(err))
		return true
	}
	if len(data) == 0 {
		return true // created, not yet written
	}
	ls, err := Parse(kind, path, data, mtime)
	if err != nil {
		in.w.log.Warn("dhcpwatch: lease file not understood", zap.String("file", path), zap.Error(err))
		return true
	}
	prev := in.last[path]
	in.last[path] = ls
	for _, l := range ls {
		if slices.Contains(prev, l) {
			continue
		}
		select {
		case in.w.events <- l:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// readFile reads a regular file of at most max bytes, with its
// modification time.
func readFile(path string, max int64) ([]byte, time.Time, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, time.Time{}, err
	}
	if !st.Mode().IsRegular() {
		return nil, time.Time{}, fmt.Errorf("dhcpwatch: %s: mode %v, want a regular file", path, st.Mode())
	}
	if st.Size() > max {
		return nil, time.Time{}, fmt.Errorf("dhcpwatch: %s: %d bytes, want at most %d", path, st.Size(), max)
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("dhcpwatch: read %s: %w", path, err)
	}
	if int64(len(data)) > max {
		return nil, time.Time{}, fmt.Errorf("dhcpwatch: %s: grew past %d bytes while read", path, max)
	}
	return data, st.ModTime(), nil
}
