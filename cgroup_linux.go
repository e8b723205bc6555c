package netmon

import (
	"errors"
	"fmt"
	"io/fs"

	"golang.org/x/sys/unix"
)

// CgroupID returns the cgroup v2 ID of the cgroup whose directory is path
// (for example /sys/fs/cgroup/system.slice/robot.service): the
// directory's inode number, which is what eBPF's
// bpf_get_current_cgroup_id returns for the processes in it and what
// [Options.SockCgroups] is resolved to. The error is an *fs.PathError
// naming path: the stat error (errors.Is(err, fs.ErrNotExist) for a path
// that does not exist), or an explanation when path is not a cgroup v2
// directory (a cgroup v1 directory, a file, another file system).
func CgroupID(path string) (uint64, error) {
	perr := func(err error) error { return &fs.PathError{Op: "cgroup", Path: path, Err: err} }
	var sfs unix.Statfs_t
	if err := unix.Statfs(path, &sfs); err != nil {
		return 0, perr(err)
	}
	switch sfs.Type {
	case unix.CGROUP2_SUPER_MAGIC:
	case unix.CGROUP_SUPER_MAGIC:
		return 0, perr(errors.New("a cgroup v1 directory, not cgroup v2: eBPF reports cgroup v2 IDs; name the directory in the cgroup v2 hierarchy " + cgroup2Where))
	default:
		return 0, perr(fmt.Errorf("not a cgroup v2 directory (file system type %#x): cgroup v2 is mounted %s", sfs.Type, cgroup2Where))
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, perr(err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return 0, perr(errors.New("not a cgroup v2 directory but a file in one: name the cgroup's directory"))
	}
	return st.Ino, nil
}

// cgroup2Where says where the cgroup v2 hierarchy usually is.
const cgroup2Where = "at /sys/fs/cgroup (or /sys/fs/cgroup/unified on systems with both hierarchies)"
