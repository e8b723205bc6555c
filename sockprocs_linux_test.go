package netmon

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/sockwatch"
	"golang.org/x/sys/unix"
)

// applySock feeds m one eBPF-observed failure, as the loop does.
func (m *Monitor) applySock(e sockwatch.Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.applySockLocked(e)
}

// TestSockErrorsByProcess drives the per-process counts with constructed
// sockwatch events: counted by comm and the cause the Monitor found, at
// most MaxSockComms names apart and the rest under OtherComm, ignored
// failures not at all, and the counts add up to Stats.SockErrors.
func TestSockErrorsByProcess(t *testing.T) {
	m := newTestMonitor(t, Options{})
	m.apply(baselineUp())
	at := t0.Add(time.Second)
	fail := func(comm string, errno syscall.Errno, dst string) {
		m.applySock(sockwatch.Event{Time: at, PID: 4242, TID: 4242, Comm: comm, Errno: errno, Op: sockwatch.OpConnect,
			Dst: netip.MustParseAddrPort(dst)})
	}

	// Up, nothing explains a network error: unexplained; refused: peer.
	fail("python3", syscall.ENETUNREACH, "10.0.0.9:443")
	fail("python3", syscall.ENETUNREACH, "10.0.0.9:443")
	fail("python3", syscall.ECONNREFUSED, "10.0.0.9:443")
	// The owner of an asynchronous error can be unknown.
	m.applySock(sockwatch.Event{Time: at, Errno: syscall.ECONNRESET, Op: sockwatch.OpAsync, Protocol: syscall.IPPROTO_TCP,
		Dst: netip.MustParseAddrPort("10.0.0.9:80")})
	// A process really named "other" shares OtherComm's entry.
	fail(OtherComm, syscall.ENETUNREACH, "10.0.0.9:443")
	// Comms are bytes; the counts hold valid UTF-8.
	fail("ros\xffnode", syscall.ENETUNREACH, "10.0.0.9:443")
	// Ignored failures count nowhere: loopback, another namespace.
	fail("resolver", syscall.ECONNREFUSED, "127.0.0.1:53")
	if m.netnsIno != 0 {
		m.applySock(sockwatch.Event{Time: at, PID: 1, Comm: "container", Errno: syscall.ENETUNREACH, Op: sockwatch.OpConnect,
			Dst: netip.MustParseAddrPort("10.0.0.9:443"), NetNS: uint32(m.netnsIno) + 1})
	}

	// Four names so far; fill up to the bound and go past it.
	for i := range MaxSockComms - 4 + 3 {
		fail(fmt.Sprintf("worker%02d", i), syscall.ENETUNREACH, "10.0.0.9:443")
	}
	// A name counted apart before the bound stays apart; a new one after
	// it goes to OtherComm, whatever its cause.
	fail("python3", syscall.ENETUNREACH, "10.0.0.9:443")
	fail("latecomer", syscall.ECONNREFUSED, "10.0.0.9:443")

	// While down, the cause is the outage.
	m.apply(linkwatch.LinkEvent{At: at, Op: linkwatch.LinkChanged,
		Link: linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}, Prev: upLink(2, "wlan0")})
	wantStatus(t, m, Down, ReasonCarrierLost)
	fail("python3", syscall.ENETUNREACH, "10.0.0.9:443")
	fail("worker00", syscall.ENETUNREACH, "10.0.0.9:443")

	want := []ProcessErrors{
		{Comm: "", Cause: CausePeer, Count: 1},
		{Comm: OtherComm, Cause: CausePeer, Count: 1},            // latecomer
		{Comm: OtherComm, Cause: CauseUnexplained, Count: 1 + 3}, // the process named other, worker60-62
		{Comm: "python3", Cause: CauseLinkDown, Count: 1},
		{Comm: "python3", Cause: CausePeer, Count: 1},
		{Comm: "python3", Cause: CauseUnexplained, Count: 3},
		{Comm: "ros\uFFFDnode", Cause: CauseUnexplained, Count: 1},
		{Comm: "worker00", Cause: CauseLinkDown, Count: 1},
		{Comm: "worker00", Cause: CauseUnexplained, Count: 1},
	}
	for i := 1; i < MaxSockComms-4; i++ {
		want = append(want, ProcessErrors{Comm: fmt.Sprintf("worker%02d", i), Cause: CauseUnexplained, Count: 1})
	}
	got := m.SockErrorsByProcess()
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("SockErrorsByProcess (-want +got):\n%s", diff)
	}
	names := map[string]bool{}
	var sum uint64
	for _, p := range got {
		names[p.Comm] = true
		sum += p.Count
	}
	// MaxSockComms names were counted apart, one of them OtherComm itself.
	if len(names) != MaxSockComms || !names[OtherComm] {
		t.Errorf("%d distinct comms, want %d including %q", len(names), MaxSockComms, OtherComm)
	}
	st := m.Stats()
	if sum != st.SockErrors {
		t.Errorf("counts add up to %d, Stats.SockErrors = %d", sum, st.SockErrors)
	}
	if wantIgnored := uint64(1 + min(m.netnsIno, 1)); st.SockErrorsIgnored != wantIgnored {
		t.Errorf("Stats.SockErrorsIgnored = %d, want %d", st.SockErrorsIgnored, wantIgnored)
	}

	// The result is a copy.
	got[0].Count = 1000
	if again := m.SockErrorsByProcess(); again[0].Count != 1 {
		t.Errorf("changing the result changed the Monitor's count to %d", again[0].Count)
	}
}

