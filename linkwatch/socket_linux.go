package linkwatch

import (
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon/internal/nsthread"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The rtnetlink multicast groups linkwatch joins, as the legacy bitmask
// that bind(2) takes (bit g-1 for group g; every group here is below 32).
const groups = 1<<(unix.RTNLGRP_LINK-1) |
	1<<(unix.RTNLGRP_NEIGH-1) |
	1<<(unix.RTNLGRP_IPV4_IFADDR-1) |
	1<<(unix.RTNLGRP_IPV6_IFADDR-1) |
	1<<(unix.RTNLGRP_IPV4_ROUTE-1) |
	1<<(unix.RTNLGRP_IPV6_ROUTE-1) |
	1<<(unix.RTNLGRP_IPV4_RULE-1) |
	1<<(unix.RTNLGRP_IPV6_RULE-1)

// receiveSize is the datagram buffer. The kernel caps a dump datagram at
// 32 KiB and multicast notifications are far smaller; a datagram that
// does not fit is reported as lost rather than silently cut (MSG_TRUNC).
const receiveSize = 64 << 10

// errTruncated reports a datagram larger than the receive buffer.
var errTruncated = errors.New("linkwatch: netlink datagram larger than the receive buffer")

// errDumpInterrupted reports NLM_F_DUMP_INTR: the table changed while the
// kernel dumped it, so the dump may be inconsistent.
var errDumpInterrupted = errors.New("linkwatch: dump interrupted by a concurrent change (NLM_F_DUMP_INTR)")

// sock is one NETLINK_ROUTE socket. Reads go through the runtime poller, so
// close unblocks a pending receive (os.ErrClosed), from any goroutine.
type sock struct {
	f   *os.File
	rc  syscall.RawConn
	buf []byte
	pid uint32 // port id the kernel assigned
	seq atomic.Uint32
	// deadline is the read deadline set last (zero: none).
	deadline time.Time
	// rcvbuf is the receive buffer the kernel granted, in the bytes
	// SO_RCVBUF was asked for (half what getsockopt reports: the kernel
	// doubles the value for its bookkeeping); 0 when unknown.
	rcvbuf int
}

// openSocket opens a NETLINK_ROUTE socket in namespace ns (0: the current
// one), joined to the multicast groups in mask, with a receive buffer of
// rcvbuf bytes (0: the kernel's default).
func openSocket(ns netns.NsHandle, mask uint32, rcvbuf int) (*sock, error) {
	var (
		fd  int
		err error
	)
	if ns == 0 {
		fd, err = socketHere()
	} else {
		fd, err = socketIn(ns)
	}
	if err != nil {
		return nil, err
	}
	if err := setup(fd, mask, rcvbuf); err != nil {
		unix.Close(fd)
		return nil, err
	}
	s := &sock{f: os.NewFile(uintptr(fd), "rtnetlink"), buf: make([]byte, receiveSize)}
	if n, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF); err == nil {
		s.rcvbuf = n / 2
	}
	if s.rc, err = s.f.SyscallConn(); err != nil {
		s.f.Close()
		return nil, fmt.Errorf("linkwatch: netlink socket: %w", err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		s.f.Close()
		return nil, fmt.Errorf("linkwatch: netlink getsockname: %w", os.NewSyscallError("getsockname", err))
	}
	if nl, ok := sa.(*unix.SockaddrNetlink); ok {
		s.pid = nl.Pid
	}
	return s, nil
}

func socketHere() (int, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return -1, fmt.Errorf("linkwatch: netlink socket: %w", os.NewSyscallError("socket", err))
	}
	return fd, nil
}

// socketIn creates the socket inside namespace ns: a socket belongs to the
// namespace of the thread that created it, for its whole life.
func socketIn(ns netns.NsHandle) (int, error) {
	fd := -1
	err := nsthread.Do(ns, "linkwatch: Config.NetNS", func() (err error) {
		fd, err = socketHere()
		return err
	}, func() {
		if fd >= 0 {
			unix.Close(fd)
		}
	})
	if err != nil {
		return -1, err
	}
	return fd, nil
}

func setup(fd int, mask uint32, rcvbuf int) error {
	if rcvbuf > 0 {
		// FORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf); err != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf); err != nil {
				return fmt.Errorf("linkwatch: netlink receive buffer of %d bytes: %w", rcvbuf, os.NewSyscallError("setsockopt", err))
			}
		}
	}
	// Extended acks add the kernel's reason to errors; best effort.
	_ = unix.SetsockoptInt(fd, unix.SOL_NETLINK, unix.NETLINK_EXT_ACK, 1)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: mask}); err != nil {
		return fmt.Errorf("linkwatch: netlink bind: %w", os.NewSyscallError("bind", err))
	}
	return nil
}

// join adds the socket to a multicast group. Groups above 31 do not fit
// the bitmask bind(2) takes (RTNLGRP_NEXTHOP is 32) and need
// NETLINK_ADD_MEMBERSHIP.
func (s *sock) join(group int) error {
	var err error
	cerr := s.rc.Control(func(fd uintptr) {
		err = unix.SetsockoptInt(int(fd), unix.SOL_NETLINK, unix.NETLINK_ADD_MEMBERSHIP, group)
	})
	if cerr != nil {
		return cerr
	}
	if err != nil {
		return os.NewSyscallError("setsockopt NETLINK_ADD_MEMBERSHIP", err)
	}
	return nil
}

