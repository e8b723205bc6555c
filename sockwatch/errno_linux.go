package sockwatch

import "syscall"

// errENONET ("machine is not on the network") is Linux-only in package
// syscall; sockwatch_others.go gives the other systems the same value.
const errENONET = syscall.ENONET
