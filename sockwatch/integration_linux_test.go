package sockwatch

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// The integration tests provoke real failures inside throw-away network
// namespaces while a real Watcher is attached to the real kernel. Tests run
// in parallel and every Watcher sees the whole machine, so each test gives
// the thread that provokes the failures a unique name (prctl PR_SET_NAME)
// and filters on it with Config.Comms: that both isolates the tests and
// proves the in-kernel name filter.
//
// "Exactly one event" needs to know when no more events can come. After
// the provoking action each test performs a marker failure (a UDP connect
// to an unroutable address, reported synchronously) on the same thread and
// reads until the marker arrives; the ring buffer is ordered, and every
// event the action caused was queued before the action returned, so
// whatever precedes the marker is everything the action produced.

// waitTimeout bounds each wait for events. Only the EHOSTUNREACH case
// waits for a timer in the kernel (neighbour resolution, shortened to
// about 0.3 s below); the rest arrive within milliseconds.
const waitTimeout = 15 * time.Second

// markerAddr is the destination of the marker failure; no test namespace
// has a route to it (TEST-NET-2).
var markerAddr = netip.MustParseAddrPort("198.51.100.7:7")

// harness is one attached Watcher filtered to one thread name.
type harness struct {
	t      *testing.T
	w      *Watcher
	comm   string
	events <-chan Event
	// stop stops the Watcher, waits for Run to return (checking that it
	// returned cleanly) and returns the events still buffered. Stats are
	// final afterwards. attach calls it at the end of the test too; only
	// the first call does anything.
	stop func() []Event
}

// uniqueComm returns a thread name no other test uses (at most 15 bytes).
func uniqueComm() string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	return "sw" + hex.EncodeToString(b[:])
}

// attach starts a Watcher with cfg (its Comms set to a fresh name) and
// stops it at the end of the test, checking that Run returned cleanly.
func attach(t *testing.T, cfg Config) *harness {
	t.Helper()
	return attachWith(t, cfg, nil)
}

// attachWith is attach, calling before (if not nil) between New and Run.
func attachWith(t *testing.T, cfg Config, before func(*Watcher)) *harness {
	t.Helper()
	netnstest.RequirePrivileged(t)
	h := &harness{t: t, comm: uniqueComm()}
	cfg.Comms = append(cfg.Comms, h.comm)
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if before != nil {
		before(w)
	}
	h.w, h.events = w, w.Events()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	var once sync.Once
	h.stop = func() (rest []Event) {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			for ev := range h.events { // Run closed it; drain what was buffered
				rest = append(rest, ev)
			}
		})
		return rest
	}
	t.Cleanup(func() { h.stop() })
	return h
}

// do runs fn inside ns on a locked thread named h.comm and passes it the
// thread ID. The old name is restored, because the thread goes back to
// the Go scheduler afterwards.
func (h *harness) do(ns *netnstest.NS, fn func(tid int) error) {
	h.t.Helper()
	if err := asThread(ns, h.comm, fn); err != nil {
		h.t.Fatal(err)
	}
}

// asThread runs fn inside ns on a locked thread named comm and passes it
// the thread ID. The old name is restored, because the thread goes back
// to the Go scheduler afterwards.
func asThread(ns *netnstest.NS, comm string, fn func(tid int) error) error {
	return ns.Do(func() error {
		var old [16]byte
		if err := unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0); err != nil {
			return fmt.Errorf("PR_GET_NAME: %w", err)
		}
		if err := setThreadName(comm); err != nil {
			return err
		}
		defer setThreadName(cString(old[:]))
		return fn(unix.Gettid())
	})
}

// sendUnroutable sends n UDP datagrams to 192.0.2.1:9, each failing with
// ENETUNREACH in a namespace without a route there, until stop (if not
// nil) is closed.
func sendUnroutable(n int, stop <-chan struct{}) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	for i := 0; n < 0 || i < n; i++ {
		select {
		case <-stop:
			return nil
		default:
		}
		if err := unix.Sendto(fd, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 9}); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("udp sendto: %v, want ENETUNREACH", err)
		}
	}
	return nil
}

// setThreadName sets the calling thread's comm.
func setThreadName(name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(p)), 0, 0, 0); err != nil {
		return fmt.Errorf("PR_SET_NAME %q: %w", name, err)
	}
	return nil
}

