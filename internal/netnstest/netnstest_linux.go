//go:build linux

package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// EnvRequirePrivileged is the environment variable that turns a privileged
// skip into a failure.
const EnvRequirePrivileged = "NETMON_REQUIRE_PRIVILEGED"

// RequirePrivileged skips t unless the process runs as root (effective UID
// 0), which creating named network namespaces, running iproute2 and DHCP
// clients in them, and loading BPF programs need. With
// NETMON_REQUIRE_PRIVILEGED=1 it fails instead of skipping.
func RequirePrivileged(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	Skip(t, "needs root to create network namespaces (run the tests as root, e.g. sudo -E go test ./...)")
}

// Skip skips t with reason, or fails it when NETMON_REQUIRE_PRIVILEGED=1, so
// a test that CI expects to run cannot silently turn into a skip.
func Skip(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(EnvRequirePrivileged) == "1" {
		t.Fatalf("%s=1 but this test would skip: %s", EnvRequirePrivileged, reason)
	}
	t.Skip(reason)
}

// RequireCommand skips t (or fails it under NETMON_REQUIRE_PRIVILEGED=1) when
// the named program is not installed, naming the Debian package to install.
func RequireCommand(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		Skip(t, fmt.Sprintf("%s not installed (apt-get install %s)", name, debianPackage))
	}
	return p
}

// NS is a named network namespace that lives until the end of the test that
// created it.
type NS struct {
	// Name is the namespace's name under /var/run/netns, usable with `ip -n`.
	Name string
	// Handle is a file descriptor for the namespace. It stays valid until
	// cleanup.
	Handle netns.NsHandle

	t testing.TB
}

var counter atomic.Uint64

var sweepOnce sync.Once

// sweepOrphans removes the namespaces named by uniqueName whose creating
// process has died (a test binary killed by a timeout or a signal), with
// any process still running inside them.
func sweepOrphans() {
	ents, err := os.ReadDir("/run/netns")
	if err != nil {
		return
	}
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "nmt-%d-", &pid); err != nil || pid <= 0 {
			continue
		}
		if err := unix.Kill(pid, 0); !errors.Is(err, unix.ESRCH) {
			continue // its test process lives (or the PID is someone else's)
		}
		killInside(e.Name())
		_ = netns.DeleteNamed(e.Name())
	}
}

// killInside kills every process running inside the named namespace.
func killInside(name string) {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		var pid int
		if _, err := fmt.Sscan(f, &pid); err == nil && pid > 0 {
			_ = unix.Kill(pid, unix.SIGKILL)
		}
	}
}

// uniqueName returns a namespace name that no other test, in this process or
// another, uses at the same time.
func uniqueName() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("nmt-%d-%d-%s", os.Getpid(), counter.Add(1), hex.EncodeToString(b[:]))
}

// New creates a fresh network namespace with its loopback up. It is deleted
// when the test ends.
//
// Namespaces are named (under /run/netns) because iproute2 and the DHCP
// clients the tests run address them by name. Cleanup removes them even
// when the test fails; a test binary that is killed cannot clean up, so
// the first New of each process removes the namespaces of test processes
// that no longer exist.
func New(t testing.TB) *NS {
	t.Helper()
	RequirePrivileged(t)
	sweepOnce.Do(sweepOrphans)
	name := uniqueName()
	var h netns.NsHandle
	err := onLockedThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return fmt.Errorf("netnstest: current namespace: %w", err)
		}
		defer orig.Close()
		h, err = netns.NewNamed(name) // switches this thread into the new namespace
		if err != nil {
			return fmt.Errorf("netnstest: create namespace %q: %w", name, err)
		}
		if err := netns.Set(orig); err != nil {
			return errPoisoned{err}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ns := &NS{Name: name, Handle: h, t: t}
	t.Cleanup(func() {
		// Kill anything still running inside (a DHCP client a test forgot),
		// then remove the bind mount. Closing the last fd frees the namespace.
		killInside(name)
		h.Close()
		if err := deleteNamed(name); err != nil {
			t.Errorf("netnstest: delete namespace %q: %v", name, err)
		}
	})
	lo, err := ns.NetlinkHandle().LinkByName("lo")
	if err != nil {
		t.Fatalf("netnstest: lo in %s: %v", name, err)
	}
	if err := ns.NetlinkHandle().LinkSetUp(lo); err != nil {
		t.Fatalf("netnstest: set lo up in %s: %v", name, err)
	}
	return ns
}

// deleteNamed removes the named namespace's bind mount and its file, as
// netns.DeleteNamed does, but detaches and removes again, a few times,
// while the remove fails with EBUSY: under load one cleanup
// (TestIntegrationWatcherCancelUnderLoad) failed so, the file still a
// mount point after the first detach (a mount propagated to it meanwhile;
// the cause was not pinned down). Any other error is returned at once.
func deleteNamed(name string) error {
	path := filepath.Join("/run/netns", name)
	var err error
	for range 8 {
		if uerr := unix.Unmount(path, unix.MNT_DETACH); uerr != nil && !errors.Is(uerr, unix.EINVAL) {
			return fmt.Errorf("unmount %s: %w", path, uerr)
		}
		if err = os.Remove(path); err == nil || !errors.Is(err, unix.EBUSY) {
			return err
		}
	}
	return err
}

