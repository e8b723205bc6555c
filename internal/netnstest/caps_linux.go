package netnstest

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// WithoutCaps runs fn on a thread whose effective capabilities lack caps
// (unix.CAP_*), and returns fn's error, or the error of dropping them.
// Capabilities are per thread: the thread is never unlocked, so it ends
// with fn's goroutine and no other goroutine inherits what it lost.
func WithoutCaps(caps []int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var data [2]unix.CapUserData
		if err := unix.Capget(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		for _, c := range caps {
			data[c/32].Effective &^= 1 << (uint(c) % 32)
		}
		if err := unix.Capset(&hdr, &data[0]); err != nil {
			errc <- err
			return
		}
		errc <- fn()
	}()
	return <-errc
}
