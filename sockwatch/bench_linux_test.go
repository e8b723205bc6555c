package sockwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The benchmarks need root. Run them on their own and with an explicit
// count so that each case times the same number of syscalls, for example:
//
//	go test -run '^$' -bench Watcher -benchtime 1000000x ./sockwatch/
//
// BenchmarkWatcherOverhead times one syscall per iteration: a successful UDP send
// to a loopback listener ("send"), and a UDP connect that fails with
// ENETUNREACH ("connect-fail"), and an unrelated getppid(2) ("getppid"),
// with the default Watcher ("async") and with
// SyscallTracing ("syscalls"). Within one run it alternates blocks of
// operations with the programs attached and detached, and reports both
// times per operation and their ratio ("x-detached"); ns/op is their mix.

// enterThread locks the calling goroutine to its thread, moves the thread
// into ns and names it comm, and returns the function that undoes that.
// If the namespace cannot be restored the thread stays locked, so the
// runtime discards it with the goroutine.
func enterThread(b *testing.B, ns *netnstest.NS, comm string) func() {
	b.Helper()
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		b.Fatal(err)
	}
	if err := netns.Set(ns.Handle); err != nil {
		b.Fatal(err)
	}
	var old [16]byte
	_ = unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0)
	if err := setThreadName(comm); err != nil {
		b.Fatal(err)
	}
	return func() {
		_ = setThreadName(cString(old[:]))
		err := netns.Set(orig)
		orig.Close()
		if err == nil {
			runtime.UnlockOSThread()
		}
	}
}

// drain starts a Watcher's Run and a consumer that counts the events, as
// the Monitor would; it returns a function that stops both.
func drain(b *testing.B, w *Watcher) func() {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	consumed := make(chan struct{})
	go func() {
		for range w.Events() {
		}
		close(consumed)
	}()
	return func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
		<-consumed
	}
}

func BenchmarkWatcherOverhead(b *testing.B) {
	netnstest.RequirePrivileged(b)
	ns := netnstest.New(b)
	var l net.PacketConn
	if err := ns.Do(func() (err error) {
		l, err = net.ListenPacket("udp", "127.0.0.1:0")
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	lp := l.LocalAddr().(*net.UDPAddr).AddrPort()
	loopback := &unix.SockaddrInet4{Addr: lp.Addr().As4(), Port: int(lp.Port())}
	unroutable := &unix.SockaddrInet4{Addr: markerAddr.Addr().As4(), Port: int(markerAddr.Port())}
	payload := make([]byte, 64)

	ops := []struct {
		name string
		op   func(fd int) error
	}{
		{"send", func(fd int) error { return unix.Sendto(fd, payload, 0, loopback) }},
		// An unrelated syscall: what SyscallTracing costs everything else.
		{"getppid", func(int) error { unix.Getppid(); return nil }},
		{"connect-fail", func(fd int) error {
			if err := unix.Connect(fd, unroutable); !errors.Is(err, unix.ENETUNREACH) {
				return err
			}
			return nil
		}},
	}
	for _, op := range ops {
		for _, m := range []struct {
			name string
			cfg  Config
		}{
			{"async", Config{}},
			{"syscalls", Config{SyscallTracing: true}},
		} {
			b.Run(op.name+"/"+m.name, func(b *testing.B) {
				w, err := New(m.cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer w.Close()
				defer drain(b, w)()
				leave := enterThread(b, ns, "swbench")
				defer leave()
				fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				defer unix.Close(fd)

				// Alternate blocks of overheadBlock operations between
				// attached (mode 1) and detached (mode 0), so that the load
				// of a shared machine drifts over both alike.
				var elapsed [2]time.Duration
				var count [2]int
				// Start detached, so that cold caches after New do not
				// count against the attached side.
				if err := w.w.detach(); err != nil {
					b.Fatal(err)
				}
				mode, i := 0, 0
				start := time.Now()
				toggle := func() {
					elapsed[mode] += time.Since(start)
					count[mode] += i
					b.StopTimer()
					var err error
					if mode == 1 {
						err = w.w.detach()
					} else {
						err = w.w.attach()
					}
					if err != nil {
						b.Fatal(err)
					}
					b.StartTimer()
					mode, i, start = 1-mode, 0, time.Now()
				}
				b.ReportAllocs()
				for b.Loop() {
					if err := op.op(fd); err != nil {
						b.Fatal(err)
					}
					if i++; i == overheadBlock {
						toggle()
					}
				}
				elapsed[mode] += time.Since(start)
				count[mode] += i
				if count[0] == 0 || count[1] == 0 {
					return // too few iterations to compare (b.N < 2 blocks)
				}
				detached := float64(elapsed[0].Nanoseconds()) / float64(count[0])
				attached := float64(elapsed[1].Nanoseconds()) / float64(count[1])
				b.ReportMetric(detached, "ns/op-detached")
				b.ReportMetric(attached, "ns/op-attached")
				b.ReportMetric(attached/detached, "x-detached")
			})
		}
	}
}

// overheadBlock is the number of operations between attach toggles.
const overheadBlock = 10_000

// BenchmarkWatcherEventLatency measures the time from the kernel's timestamp of a
// failure (taken in the syscall's exit, or where the error is stored on the
// socket) to the event's arrival on Events, and reports its median and
// 99th percentile. Each iteration provokes one failure and waits for its
// event.
func BenchmarkWatcherEventLatency(b *testing.B) {
	netnstest.RequirePrivileged(b)
	ns := netnstest.New(b)
	var closed int
	if err := ns.Do(func() error {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		closed = l.Addr().(*net.TCPAddr).Port
		return l.Close()
	}); err != nil {
		b.Fatal(err)
	}
	unroutable := &unix.SockaddrInet4{Addr: markerAddr.Addr().As4(), Port: int(markerAddr.Port())}
	refused := &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: closed}

	for _, tc := range []struct {
		name    string
		cfg     Config
		provoke func() error
	}{
		{"sync-connect", Config{SyscallTracing: true}, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Connect(fd, unroutable); !errors.Is(err, unix.ENETUNREACH) {
				return err
			}
			return nil
		}},
		{"async-refused", Config{}, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Connect(fd, refused); !errors.Is(err, unix.ECONNREFUSED) {
				return err
			}
			return nil
		}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			comm := uniqueComm()
			cfg := tc.cfg
			cfg.Comms = []string{comm}
			w, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer w.Close()
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- w.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					b.Error(err)
				}
			}()
			leave := enterThread(b, ns, comm)
			defer leave()

			var lat []time.Duration
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.provoke(); err != nil {
					b.Fatal(err)
				}
				select {
				case ev := <-w.Events():
					lat = append(lat, monoNow()-ev.Mono)
				case <-time.After(10 * time.Second):
					b.Fatal("no event within 10 s")
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds()), "p50-ns")
			b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
			if s := w.Stats(); s.Dropped != 0 {
				b.Errorf("dropped %d events", s.Dropped)
			}
		})
	}
}