// marker provokes the marker failure on the current thread.
func marker() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: markerAddr.Addr().As4(), Port: int(markerAddr.Port())})
	if !errors.Is(err, unix.ENETUNREACH) {
		return fmt.Errorf("marker connect to %v: got %v, want ENETUNREACH", markerAddr, err)
	}
	return nil
}

// untilMarker returns the test's events: those that arrive before the
// marker event, and, until want of them are in or the deadline passes,
// those after it. An asynchronous error is traced in the kernel after the
// socket's waiters were woken (sk_error_report wakes them, then fires
// sock:inet_sk_error_report), and under load the softirq that does both
// can be delayed between the two (it may run in ksoftirqd): the failing
// thread can return, connect the marker and have it queued first. Extra
// events before the marker are still caught; one after the marker, only
// if it arrives before the wanted ones are complete.
func (h *harness) untilMarker(want int) []Event {
	h.t.Helper()
	return h.untilMarkerEvent(want, func(ev Event) bool {
		return ev.Op == OpConnect && ev.Dst == markerAddr && ev.Errno == syscall.ENETUNREACH
	})
}

// untilMarkerEvent is untilMarker with another marker: the first event
// for which isMarker is true.
func (h *harness) untilMarkerEvent(want int, isMarker func(Event) bool) []Event {
	h.t.Helper()
	var got []Event
	marked := false
	deadline := time.After(waitTimeout)
	for !marked || len(got) < want {
		select {
		case ev, ok := <-h.events:
			if !ok {
				h.t.Fatalf("Events closed before the marker; got %v", got)
			}
			if isMarker(ev) {
				marked = true
				continue
			}
			got = append(got, ev)
		case <-deadline:
			h.t.Fatalf("within %v: marker seen %v, got %v, want %d events", waitTimeout, marked, got, want)
		}
	}
	return got
}

// expect compares events with want, ignoring the time fields (checked for
// plausibility instead) and Cgroup (checked against /proc/self/cgroup).
func (h *harness) expect(got, want []Event) {
	h.t.Helper()
	cg := selfCgroupID(h.t)
	for _, ev := range got {
		if ev.Mono <= 0 || ev.Time.IsZero() || time.Since(ev.Time) > time.Minute || time.Until(ev.Time) > time.Second {
			h.t.Errorf("event %v: implausible time %v (mono %v)", ev.Errno, ev.Time, ev.Mono)
		}
		if cg != 0 && ev.Cgroup != cg {
			h.t.Errorf("event %v: cgroup %d, want %d (from /proc/self/cgroup)", ev.Errno, ev.Cgroup, cg)
		}
	}
	opt := cmpopts.IgnoreFields(Event{}, "Time", "Mono", "Cgroup")
	if diff := cmp.Diff(want, got, opt, cmpopts.EquateEmpty(), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
		h.t.Errorf("events (-want +got):\n%s", diff)
	}
}

// nsInode returns the inode of ns's network namespace, which events carry.
func nsInode(t *testing.T, ns *netnstest.NS) uint32 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(int(ns.Handle), &st); err != nil {
		t.Fatal(err)
	}
	return uint32(st.Ino)
}

// selfCgroupID returns the cgroup v2 ID of this process (the inode of its
// cgroup directory), or 0 if the cgroup2 mount cannot be found.
func selfCgroupID(t *testing.T) uint64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return 0
	}
	var path string
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			path = p
		}
	}
	for _, mnt := range cgroup2Mounts() {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(mnt, path), &st); err == nil {
			return st.Ino
		}
	}
	return 0
}

// cgroup2Mounts returns the mount points of the cgroup v2 hierarchy
// (/sys/fs/cgroup, or /sys/fs/cgroup/unified on hybrid systems).
func cgroup2Mounts() []string {
	mounts, err := os.Open("/proc/self/mounts")
	if err != nil {
		return nil
	}
	defer mounts.Close()
	var out []string
	sc := bufio.NewScanner(mounts)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) > 2 && f[2] == "cgroup2" {
			out = append(out, f[1])
		}
	}
	return out
}

