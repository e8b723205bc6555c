package dhcpwatch

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"

	"go.uber.org/zap"
)

// FilePattern says where lease files of one format live.
type FilePattern struct {
	// Glob is a filepath.Match pattern for the files; its directory part
	// must be a plain path (no wildcards), which is the directory watched.
	Glob string
	Kind Kind
}

// DefaultFilePatterns returns where the common clients keep their leases
// on Debian-like systems.
func DefaultFilePatterns() []FilePattern {
	return []FilePattern{
		{Glob: "/var/lib/dhcp/dhclient*.leases", Kind: Dhclient},
		{Glob: "/var/lib/dhclient/*.lease", Kind: Dhclient},
		{Glob: "/var/lib/dhclient/*.leases", Kind: Dhclient},
		{Glob: "/var/lib/NetworkManager/dhclient-*.lease", Kind: Dhclient},
		{Glob: "/var/lib/NetworkManager/internal-*.lease", Kind: NetworkManager},
		{Glob: "/var/lib/dhcpcd/*.lease", Kind: Dhcpcd},
		{Glob: "/run/systemd/netif/leases/*", Kind: Networkd},
	}
}

// DefaultMaxFileSize is the size above which a lease file is not read.
const DefaultMaxFileSize = 1 << 20

// FilesConfig configures [LeaseFiles]. The zero value watches
// [DefaultFilePatterns] and logs nothing.
type FilesConfig struct {
	// Patterns are the files to watch. Nil means [DefaultFilePatterns].
	Patterns []FilePattern
	// MaxFileSize is the largest file read, in bytes; a larger one gives a
	// warning. Zero means [DefaultMaxFileSize].
	MaxFileSize int64
	// Logger receives a warning for every file that cannot be read or
	// parsed, naming it. Nil means zap.NewNop().
	Logger *zap.Logger
}

// LeaseFiles watches lease files and sends a [Lease] whenever one is
// created or changes. A file that cannot be read or parsed is logged and
// skipped; it never stops the watcher. Only regular files are read:
// symbolic links are not followed (a link that matches a pattern is
// logged as unreadable), and FIFOs, devices and directories are logged
// and skipped without being read.
type LeaseFiles struct {
	patterns []FilePattern
	maxSize  int64
	log      *zap.Logger
	events   chan Lease
	started  atomic.Bool
	ready    chan struct{} // closed by markReady
}

// NewLeaseFiles checks cfg and returns a watcher; [LeaseFiles.Run] starts
// it.
func NewLeaseFiles(cfg FilesConfig) (*LeaseFiles, error) {
	w := &LeaseFiles{
		patterns: cfg.Patterns,
		maxSize:  cfg.MaxFileSize,
		log:      cfg.Logger,
		events:   make(chan Lease, 16),
		ready:    make(chan struct{}),
	}
	if w.patterns == nil {
		w.patterns = DefaultFilePatterns()
	}
	if w.maxSize == 0 {
		w.maxSize = DefaultMaxFileSize
	}
	if w.maxSize < 0 {
		return nil, fmt.Errorf("dhcpwatch: FilesConfig.MaxFileSize %d: want >= 0", cfg.MaxFileSize)
	}
	if w.log == nil {
		w.log = zap.NewNop()
	}
	for i, p := range w.patterns {
		if _, err := filepath.Match(p.Glob, ""); err != nil {
			return nil, fmt.Errorf("dhcpwatch: FilesConfig.Patterns[%d].Glob %q: %w", i, p.Glob, err)
		}
		if d := filepath.Dir(p.Glob); hasMeta(d) || !filepath.IsAbs(d) {
			return nil, fmt.Errorf("dhcpwatch: FilesConfig.Patterns[%d].Glob %q: want an absolute directory without wildcards", i, p.Glob)
		}
		if p.Kind < Dhclient || p.Kind > NetworkManager {
			return nil, fmt.Errorf("dhcpwatch: FilesConfig.Patterns[%d].Kind %d: want one of the Kind constants", i, p.Kind)
		}
	}
	return w, nil
}

func hasMeta(s string) bool {
	for _, c := range s {
		if c == '*' || c == '?' || c == '[' || c == '\\' {
			return true
		}
	}
	return false
}

// Events returns the channel of leases. It first carries the leases of the
// files present when Run starts, then one lease per change, and a removal
// ([Lease.Removed]) when a file whose leases it carried is deleted or
// renamed away. It is closed when Run returns.
func (w *LeaseFiles) Events() <-chan Lease { return w.events }

// Ready returns a channel that is closed once the files present when Run
// started have been read and their leases sent on Events (they may still
// wait in its buffer): the watcher's baseline, what the files said at
// start. When Run fails before (no inotify), it stays open: Run returns
// the error and Events is closed.
func (w *LeaseFiles) Ready() <-chan struct{} { return w.ready }

// markReady closes the Ready channel; run calls it once.
func (w *LeaseFiles) markReady() { close(w.ready) }

// errRunTwice is returned by a second call to Run.
var errRunTwice = errors.New("dhcpwatch: LeaseFiles.Run called twice")

// Run watches the files until ctx ends, then returns context.Cause(ctx)
// after its goroutine has ended and the event channel is closed. It returns
// early only if inotify cannot be set up at all.
func (w *LeaseFiles) Run(ctx context.Context) error {
	if !w.started.CompareAndSwap(false, true) {
		return errRunTwice
	}
	defer close(w.events)
	return w.run(ctx)
}