// monoNow reads CLOCK_MONOTONIC, the clock of Event.Mono.
func monoNow() time.Duration {
	var ts unix.Timespec
	_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return time.Duration(ts.Nano())
}

// BenchmarkWatcherNew times New (parse the embedded object, load the
// kernel's BTF for CO-RE, load and attach the programs) and Close.
func BenchmarkWatcherNew(b *testing.B) {
	netnstest.RequirePrivileged(b)
	for _, m := range []struct {
		name string
		cfg  Config
	}{{"async", Config{}}, {"syscalls", Config{SyscallTracing: true}}} {
		b.Run(m.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				w, err := New(m.cfg)
				if err != nil {
					b.Fatal(err)
				}
				if err := w.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// rssChildEnv makes the test binary a child of BenchmarkWatcherRSS.
const rssChildEnv = "SOCKWATCH_RSS_CHILD"

// BenchmarkWatcherRSS reports the resident memory of a fresh process (this
// test binary, re-run) before and after New, each after a garbage
// collection that returns freed memory to the kernel: what the tracer
// costs a long-running process once loading is done.
func BenchmarkWatcherRSS(b *testing.B) {
	netnstest.RequirePrivileged(b)
	for _, mode := range []string{"async", "syscalls"} {
		b.Run(mode, func(b *testing.B) {
			var before, after float64
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run", "^TestWatcherRSSChild$", "-test.v")
				cmd.Env = append(os.Environ(), rssChildEnv+"="+mode)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("%v: %s", err, out)
				}
				var kb [2]float64
				_, rest, found := strings.Cut(string(out), "rss-kB ")
				line, _, _ := strings.Cut(rest, "\n")
				if _, err := fmt.Sscan(line, &kb[0], &kb[1]); !found || err != nil {
					b.Fatalf("child output %q: %v", out, err)
				}
				before, after = kb[0], kb[1]
			}
			b.ReportMetric(before, "kB-rss-before")
			b.ReportMetric(after, "kB-rss-after")
		})
	}
}

// TestWatcherRSSChild is BenchmarkWatcherRSS's child; it does nothing
// unless that benchmark started it.
func TestWatcherRSSChild(t *testing.T) {
	mode := os.Getenv(rssChildEnv)
	if mode == "" {
		t.Skip("runs only as the child process of BenchmarkWatcherRSS")
	}
	before := settledRSS(t)
	w, err := New(Config{SyscallTracing: mode == "syscalls"})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	after := settledRSS(t)
	fmt.Printf("rss-kB %d %d\n", before, after)
}

// settledRSS collects garbage, returns the freed memory to the kernel and
// reads VmRSS (kB) from /proc/self/status.
func settledRSS(t *testing.T) int {
	runtime.GC()
	debug.FreeOSMemory()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb int
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}