// syscallEvent is the event a failed syscall on this thread should produce.
func (h *harness) syscallEvent(ns *netnstest.NS, tid int, op Op, errno syscall.Errno, dst string) Event {
	return Event{
		PID: uint32(os.Getpid()), TID: uint32(tid), Comm: h.comm, Errno: errno, Op: op,
		Dst: netip.MustParseAddrPort(dst), NetNS: nsInode(h.t, ns),
	}
}

func TestIntegrationSynchronousErrors(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	ns := netnstest.New(t) // only lo: nothing else is routable

	var want []Event
	h.do(ns, func(tid int) error {
		// TCP connect with no route: ENETUNREACH from connect(2) itself.
		tcp, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(tcp)
		if err := unix.Connect(tcp, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 1}, Port: 443}); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("tcp connect: %v, want ENETUNREACH", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpConnect, syscall.ENETUNREACH, "192.0.2.1:443"))

		// UDP sendto an unreachable network, v4 and v6.
		udp, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(udp)
		if err := unix.Sendto(udp, []byte("x"), 0, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 2}, Port: 53}); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("udp sendto: %v, want ENETUNREACH", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpSendto, syscall.ENETUNREACH, "192.0.2.2:53"))

		udp6, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(udp6)
		to6 := &unix.SockaddrInet6{Addr: netip.MustParseAddr("2001:db8::1").As16(), Port: 5353}
		if err := unix.Sendto(udp6, []byte("x"), 0, to6); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("udp6 sendto: %v, want ENETUNREACH", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpSendto, syscall.ENETUNREACH, "[2001:db8::1]:5353"))

		// sendmsg with a destination in msg_name.
		if _, err := unix.SendmsgN(udp, []byte("x"), nil, &unix.SockaddrInet4{Addr: [4]byte{192, 0, 2, 3}, Port: 123}, 0); !errors.Is(err, unix.ENETUNREACH) {
			return fmt.Errorf("udp sendmsg: %v, want ENETUNREACH", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpSendmsg, syscall.ENETUNREACH, "192.0.2.3:123"))
		return marker()
	})
	h.expect(h.untilMarker(len(want)), want)
}

func TestIntegrationConnectionRefused(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	ns := netnstest.New(t)
	port := closedPort(t, ns)

	for _, tc := range []struct {
		name    string
		connect func(dst netip.AddrPort) error
	}{
		// Go's (non-blocking) connect: the error reaches the process only
		// through SO_ERROR, so only inet_sk_error_report sees it.
		{"nonblocking", func(dst netip.AddrPort) error {
			_, err := net.DialTimeout("tcp", dst.String(), waitTimeout)
			return err
		}},
		// A blocking connect sees the same error twice in the kernel
		// (socket error, then the syscall's return); one event is reported.
		{"blocking", connectBlocking},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)
			var want []Event
			h.do(ns, func(tid int) error {
				if err := tc.connect(dst); !errors.Is(err, syscall.ECONNREFUSED) {
					return fmt.Errorf("connect %v: %v, want ECONNREFUSED", dst, err)
				}
				ev := h.syscallEvent(ns, tid, OpAsync, syscall.ECONNREFUSED, dst.String())
				ev.Protocol = syscall.IPPROTO_TCP
				want = append(want, ev)
				return marker()
			})
			h.expect(h.untilMarker(len(want)), want)
		})
	}
}

// closedPort returns a TCP port on 127.0.0.1 in ns that nothing listens on.
func closedPort(t *testing.T, ns *netnstest.NS) uint16 {
	t.Helper()
	var port uint16
	if err := ns.Do(func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port = uint16(l.Addr().(*net.TCPAddr).Port)
		return l.Close()
	}); err != nil {
		t.Fatal(err)
	}
	return port
}

