package netmon

import (
	"github.com/seed-a56be422/netmon/internal/nsthread"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// netnsInode returns the inode number that identifies a network namespace
// (the number in "net:[4026531840]"): of h, or of this process's namespace
// when h is 0. It returns 0 when it cannot tell.
func netnsInode(h netns.NsHandle) uint64 {
	var st unix.Stat_t
	var err error
	if h == 0 {
		err = unix.Stat("/proc/self/ns/net", &st)
	} else {
		err = unix.Fstat(int(h), &st)
	}
	if err != nil {
		return 0
	}
	return st.Ino
}

// inNetNS runs fn on a thread in network namespace h (0: this one), for
// reads that follow the calling thread's namespace (/proc/thread-self/net).
func inNetNS(h netns.NsHandle, fn func() error) error {
	return nsthread.Do(h, "netmon: Options.NetNS", fn, nil)
}
