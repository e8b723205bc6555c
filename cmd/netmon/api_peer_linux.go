package main

import (
	"context"
	"net"

	"golang.org/x/sys/unix"
)

// peerPID returns the process ID of the client at the other end of the
// request's Unix socket connection (SO_PEERCRED: what the kernel recorded
// at connect, not what the client claims), 0 if unknown.
func peerPID(ctx context.Context) int {
	c, _ := ctx.Value(connKey{}).(net.Conn)
	return connPID(c)
}

// connPID returns the peer process ID of a Unix socket connection, 0 if
// unknown or not one.
func connPID(conn net.Conn) int {
	c, ok := conn.(*net.UnixConn)
	if !ok {
		return 0
	}
	raw, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var cred *unix.Ucred
	cerr := raw.Control(func(fd uintptr) {
		cred, err = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if cerr != nil || err != nil || cred == nil {
		return 0
	}
	return int(cred.Pid)
}