func TestIntegrationConnectionReset(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	ns := netnstest.New(t)

	var l net.Listener
	if err := ns.Do(func() (err error) {
		l, err = net.Listen("tcp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	served := make(chan error, 1)
	reset := make(chan struct{}) // closed once the client's dial returned
	var resetOnce sync.Once
	release := func() { resetOnce.Do(func() { close(reset) }) }
	defer release() // also on failure, so the server goroutine ends
	go func() {
		c, err := l.Accept()
		if err != nil {
			served <- err
			return
		}
		<-reset
		// SO_LINGER 0: close sends a RST instead of a FIN.
		if err := c.(*net.TCPConn).SetLinger(0); err != nil {
			served <- err
			return
		}
		served <- c.Close()
	}()

	dst := netip.MustParseAddrPort(l.Addr().String())
	var want []Event
	h.do(ns, func(tid int) error {
		c, err := net.Dial("tcp", dst.String())
		if err != nil {
			return err
		}
		defer c.Close()
		release()
		if err := <-served; err != nil {
			return err
		}
		// The read fails once the kernel processed the RST; the event
		// may still be on its way (see untilMarker).
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("read after reset: %v, want ECONNRESET", err)
		}
		ev := h.syscallEvent(ns, tid, OpAsync, syscall.ECONNRESET, dst.String())
		ev.Protocol = syscall.IPPROTO_TCP
		want = append(want, ev)
		return marker()
	})
	h.expect(h.untilMarker(len(want)), want)
}

// unansweredLAN links a to b by a veth pair, va with address addr and vb
// with none, so that nobody answers a's ARP: a connect to another address
// of the LAN fails with EHOSTUNREACH, through an ICMP error the kernel
// sends itself. One ARP probe 300 ms apart instead of three 1 s apart
// makes the neighbour entry fail fast.
func unansweredLAN(t *testing.T, a, b *netnstest.NS, addr string) {
	t.Helper()
	netnstest.Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", addr, "dev", "va")
	if err := a.Do(func() error {
		for file, v := range map[string]string{"mcast_solicit": "1", "retrans_time_ms": "300"} {
			if err := os.WriteFile("/proc/sys/net/ipv4/neigh/va/"+file, []byte(v), 0o644); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// TestIntegrationHostUnreachable: a connect that fails because nobody
// answers ARP is one EHOSTUNREACH event, whoever fetches the error and
// when. The kernel reports such an ICMP error on the socket twice (see
// "One event per failure" in the package documentation), and the thread
// that takes the error decides which of those reports still sees it:
//
//   - nonblocking: Go's dial; its thread may take the error (SO_ERROR)
//     between the two reports, or, on a busy machine, after both.
//   - blocking: a blocking connect; its thread can take the error only
//     once it holds the socket lock, which the kernel keeps until both
//     reports are made: always after both, and the connect returns the
//     error too (the syscall program's own report, which must stay
//     silent).
//   - late: a non-blocking connect whose thread waits until the socket
//     has closed and the kernel released its lock (TCP_INFO takes it)
//     before it takes the error: the late order, forced.
func TestIntegrationHostUnreachable(t *testing.T) {
	t.Parallel()
	// With syscall tracing the marker is the usual synchronous failure.
	// Without it (the default configuration) it is an asynchronous one: a
	// refused blocking connect, reported before the connect returns.
	for _, cfg := range []struct {
		name string
		cfg  Config
	}{
		{"syscalls", Config{SyscallTracing: true}},
		{"async-only", Config{}},
	} {
		t.Run(cfg.name, func(t *testing.T) {
			t.Parallel()
			h := attach(t, cfg.cfg)
			a, b := netnstest.New(t), netnstest.New(t)
			unansweredLAN(t, a, b, "10.77.0.1/24")
			mark, isMarker := marker, func(ev Event) bool {
				return ev.Op == OpConnect && ev.Dst == markerAddr && ev.Errno == syscall.ENETUNREACH
			}
			if !cfg.cfg.SyscallTracing {
				refused := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), closedPort(t, a))
				mark = func() error {
					if err := connectBlocking(refused); !errors.Is(err, syscall.ECONNREFUSED) {
						return fmt.Errorf("marker connect %v: %v, want ECONNREFUSED", refused, err)
					}
					return nil
				}
				isMarker = func(ev Event) bool { return ev.Dst == refused && ev.Errno == syscall.ECONNREFUSED }
			}
			for _, tc := range []struct {
				name    string
				dst     netip.AddrPort
				connect func(dst netip.AddrPort) error
			}{
				{"nonblocking", netip.MustParseAddrPort("10.77.0.99:80"), func(dst netip.AddrPort) error {
					_, err := net.DialTimeout("tcp", dst.String(), waitTimeout)
					return err
				}},
				{"blocking", netip.MustParseAddrPort("10.77.0.98:80"), connectBlocking},
				{"late", netip.MustParseAddrPort("10.77.0.97:80"), connectFetchLate},
			} {
				t.Run(tc.name, func(t *testing.T) {
					h := *h // the same Watcher, failing this subtest
					h.t = t
					var want []Event
					h.do(a, func(tid int) error {
						if err := tc.connect(tc.dst); !errors.Is(err, syscall.EHOSTUNREACH) {
							return fmt.Errorf("connect %v: %v, want EHOSTUNREACH", tc.dst, err)
						}
						ev := h.syscallEvent(a, tid, OpAsync, syscall.EHOSTUNREACH, tc.dst.String())
						ev.Protocol = syscall.IPPROTO_TCP
						want = append(want, ev)
						return mark()
					})
					h.expect(h.untilMarkerEvent(len(want), isMarker), want)
				})
			}
		})
	}
}

// connectBlocking connects a blocking TCP socket to dst and returns the
// connect's error.
func connectBlocking(dst netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
}

// connectFetchLate connects a non-blocking TCP socket to dst and returns
// the connect's error, fetched (SO_ERROR) only after the socket has closed
// and the kernel has released the socket's lock: getsockopt TCP_INFO
// takes that lock, which the kernel holds while it stores, reports and
// closes, so when TCP_INFO shows the socket closed, every report of the
// failure has been made. poll waits for the failure without a clock.
func connectFetchLate(dst netip.AddrPort) error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst.Addr().As4(), Port: int(dst.Port())})
	if !errors.Is(err, unix.EINPROGRESS) {
		return fmt.Errorf("non-blocking connect: %v, want EINPROGRESS", err)
	}
	deadline := time.Now().Add(waitTimeout)
	for {
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLOUT}}
		if _, err := unix.Poll(fds, int(time.Until(deadline).Milliseconds())); err != nil && !errors.Is(err, unix.EINTR) {
			return fmt.Errorf("poll: %w", err)
		}
		info, err := unix.GetsockoptTCPInfo(fd, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			return fmt.Errorf("TCP_INFO: %w", err)
		}
		if info.State == tcpClose {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("socket still in TCP state %d after %v", info.State, waitTimeout)
		}
	}
	errno, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ERROR)
	if err != nil {
		return fmt.Errorf("SO_ERROR: %w", err)
	}
	return syscall.Errno(errno)
}

