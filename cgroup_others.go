//go:build !linux

package netmon

import (
	"errors"
	"fmt"
	"io/fs"
)

// CgroupID returns the cgroup v2 ID of the cgroup whose directory is
// path. cgroups exist only on Linux: here it always fails with an
// *fs.PathError wrapping errors.ErrUnsupported.
func CgroupID(path string) (uint64, error) {
	return 0, &fs.PathError{Op: "cgroup", Path: path, Err: fmt.Errorf("cgroups exist only on Linux: %w", errors.ErrUnsupported)}
}
