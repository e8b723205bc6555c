package classify

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// errENONET is Linux's "machine is not on the network" (ICMP host
// isolated); other systems have no such errno.
const errENONET = unix.ENONET

// osNetworkErrno reports the errnos of the Network class that exist only on
// this system.
func osNetworkErrno(n syscall.Errno) bool { return n == errENONET }