// errPoisoned marks a thread that could not be switched back to its original
// namespace; onLockedThread leaves such a thread locked so it dies with its
// goroutine.
type errPoisoned struct{ err error }

func (e errPoisoned) Error() string {
	return fmt.Sprintf("netnstest: restore namespace (thread discarded): %v", e.err)
}
func (e errPoisoned) Unwrap() error { return e.err }

// onLockedThread runs fn on a new goroutine locked to its OS thread and waits
// for it. If fn reports errPoisoned the thread is not unlocked, so the runtime
// terminates it when the goroutine exits.
//
// If fn ends its goroutine instead of returning (t.Fatal inside fn calls
// runtime.Goexit), the thread, possibly still inside a test namespace,
// dies locked, and onLockedThread returns errGoexit instead of waiting
// forever: the test is already marked failed, and it must not hang.
func onLockedThread(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		returned := false
		defer func() {
			if !returned {
				errc <- errGoexit
			}
		}()
		err := fn()
		returned = true
		var p errPoisoned
		if !errors.As(err, &p) {
			runtime.UnlockOSThread()
		}
		errc <- err
	}()
	return <-errc
}

// errGoexit is what onLockedThread returns when fn did not return.
var errGoexit = errors.New("netnstest: the function ended its goroutine (t.Fatal inside Do?) instead of returning; its thread was discarded")

// Do runs fn on a locked OS thread inside the namespace and returns its error.
// Sockets fn opens stay in the namespace after Do returns.
func (ns *NS) Do(fn func() error) error {
	return onLockedThread(func() error {
		orig, err := netns.Get()
		if err != nil {
			return fmt.Errorf("netnstest: current namespace: %w", err)
		}
		defer orig.Close()
		if err := netns.Set(ns.Handle); err != nil {
			return fmt.Errorf("netnstest: enter %s: %w", ns.Name, err)
		}
		ferr := fn()
		if err := netns.Set(orig); err != nil {
			return errors.Join(ferr, errPoisoned{err})
		}
		return ferr
	})
}

// Sysctl writes value to /proc/sys/PATH inside the namespace (PATH with
// slashes, as "net/ipv6/conf/va/dad_transmits", so that interface names
// with dots survive), logging it as "$ sysctl", and fails the test on error.
// Sysctls under /proc/sys/net belong to the namespace of the thread that
// opens them.
func (ns *NS) Sysctl(path, value string) {
	ns.t.Helper()
	ns.t.Logf("$ ip netns exec %s sysctl -w %s=%s", ns.Name, strings.ReplaceAll(path, "/", "."), value)
	if err := ns.Do(func() error { return os.WriteFile("/proc/sys/"+path, []byte(value), 0) }); err != nil {
		ns.t.Fatalf("netnstest: sysctl %s in %s: %v", path, ns.Name, err)
	}
}

// NetlinkHandle returns a rtnetlink handle bound to the namespace. It is
// closed when the test ends. It asks for NETLINK_ROUTE only: the library's
// default adds XFRM and netfilter sockets, which a kernel without xfrm_user
// (Debian's 6.1 in the Wi-Fi lab) refuses.
func (ns *NS) NetlinkHandle() *netlink.Handle {
	ns.t.Helper()
	h, err := netlink.NewHandleAt(ns.Handle, unix.NETLINK_ROUTE)
	if err != nil {
		ns.t.Fatalf("netnstest: netlink handle for %s: %v", ns.Name, err)
	}
	ns.t.Cleanup(h.Close)
	return h
}

// IP runs `ip -n NAME args...`, logging the command as "$ ip ...", and fails
// the test if it fails. It returns standard output.
func (ns *NS) IP(args ...string) string {
	ns.t.Helper()
	out, err := ns.TryIP(args...)
	if err != nil {
		ns.t.Fatal(err)
	}
	return out
}

// TryIP is IP, but returns the error instead of failing the test.
func (ns *NS) TryIP(args ...string) (string, error) {
	ns.t.Helper()
	full := append([]string{"-n", ns.Name}, args...)
	return run(ns.t, "ip", full...)
}

// Command returns a command that runs inside the namespace through
// `ip netns exec`. The caller starts it; [NS.Start] also arranges cleanup.
func (ns *NS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", ns.Name, name}, args...)
	return exec.CommandContext(ctx, "ip", full...)
}

// Start starts name inside the namespace and kills it (and waits for it) when
// the test ends. Output goes to the test log.
func (ns *NS) Start(name string, args ...string) *exec.Cmd {
	ns.t.Helper()
	cmd := ns.Command(context.Background(), name, args...)
	w := &logWriter{t: ns.t, prefix: name + ": "}
	cmd.Stdout, cmd.Stderr = w, w
	cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	ns.t.Logf("$ ip netns exec %s %s %s", ns.Name, name, strings.Join(args, " "))
	if err := cmd.Start(); err != nil {
		ns.t.Fatalf("netnstest: start %s in %s: %v", name, ns.Name, err)
	}
	ns.t.Cleanup(func() {
		_ = unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		_ = cmd.Wait()
		w.close()
	})
	return cmd
}