// tcpClose is TCP_CLOSE, the TCP state of a closed socket (tcpi_state).
const tcpClose = 7

func TestIntegrationSuccessIsSilent(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	ns := netnstest.New(t)

	var l net.Listener
	var u net.PacketConn
	if err := ns.Do(func() (err error) {
		if l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			return err
		}
		u, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	defer u.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	h.do(ns, func(int) error {
		udpDst := u.LocalAddr().(*net.UDPAddr).AddrPort()
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: udpDst.Addr().As4(), Port: int(udpDst.Port())}
		for range 100 {
			if err := unix.Sendto(fd, []byte("ok"), 0, to); err != nil {
				return err
			}
			if _, err := unix.SendmsgN(fd, []byte("ok"), nil, to, 0); err != nil {
				return err
			}
		}
		for range 10 {
			c, err := net.Dial("tcp", l.Addr().String())
			if err != nil {
				return err
			}
			c.Close()
		}
		// A failure outside the errno set is not reported either.
		if err := unix.Sendto(fd, make([]byte, 70000), 0, to); !errors.Is(err, unix.EMSGSIZE) {
			return fmt.Errorf("oversized sendto: %v, want EMSGSIZE", err)
		}
		return marker()
	})
	h.expect(h.untilMarker(0), nil)
}

