//go:build !linux

package dhcpwatch

import (
	"context"
	"fmt"
	"runtime"
)

// run has no inotify to work with outside Linux.
func (w *LeaseFiles) run(context.Context) error {
	return fmt.Errorf("dhcpwatch: lease files on %s/%s: %w", runtime.GOOS, runtime.GOARCH, ErrNotSupported)
}
