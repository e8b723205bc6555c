//go:build !linux

package classify

import "syscall"

// errENONET does not exist outside Linux; 0 never matches a real error.
const errENONET syscall.Errno = 0

// osNetworkErrno reports the errnos of the Network class that exist only on
// this system: none here.
func osNetworkErrno(syscall.Errno) bool { return false }
