//go:build !linux

package linkwatch

import (
	"context"
	"fmt"
	"net/netip"
	"runtime"
)

// errUnsupported names the system linkwatch cannot watch.
var errUnsupported = fmt.Errorf("%w: %s/%s", ErrNotSupported, runtime.GOOS, runtime.GOARCH)

func (w *Watcher) run(context.Context) error { return errUnsupported }

func (w *Watcher) linkNames() ([]string, error) { return nil, errUnsupported }

type lookupSock struct{}

// Lookup is not supported on this system.
func (w *Watcher) Lookup(dst netip.Addr, mark uint32) (Path, error) {
	return Path{Dst: dst, Mark: mark}, errUnsupported
}
