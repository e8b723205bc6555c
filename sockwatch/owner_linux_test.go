package sockwatch

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// TestIntegrationReusedSocketOwner alternates two thread names over
// thousands of short-lived TCP sockets, so that the kernel reuses struct
// sock memory (its TCP slab is LIFO per CPU) between sockets that two
// "processes" connected and sockets that nobody connected. Each round the
// named thread has a connect refused (an asynchronous error it owns), and
// then is the client of a connection that it resets, whose accepted server
// socket receives ECONNRESET. The accepted socket never went through
// connect, so its owner is unknown and the name filter must drop it; an
// owner left behind by an earlier socket at the same address would make
// it an event named after that earlier thread.
func TestIntegrationReusedSocketOwner(t *testing.T) {
	t.Parallel()
	const rounds = 3000
	other := uniqueComm()
	h := attach(t, Config{RingBufferSize: 8 << 20, Comms: []string{other}, SyscallTracing: true})
	ns := netnstest.New(t)
	closed := closedPort(t, ns)
	lo := [4]byte{127, 0, 0, 1}

	var want []Event
	h.do(ns, func(tid int) error {
		lfd, listening, err := listenLoopback()
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		defer setThreadName(h.comm)
		for i := range rounds {
			comm := h.comm
			if i%2 == 1 {
				comm = other
			}
			if err := setThreadName(comm); err != nil {
				return err
			}
			if err := refusedConnect(lo, closed); err != nil {
				return err
			}
			ev := h.syscallEvent(ns, tid, OpAsync, syscall.ECONNREFUSED, netip.AddrPortFrom(netip.AddrFrom4(lo), closed).String())
			ev.Comm, ev.Protocol = comm, syscall.IPPROTO_TCP
			want = append(want, ev)
			if err := resetAccepted(lfd, listening); err != nil {
				return err
			}
		}
		return marker()
	})
	got := h.untilMarker(len(want))
	// A reset on an accepted socket carries the client's port; the
	// client's own SO_LINGER 0 abort reports ECONNRESET with port 0.
	var wrong []Event
	for _, ev := range got {
		if ev.Errno == syscall.ECONNRESET && ev.Dst.Port() != 0 {
			wrong = append(wrong, ev)
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d resets on accepted sockets were attributed to a thread that connected an earlier socket, e.g. %+v", len(wrong), rounds, wrong[0])
	}
	h.expect(got, want)
	if s := h.w.Stats(); s.Dropped != 0 {
		t.Errorf("Stats.Dropped = %d, want 0 (ring buffer too small for the test)", s.Dropped)
	}
}

// listenLoopback returns a TCP socket listening on 127.0.0.1 at a port
// the kernel chose, and its address.
func listenLoopback() (int, *unix.SockaddrInet4, error) {
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(lfd)
		return -1, nil, err
	}
	if err := unix.Listen(lfd, 16); err != nil {
		unix.Close(lfd)
		return -1, nil, err
	}
	sa, err := unix.Getsockname(lfd)
	if err != nil {
		unix.Close(lfd)
		return -1, nil, err
	}
	return lfd, sa.(*unix.SockaddrInet4), nil
}

// refusedConnect has a blocking TCP connect to a closed port refused.
func refusedConnect(addr [4]byte, port uint16) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: addr, Port: int(port)}); !errors.Is(err, unix.ECONNREFUSED) {
		return fmt.Errorf("connect to closed port %d: %v, want ECONNREFUSED", port, err)
	}
	return nil
}

// connectAccepted connects a client to the listener lfd and accepts it:
// the client's and the accepted socket.
func connectAccepted(lfd int, dst *unix.SockaddrInet4) (c, s int, err error) {
	c, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	if err := unix.Connect(c, dst); err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("connect to listener: %w", err)
	}
	s, _, err = unix.Accept4(lfd, unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(c)
		return -1, -1, fmt.Errorf("accept: %w", err)
	}
	return c, s, nil
}

// resetAccepted connects to the listener lfd, accepts, and closes the
// client with SO_LINGER 0, so that the accepted socket receives a reset.
func resetAccepted(lfd int, dst *unix.SockaddrInet4) error {
	c, s, err := connectAccepted(lfd, dst)
	if err != nil {
		return err
	}
	defer unix.Close(s)
	if err := unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		unix.Close(c)
		return err
	}
	if err := unix.Close(c); err != nil {
		return err
	}
	// The reset reached the accepted socket when a read reports it.
	if _, err := unix.Read(s, make([]byte, 1)); !errors.Is(err, unix.ECONNRESET) {
		return fmt.Errorf("read on the accepted socket: %v, want ECONNRESET", err)
	}
	return nil
}

