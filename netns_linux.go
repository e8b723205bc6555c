package netmon

import (
	"fmt"
	"runtime"

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
// The work runs on a fresh goroutine locked to its thread; a thread that
// cannot be switched back stays locked, so that the runtime discards it
// rather than run other goroutines in the wrong namespace.
func inNetNS(h netns.NsHandle, fn func() error) error {
	if h == 0 {
		return fn()
	}
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- fmt.Errorf("netmon: current network namespace: %w", err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			c <- fmt.Errorf("netmon: enter network namespace (Options.NetNS %d): %w", h, err)
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			c <- fmt.Errorf("netmon: leave network namespace: %w", rerr) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		c <- err
	}()
	return <-c
}