// TestIntegrationAsyncOnly checks the default configuration (no syscall
// tracing): asynchronous errors are reported, synchronous ones are not.
func TestIntegrationAsyncOnly(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{})
	ns := netnstest.New(t)
	refused := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), closedPort(t, ns))
	var want []Event
	h.do(ns, func(tid int) error {
		if err := marker(); err != nil { // not reported without syscall tracing
			return err
		}
		if _, err := net.Dial("tcp", refused.String()); !errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("dial %v: %v, want ECONNREFUSED", refused, err)
		}
		ev := h.syscallEvent(ns, tid, OpAsync, syscall.ECONNREFUSED, refused.String())
		ev.Protocol = syscall.IPPROTO_TCP
		want = append(want, ev)
		return nil
	})
	select {
	case ev := <-h.events:
		h.expect([]Event{ev}, want)
	case <-time.After(waitTimeout):
		t.Fatalf("no ECONNREFUSED event within %v", waitTimeout)
	}
}

// TestIntegrationFlood sends 100,000 failing connects; every one must be
// delivered or counted as dropped. With the reader started only after the
// flood, a 4 KiB ring buffer must overflow, proving drops are counted.
func TestIntegrationFlood(t *testing.T) {
	t.Parallel()
	const n = 100_000
	for _, tc := range []struct {
		name        string
		ringBuffer  int
		readLater   bool
		wantDropped bool
	}{
		{"reading", 0, false, false},
		{"reader-late", 4096, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			netnstest.RequirePrivileged(t)
			comm := uniqueComm()
			w, err := New(Config{SyscallTracing: true, Comms: []string{comm}, RingBufferSize: tc.ringBuffer})
			if err != nil {
				t.Fatal(err)
			}
			h := &harness{t: t, w: w, comm: comm, events: w.Events()}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			start := func() { go func() { done <- w.Run(ctx) }() }
			if !tc.readLater {
				start()
			}
			received := make(chan uint64, 1)
			countEvents := func() {
				var got uint64
				for ev := range h.events {
					if ev.Errno == syscall.ENETUNREACH && ev.Dst == markerAddr {
						got++
					}
				}
				received <- got
			}
			go countEvents()

			ns := netnstest.New(t)
			h.do(ns, func(int) error {
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					return err
				}
				defer unix.Close(fd)
				to := &unix.SockaddrInet4{Addr: markerAddr.Addr().As4(), Port: int(markerAddr.Port())}
				for range n {
					if err := unix.Connect(fd, to); !errors.Is(err, unix.ENETUNREACH) {
						return fmt.Errorf("connect: %v, want ENETUNREACH", err)
					}
				}
				return nil
			})
			if tc.readLater {
				start()
			}
			// Wait until the counters account for every connect.
			deadline := time.Now().Add(waitTimeout)
			for s := w.Stats(); s.Events+s.Dropped < n; s = w.Stats() {
				if time.Now().After(deadline) {
					t.Fatalf("after %v: %+v, want Events+Dropped = %d", waitTimeout, s, n)
				}
				time.Sleep(10 * time.Millisecond)
			}
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
			got := <-received
			s := w.Stats()
			t.Logf("delivered %d, dropped %d", s.Events, s.Dropped)
			if got != s.Events || s.Events+s.Dropped != n || s.Malformed != 0 {
				t.Errorf("received %d, stats %+v: want received = Events and Events+Dropped = %d", got, s, n)
			}
			if tc.wantDropped && s.Dropped == 0 {
				t.Errorf("Dropped = 0 with a %d-byte ring buffer read after the flood", tc.ringBuffer)
			}
		})
	}
}

// TestIntegrationNoRoutesCounts checks the unprivileged fallback: each
// failed route lookup in a namespace raises its OutNoRoutes counter.
func TestIntegrationNoRoutesCounts(t *testing.T) {
	t.Parallel()
	ns := netnstest.New(t)
	var before, after NoRoutes
	if err := ns.Do(func() (err error) {
		if before, err = ReadNoRoutes(); err != nil {
			return err
		}
		for range 3 {
			if err := marker(); err != nil {
				return err
			}
		}
		after, err = ReadNoRoutes()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if after.IPv4-before.IPv4 != 3 || after.IPv6 != before.IPv6 {
		t.Errorf("counters went from %+v to %+v; want IPv4 +3, IPv6 unchanged", before, after)
	}
}

// TestIntegrationErrnoFilter checks Config.Errnos: only the configured
// errno is reported, and the default set's ENETUNREACH no longer is.
func TestIntegrationErrnoFilter(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true, Errnos: []syscall.Errno{syscall.EMSGSIZE}})
	ns := netnstest.New(t)
	var want []Event
	h.do(ns, func(tid int) error {
		if err := marker(); err != nil { // ENETUNREACH: filtered out
			return err
		}
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		to := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 9}
		if err := unix.Sendto(fd, make([]byte, 70000), 0, to); !errors.Is(err, unix.EMSGSIZE) {
			return fmt.Errorf("oversized sendto: %v, want EMSGSIZE", err)
		}
		want = append(want, h.syscallEvent(ns, tid, OpSendto, syscall.EMSGSIZE, "127.0.0.1:9"))
		return nil
	})
	select {
	case ev := <-h.events:
		h.expect([]Event{ev}, want)
	case <-time.After(waitTimeout):
		t.Fatalf("no EMSGSIZE event within %v", waitTimeout)
	}
}

