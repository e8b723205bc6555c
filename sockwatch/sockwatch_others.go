//go:build !linux

package sockwatch

import (
	"context"
	"fmt"
	"runtime"
	"syscall"
)

// watcher is a stub: eBPF socket tracing exists only on Linux.
type watcher struct {
	events chan Event
}

func newWatcher(Config) (*watcher, error) {
	return nil, fmt.Errorf("sockwatch: not implemented on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrNotSupported)
}

func (w *watcher) run(context.Context) error { return ErrClosed }
func (w *watcher) stats() Stats              { return Stats{} }
func (w *watcher) close() error              { return nil }

// errENONET is Linux's ENONET, which other systems' syscall packages lack;
// the value only matters where the programs run.
const errENONET = syscall.Errno(64)