// TestIntegrationUnixSocketIgnored has a connect to a dead local daemon's
// Unix socket, a sendto to it and a send on a connected Unix datagram
// socket whose peer went away fail with ECONNREFUSED under syscall tracing:
// none of them is a network error, so only the IPv4 failure that follows
// is reported.
func TestIntegrationUnixSocketIgnored(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	ns := netnstest.New(t)
	dir := t.TempDir()
	deadStream := filepath.Join(dir, "stream.sock")
	deadDgram := filepath.Join(dir, "dgram.sock")

	var want []Event
	h.do(ns, func(tid int) error {
		// A daemon that bound its socket and died: the file stays.
		for _, d := range []struct {
			path string
			typ  int
		}{{deadStream, unix.SOCK_STREAM}, {deadDgram, unix.SOCK_DGRAM}} {
			fd, err := unix.Socket(unix.AF_UNIX, d.typ|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = unix.Bind(fd, &unix.SockaddrUnix{Name: d.path})
			unix.Close(fd)
			if err != nil {
				return err
			}
		}
		stream, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(stream)
		if err := unix.Connect(stream, &unix.SockaddrUnix{Name: deadStream}); !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("unix connect to %s: %v, want ECONNREFUSED", deadStream, err)
		}
		dgram, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(dgram)
		if err := unix.Sendto(dgram, []byte("x"), 0, &unix.SockaddrUnix{Name: deadDgram}); !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("unix sendto %s: %v, want ECONNREFUSED", deadDgram, err)
		}
		// A connected datagram socket whose peer closes: the send names
		// no destination, so the family comes from the socket itself.
		pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(pair[0])
		unix.Close(pair[1])
		if err := unix.Sendto(pair[0], []byte("x"), 0, nil); !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("sendto without address on a unix socket whose peer closed: %v, want ECONNREFUSED", err)
		}

		// The same errno over IPv4 is reported (the test can fail).
		udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(udp)
		if err := unix.Sendto(udp, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 9}, Port: 53}); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("udp sendto: %v, want ENETUNREACH", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpSendto, syscall.ENETUNREACH, "192.0.2.9:53"))
		return marker()
	})
	h.expect(h.untilMarker(len(want)), want)
}

// TestIntegrationOrphanResetFreesOwner: a socket the application closed
// (orphaned, SOCK_DEAD) that then receives a reset moves to TCP_CLOSE with
// an error stored but no error report (the kernel reports errors only to
// sockets that still have a user). Its owner entry must go at that state
// change; kept for a report that never comes, it would stay until LRU
// eviction and push out the owners of live, long-lived connections.
func TestIntegrationOrphanResetFreesOwner(t *testing.T) {
	t.Parallel()
	const rounds = 50
	h := attach(t, Config{})
	ns := netnstest.New(t)
	h.do(ns, func(int) error {
		lfd, listening, err := listenLoopback()
		if err != nil {
			return err
		}
		defer unix.Close(lfd)
		for range rounds {
			if err := resetOrphan(lfd, listening); err != nil {
				return err
			}
		}
		return nil
	})
	owners := h.w.w.coll.Maps[sockwatchMapOwners]
	count := func() (n int) {
		var k uint64
		var v [32]byte // struct owner: pid_tgid, cgroup, comm[16]
		for it := owners.Iterate(); it.Next(&k, &v); {
			if cString(v[16:]) == h.comm {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(waitTimeout)
	for count() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d owner entries of %d closed sockets still in the map after %v, want 0", count(), rounds, waitTimeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// resetOrphan connects to the listener lfd, accepts, closes the client
// (which sends its FIN and becomes an orphan), then closes the accepted
// socket with SO_LINGER 0, so that the orphan receives a reset.
func resetOrphan(lfd int, dst *unix.SockaddrInet4) error {
	c, s, err := connectAccepted(lfd, dst)
	if err != nil {
		return err
	}
	if err := unix.Close(c); err != nil {
		unix.Close(s)
		return err
	}
	// The client's FIN arrived when a read on the accepted socket sees
	// the end of the stream.
	if n, err := unix.Read(s, make([]byte, 1)); n != 0 || err != nil {
		unix.Close(s)
		return fmt.Errorf("read on the accepted socket: %d, %v, want the end of the stream", n, err)
	}
	if err := unix.SetsockoptLinger(s, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0}); err != nil {
		unix.Close(s)
		return err
	}
	return unix.Close(s)
}