// TestOptionsSockCgroups checks that New resolves Options.SockCgroups to
// cgroup IDs, and that a path that is not a cgroup v2 directory fails with
// an error naming the path and saying what it is instead.
func TestOptionsSockCgroups(t *testing.T) {
	v2, v1 := cgroupMounts()
	notCgroup := t.TempDir()
	missing := filepath.Join(notCgroup, "nosuch.service")
	tests := []struct {
		name    string
		mount   string // the mount the case needs: "" when this machine has none
		path    string
		v1      bool   // the case needs a cgroup v1 mount, which cgroup v2 only hosts lack
		wantErr string // substring; "" means valid
	}{
		{name: "cgroup v2 root", mount: v2, path: v2},
		{name: "cgroup v2 file", mount: v2, path: filepath.Join(v2, "cgroup.procs"), wantErr: "not a cgroup v2 directory but a file in one"},
		{name: "cgroup v1", mount: v1, path: v1, v1: true, wantErr: "a cgroup v1 directory, not cgroup v2"},
		{name: "other file system", mount: "-", path: notCgroup, wantErr: "not a cgroup v2 directory (file system type"},
		{name: "missing", mount: "-", path: missing, wantErr: "no such file or directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			switch {
			case tt.mount != "":
			case tt.v1:
				// Not a CI failure: a cgroup v2 only host has no v1
				// directory to pass (the README lists this skip).
				t.Skip("this machine has no cgroup v1 mount (cgroup v2 only)")
			default:
				netnstest.Skip(t, "this machine has no cgroup v2 mount, which Options.SockCgroups needs")
			}
			m, err := New(Options{SockCgroups: []string{tt.path}, Wifi: "off", DHCP: "off", SockErrors: "off"})
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				t.Cleanup(m.gate.Shutdown)
				var st unix.Stat_t
				if err := unix.Stat(tt.path, &st); err != nil {
					t.Fatal(err)
				}
				if len(m.sockCgroup) != 1 || m.sockCgroup[0] != st.Ino {
					t.Errorf("cgroup IDs = %v, want [%d]", m.sockCgroup, st.Ino)
				}
				return
			}
			want := "netmon: Options.SockCgroups: cgroup " + tt.path + ": " // names the path
			if err == nil || !strings.HasPrefix(err.Error(), want) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("New: %v, want an error starting %q and containing %q", err, want, tt.wantErr)
			}
			if tt.path == missing && !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("errors.Is(%v, fs.ErrNotExist) = false", err)
			}
		})
	}
}

// cgroupMounts returns a mount point of the cgroup v2 hierarchy and one of
// a cgroup v1 hierarchy; "" for those this machine does not have.
func cgroupMounts() (v2, v1 string) {
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		return "", ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 3 {
			continue
		}
		switch {
		case fields[2] == "cgroup2" && v2 == "":
			v2 = fields[1]
		case fields[2] == "cgroup" && v1 == "":
			v1 = fields[1]
		}
	}
	return v2, v1
}

