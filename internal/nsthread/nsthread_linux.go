package nsthread

import (
	"fmt"
	"runtime"

	"github.com/vishvananda/netns"
)

// Do runs fn on a fresh goroutine locked to its thread, switched into
// network namespace h, and returns fn's error; h 0 runs fn here. what
// names the namespace in Do's own errors ("linkwatch: Config.NetNS").
//
// A thread that cannot be switched back stays locked, so that the runtime
// discards it instead of running other goroutines in the wrong namespace;
// Do then returns that error, and undo (if not nil) is called to release
// what fn made there, since the caller will not get it.
func Do(h netns.NsHandle, what string, fn func() error, undo func()) error {
	if h == 0 {
		return fn()
	}
	c := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			c <- fmt.Errorf("%s: current network namespace: %w", what, err)
			return
		}
		defer orig.Close()
		if err := netns.Set(h); err != nil {
			runtime.UnlockOSThread()
			c <- fmt.Errorf("%s %d: enter network namespace: %w", what, h, err)
			return
		}
		err = fn()
		if rerr := netns.Set(orig); rerr != nil {
			if undo != nil {
				undo()
			}
			c <- fmt.Errorf("%s: leave network namespace: %w", what, rerr) // the thread stays locked and dies
			return
		}
		runtime.UnlockOSThread()
		c <- err
	}()
	return <-c
}
