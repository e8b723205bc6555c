package sockwatch

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"time"
)

// The ring-buffer record the BPF programs write, in host byte order except
// where noted. Every program writes every byte (ring-buffer memory is not
// zeroed by the kernel), and the layout is shared by the Go decoder below
// and bpf/sockwatch.c, whose _Static_asserts check the same offsets.
//
//	off  size  field
//	  0     8  CLOCK_MONOTONIC ns (bpf_ktime_get_ns)
//	  8     8  pid_tgid: tgid<<32 | pid (0 when the owner is unknown)
//	 16     8  cgroup v2 id
//	 24     4  network namespace inode
//	 28     4  errno, positive
//	 32     1  op
//	 33     1  flags (reserved, 0)
//	 34     2  IP protocol (async only)
//	 36     4  padding
//	 40    16  comm, NUL-padded
//	 56    28  sockaddr_in / sockaddr_in6 as the application passed it:
//	           family (host order), port (network order), address
//	 84     4  padding
const (
	recTime     = 0
	recPidTgid  = 8
	recCgroup   = 16
	recNetNS    = 24
	recErrno    = 28
	recOp       = 32
	recFlags    = 33
	recProto    = 34
	recComm     = 40
	recSockaddr = 56
	recSize     = 88

	sockaddrLen = 28 // sizeof(struct sockaddr_in6)

	afInet  = 2
	afInet6 = 10
)

// decodeRecord turns one ring-buffer record into an Event. boot is the
// wall-clock time at which CLOCK_MONOTONIC was 0; the kernel's timestamps
// are converted by adding it. It never panics on any input: a record of
// the wrong size is an error.
func decodeRecord(b []byte, boot time.Time) (Event, error) {
	if len(b) < recSize {
		return Event{}, fmt.Errorf("sockwatch: ring-buffer record: length %d, want at least %d", len(b), recSize)
	}
	le := binary.NativeEndian
	mono := time.Duration(le.Uint64(b[recTime:]))
	pidTgid := le.Uint64(b[recPidTgid:])
	ev := Event{
		Time:     boot.Add(mono),
		Mono:     mono,
		PID:      uint32(pidTgid >> 32),
		TID:      uint32(pidTgid),
		Comm:     cString(b[recComm : recComm+commLen]),
		Errno:    syscall.Errno(le.Uint32(b[recErrno:])),
		Op:       Op(b[recOp]),
		Protocol: le.Uint16(b[recProto:]),
		Dst:      decodeSockaddr(b[recSockaddr : recSockaddr+sockaddrLen]),
		NetNS:    le.Uint32(b[recNetNS:]),
		Cgroup:   le.Uint64(b[recCgroup:]),
	}
	if ev.Op > OpAsync {
		ev.Op = OpUnknown
	}
	return ev, nil
}

// decodeSockaddr reads a sockaddr_in or sockaddr_in6 as the kernel and
// applications lay it out: the family in host order, the port in network
// order. Other families give the zero AddrPort.
func decodeSockaddr(sa []byte) netip.AddrPort {
	if len(sa) < sockaddrLen {
		return netip.AddrPort{}
	}
	port := binary.BigEndian.Uint16(sa[2:])
	switch binary.NativeEndian.Uint16(sa[0:]) {
	case afInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(sa[4:8])), port)
	case afInet6:
		// sin6_flowinfo occupies bytes 4..8; the address follows.
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(sa[8:24])), port)
	}
	return netip.AddrPort{}
}

// cString returns b up to its first NUL byte.
func cString(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
