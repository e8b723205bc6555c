//go:build !linux

package linkwatch

import (
	"context"
	"fmt"
	"runtime"
)

// errUnsupported names the system linkwatch cannot watch.
var errUnsupported = fmt.Errorf("%w: %s/%s", ErrNotSupported, runtime.GOOS, runtime.GOARCH)

func (w *Watcher) run(context.Context) error { return errUnsupported }

func (w *Watcher) linkNames() ([]string, error) { return nil, errUnsupported }