func TestOptionsSockDestinations(t *testing.T) {
	_, err := New(Options{SockDestinations: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), {}}, Wifi: "off", DHCP: "off", SockErrors: "off"})
	want := "netmon: Options.SockDestinations[1] is not a valid prefix: want an IPv4 or IPv6 prefix such as 10.0.0.0/8"
	if err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Fatalf("New: %v, want an error starting %q", err, want)
	}
	m, err := New(Options{SockDestinations: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Wifi: "off", DHCP: "off", SockErrors: "off"})
	if err != nil {
		t.Fatalf("New with a valid prefix: %v", err)
	}
	m.gate.Shutdown()
}

// TestIntegrationMonitorSockFilters runs a Monitor with eBPF socket-error
// tracing and the cgroup and destination filters, and provokes two real
// failing connects from a thread of this process in the watched namespace:
// one towards a destination outside SockDestinations, which is counted as
// filtered only, and one inside it, which is reported and counted under
// the thread's name.
func TestIntegrationMonitorSockFilters(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	comm := fmt.Sprintf("nm%x", time.Now().UnixNano()&0xffffffffff) // unique: isolates this test's failures
	var cgroups []string
	if p := selfCgroupDir(); p != "" {
		cgroups = []string{p}
	}
	r := newRig(t, Options{SockErrors: "on", SockSyscalls: true, SockComms: []string{comm}, SockCgroups: cgroups,
		SockDestinations: []netip.Prefix{netip.MustParsePrefix("198.51.100.0/24")}})
	// Both destinations are unreachable at once, whatever the peer does.
	r.a.IP("route", "add", "unreachable", "192.0.2.0/24")
	r.a.IP("route", "add", "unreachable", "198.51.100.0/24")
	r.waitState(t, Up, ReasonNone)
	r.waitSockOn(t)

	err := r.a.Do(func() error {
		restore, err := nameThread(comm)
		if err != nil {
			return err
		}
		defer restore()
		for _, dst := range [][4]byte{{192, 0, 2, 1}, {198, 51, 100, 1}} {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
			if err != nil {
				return err
			}
			err = unix.Connect(fd, &unix.SockaddrInet4{Addr: dst, Port: 443})
			unix.Close(fd)
			if !errors.Is(err, unix.EHOSTUNREACH) {
				return fmt.Errorf("connect %v: %v, want EHOSTUNREACH", dst, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ev := r.waitKind(t, EventSockErr)
	var dst string
	for _, f := range ev.Fields {
		if f.Key == "dst" {
			dst = f.String
		}
	}
	if ev.Explanation == nil || ev.Explanation.Errno != unix.EHOSTUNREACH || !strings.Contains(ev.Msg, comm) || dst != "198.51.100.1:443" {
		t.Fatalf("sockerr event %q dst %q %+v, want %s's EHOSTUNREACH towards 198.51.100.1:443", ev.Msg, dst, ev.Explanation, comm)
	}
	// The filtered failure was read before the reported one.
	st := r.m.Stats()
	if st.SockErrors != 1 || st.SockErrorsFiltered != 1 {
		t.Errorf("Stats: SockErrors %d, SockErrorsFiltered %d; want 1 and 1", st.SockErrors, st.SockErrorsFiltered)
	}
	want := []ProcessErrors{{Comm: comm, Cause: ev.Explanation.Cause, Count: 1}}
	if diff := cmp.Diff(want, r.m.SockErrorsByProcess()); diff != "" {
		t.Errorf("SockErrorsByProcess (-want +got):\n%s", diff)
	}
}

// nameThread names the calling (locked) thread comm, as the kernel
// reports it to eBPF, until restore is called.
func nameThread(comm string) (restore func(), err error) {
	var old [16]byte
	if err := unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0); err != nil {
		return nil, err
	}
	name := append([]byte(comm), 0)
	if err := unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&name[0])), 0, 0, 0); err != nil {
		return nil, err
	}
	return func() { _ = unix.Prctl(unix.PR_SET_NAME, uintptr(unsafe.Pointer(&old[0])), 0, 0, 0) }, nil
}

// selfCgroupDir returns the cgroup v2 directory this process is in, "" if
// there is none.
func selfCgroupDir() string {
	v2, _ := cgroupMounts()
	b, err := os.ReadFile("/proc/self/cgroup")
	if v2 == "" || err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if p, ok := strings.CutPrefix(line, "0::"); ok {
			return filepath.Join(v2, p)
		}
	}
	return ""
}