// setDeadline makes recv fail with os.ErrDeadlineExceeded at t (zero:
// never). Setting the deadline already set costs nothing.
func (s *sock) setDeadline(t time.Time) error {
	if t.Equal(s.deadline) {
		return nil
	}
	s.deadline = t
	return s.f.SetReadDeadline(t)
}

// close closes the socket; a concurrent recv returns os.ErrClosed. It may
// be called more than once.
func (s *sock) close() { _ = s.f.Close() }

// recv reads one datagram into s.buf and returns its length and sender
// port id. A datagram cut short is errTruncated; a socket overflow is
// unix.ENOBUFS (the socket stays usable).
func (s *sock) recv() (int, uint32, error) {
	var (
		n    int
		from unix.Sockaddr
		err  error
	)
	rerr := s.rc.Read(func(fd uintptr) bool {
		n, from, err = unix.Recvfrom(int(fd), s.buf, unix.MSG_TRUNC)
		return err != unix.EAGAIN
	})
	if rerr != nil {
		return 0, 0, rerr
	}
	if err != nil {
		return 0, 0, os.NewSyscallError("recvfrom", err)
	}
	if n > len(s.buf) {
		return 0, 0, errTruncated
	}
	var pid uint32
	if nl, ok := from.(*unix.SockaddrNetlink); ok {
		pid = nl.Pid
	} else {
		pid = ^uint32(0) // not from netlink at all: never the kernel
	}
	return n, pid, nil
}

// drain discards every datagram queued on the socket without blocking.
//
// After an overflow the kernel marks a netlink socket congested and drops
// further messages without reporting ENOBUFS again until its queue has
// been emptied (netlink_overrun and netlink_rcv_wake in
// net/netlink/af_netlink.c). Draining before a re-read empties the queue,
// so the next drop is reported again, and what is discarded is older than
// the re-read.
func (s *sock) drain() error {
	for {
		var err error
		rerr := s.rc.Read(func(fd uintptr) bool {
			_, _, err = unix.Recvfrom(int(fd), s.buf, unix.MSG_DONTWAIT)
			return true // one attempt: never wait for more
		})
		switch {
		case rerr != nil:
			return rerr
		case err == unix.EAGAIN:
			return nil
		case err != nil && err != unix.ENOBUFS:
			return os.NewSyscallError("recvfrom", err)
		}
	}
}

// dump asks the kernel for every object of a kind (RTM_GETLINK, ...) and
// calls fn for each reply. It returns errDumpInterrupted, after the whole
// dump was read, when the kernel flagged the dump as inconsistent.
func (s *sock) dump(typ uint16, fn func(h header, data []byte) error) error {
	var fam int
	switch typ {
	case unix.RTM_GETLINK:
		fam = unix.SizeofIfInfomsg
	case unix.RTM_GETADDR:
		fam = unix.SizeofIfAddrmsg
	case unix.RTM_GETROUTE:
		fam = unix.SizeofRtMsg
	case unix.RTM_GETRULE:
		fam = sizeofFibRuleHdr
	case unix.RTM_GETNEIGH:
		fam = unix.SizeofNdMsg
	case unix.RTM_GETNEXTHOP:
		fam = sizeofNhmsg
	}
	seq := s.seq.Add(1)
	req := make([]byte, unix.NLMSG_HDRLEN+fam) // family AF_UNSPEC: every family
	ne.PutUint32(req, uint32(len(req)))
	ne.PutUint16(req[4:], typ)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], seq)
	var intr bool
	err := s.exchange(req, func(h header, data []byte) (bool, error) {
		if h.flags&unix.NLM_F_DUMP_INTR != 0 {
			intr = true
		}
		switch h.typ {
		case unix.NLMSG_DONE:
			return true, nil
		case unix.NLMSG_ERROR:
			if len(data) < 4 {
				return true, &parseError{what: "nlmsgerr", got: len(data), want: 4}
			}
			if e := -int32(ne.Uint32(data)); e != 0 {
				return true, fmt.Errorf("linkwatch: netlink dump: %w", os.NewSyscallError("netlink", unix.Errno(e)))
			}
			return true, nil
		}
		return false, fn(h, data)
	})
	if err == nil && intr {
		return errDumpInterrupted
	}
	return err
}

// exchange sends the request req and calls fn with each message of the
// kernel's reply to it (the messages carrying its sequence number), until
// fn reports the reply complete or fails.
func (s *sock) exchange(req []byte, fn func(h header, data []byte) (done bool, err error)) error {
	seq := ne.Uint32(req[8:])
	var serr error
	werr := s.rc.Write(func(fd uintptr) bool {
		serr = unix.Sendto(int(fd), req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK})
		return serr != unix.EAGAIN
	})
	if werr != nil {
		return fmt.Errorf("linkwatch: netlink request: %w", werr)
	}
	if serr != nil {
		return fmt.Errorf("linkwatch: netlink request: %w", os.NewSyscallError("sendto", serr))
	}
	for {
		n, from, err := s.recv()
		if err != nil {
			return fmt.Errorf("linkwatch: netlink reply: %w", err)
		}
		if from != 0 {
			continue // not the kernel
		}
		done := false
		err = splitMessages(s.buf[:n], func(h header, data []byte) (err error) {
			if h.seq != seq || done {
				return nil // a reply to an earlier, abandoned request
			}
			done, err = fn(h, data)
			return err
		})
		if err != nil || done {
			return err
		}
	}
}