// Veth creates a veth pair: nameA in a, nameB in b, both admin up. It returns
// the two links as seen from their namespaces.
func Veth(t testing.TB, a *NS, nameA string, b *NS, nameB string) (netlink.Link, netlink.Link) {
	t.Helper()
	ha := a.NetlinkHandle()
	la := &netlink.Veth{
		LinkAttrs:     netlink.LinkAttrs{Name: nameA},
		PeerName:      nameB,
		PeerNamespace: netlink.NsFd(b.Handle),
	}
	t.Logf("$ ip -n %s link add %s type veth peer name %s netns %s", a.Name, nameA, nameB, b.Name)
	if err := ha.LinkAdd(la); err != nil {
		t.Fatalf("netnstest: veth %s/%s: %v", nameA, nameB, err)
	}
	hb := b.NetlinkHandle()
	linkA, err := ha.LinkByName(nameA)
	if err != nil {
		t.Fatalf("netnstest: %s in %s: %v", nameA, a.Name, err)
	}
	linkB, err := hb.LinkByName(nameB)
	if err != nil {
		t.Fatalf("netnstest: %s in %s: %v", nameB, b.Name, err)
	}
	if err := ha.LinkSetUp(linkA); err != nil {
		t.Fatalf("netnstest: set %s up: %v", nameA, err)
	}
	if err := hb.LinkSetUp(linkB); err != nil {
		t.Fatalf("netnstest: set %s up: %v", nameB, err)
	}
	return linkA, linkB
}

// run executes a command, logging it, and returns its standard output; a
// failure names the command and includes its standard error.
func run(t testing.TB, name string, args ...string) (string, error) {
	t.Helper()
	t.Logf("$ %s %s", name, strings.Join(args, " "))
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("netnstest: %s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return stdout.String(), nil
}

// logWriter forwards a child's output to the test log line by line, and stops
// once the test has ended (t.Log after the end panics).
type logWriter struct {
	t      testing.TB
	prefix string

	mu   sync.Mutex // guards buf and done
	buf  []byte
	done bool
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.t.Log(w.prefix + string(w.buf[:i]))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}

func (w *logWriter) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.t.Log(w.prefix + string(w.buf))
	}
	w.done = true
}

// Tun creates a tun device named name inside the namespace, held open by
// this process as wireguard-go, tailscaled and OpenVPN hold theirs (so it
// has carrier once set up), and sets it admin up. The device goes away when
// the test ends and its file descriptor is closed.
func (ns *NS) Tun(name string) {
	ns.t.Helper()
	ns.t.Logf("$ ip -n %s tuntap add dev %s mode tun (held open by the test)", ns.Name, name)
	var f *os.File
	err := ns.Do(func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("open /dev/net/tun: %w", err)
		}
		ifr, err := unix.NewIfreq(name)
		if err != nil {
			unix.Close(fd)
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			unix.Close(fd)
			return fmt.Errorf("TUNSETIFF %s: %w", name, err)
		}
		f = os.NewFile(uintptr(fd), "tun:"+name)
		return nil
	})
	if err != nil {
		ns.t.Fatalf("netnstest: tun %s in %s: %v", name, ns.Name, err)
	}
	ns.t.Cleanup(func() { f.Close() })
	ns.IP("link", "set", name, "up")
}

// WGQuick sets the namespace up as `wg-quick up` does for a full tunnel
// (AllowedIPs = 0.0.0.0/0) on interface dev: a tun device held open (see
// [NS.Tun]) with address 10.200.0.2/32, a default route in table 51820, and
// wg-quick's two rules: "not fwmark 51820 lookup 51820" and "lookup main
// suppress_prefixlength 0". The kernel then sends everything into dev, but
// for the tunnel's own packets, which carry the mark.
func (ns *NS) WGQuick(dev string) {
	ns.t.Helper()
	ns.Tun(dev)
	ns.IP("addr", "add", "10.200.0.2/32", "dev", dev)
	ns.IP("-4", "route", "add", "0.0.0.0/0", "dev", dev, "table", "51820")
	ns.IP("-4", "rule", "add", "not", "fwmark", "51820", "table", "51820")
	ns.IP("-4", "rule", "add", "table", "main", "suppress_prefixlength", "0")
}

// Serve accepts connections on ln and hands each to fn (which must close
// it) until the test ends, then closes ln and waits for the accept loop.
func Serve(t testing.TB, ln net.Listener, fn func(net.Conn)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fn(c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

// OpenDir returns a new directory that every user may enter and read,
// removed when the test ends: for what a test hands to another user (a
// socket whose own mode must decide who connects, a program run as
// nobody).
func OpenDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "netmon-open-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// SelfForAnyUser returns a copy of the running test binary in an OpenDir,
// for a test that runs it (a helper test function) as another user: the
// go tool keeps the binary in a directory only its owner may enter.
func SelfForAnyUser(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(self)
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(OpenDir(t), filepath.Base(self))
	if err := os.WriteFile(bin, b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}