// TestIntegrationUnattributed checks an asynchronous error on a socket that
// never went through TCP connect: a connected UDP socket that receives an
// ICMP port unreachable. The error is reported, from the right namespace,
// with PID 0 because its owner is unknown. Without a name filter this
// Watcher sees every test's events, so it keeps only this namespace's.
func TestIntegrationUnattributed(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	ns := netnstest.New(t)
	port := closedPort(t, ns) // a TCP port; UDP on it is closed too in a fresh namespace
	if err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(port)}); err != nil {
			return err
		}
		if err := unix.Send(fd, []byte("x"), 0); err != nil {
			return err
		}
		// The ICMP error is processed before the next send returns it.
		if err := unix.Send(fd, []byte("x"), 0); !errors.Is(err, unix.ECONNREFUSED) {
			return fmt.Errorf("second send: %v, want ECONNREFUSED", err)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	want := Event{
		Errno: syscall.ECONNREFUSED, Op: OpAsync, Protocol: syscall.IPPROTO_UDP,
		Dst: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), NetNS: nsInode(t, ns),
	}
	deadline := time.After(waitTimeout)
	for {
		select {
		case ev := <-w.Events():
			if ev.NetNS != want.NetNS {
				continue
			}
			if diff := cmp.Diff(want, ev, cmpopts.IgnoreFields(Event{}, "Time", "Mono"), cmpopts.EquateComparable(netip.AddrPort{})); diff != "" {
				t.Errorf("event (-want +got):\n%s", diff)
			}
			return
		case <-deadline:
			t.Fatalf("no event from namespace %d within %v", want.NetNS, waitTimeout)
		}
	}
}

// TestIntegrationAsyncThenSyncSameErrno: an asynchronous error of a
// non-blocking connect that the process fetches with SO_ERROR (Go's way)
// does not silence the same thread's next, unrelated connect that fails
// at once with the same errno (a route of type unreachable): the dedup
// pairs a blocking connect only with its own socket's stored error.
func TestIntegrationAsyncThenSyncSameErrno(t *testing.T) {
	t.Parallel()
	h := attach(t, Config{SyscallTracing: true})
	a, b := netnstest.New(t), netnstest.New(t)
	unansweredLAN(t, a, b, "10.79.0.1/24")
	a.IP("route", "add", "unreachable", "10.80.0.0/24")

	async := netip.MustParseAddrPort("10.79.0.99:80")
	sync := netip.MustParseAddrPort("10.80.0.1:80")
	var want []Event
	h.do(a, func(tid int) error {
		if _, err := net.DialTimeout("tcp", async.String(), waitTimeout); !errors.Is(err, syscall.EHOSTUNREACH) {
			return fmt.Errorf("dial %v: %v, want EHOSTUNREACH", async, err)
		}
		ev := h.syscallEvent(a, tid, OpAsync, syscall.EHOSTUNREACH, async.String())
		ev.Protocol = syscall.IPPROTO_TCP
		want = append(want, ev)

		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: sync.Addr().As4(), Port: int(sync.Port())}); !errors.Is(err, unix.EHOSTUNREACH) {
			return fmt.Errorf("connect %v: %v, want EHOSTUNREACH", sync, err)
		}
		want = append(want, h.syscallEvent(a, tid, OpConnect, syscall.EHOSTUNREACH, sync.String()))
		return marker()
	})
	h.expect(h.untilMarker(len(want)), want)
}
