package sockwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// newPrivileged creates a Watcher or skips (fails under
// NETMON_REQUIRE_PRIVILEGED=1) when not root.
func newPrivileged(t *testing.T, cfg Config) *Watcher {
	t.Helper()
	netnstest.RequirePrivileged(t)
	w, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

// requireClosed fails unless ch is closed (it must not block: a closed
// channel is ready at once).
func requireClosed(t *testing.T, ch <-chan Event) {
	t.Helper()
	for {
		select {
		case _, ok := <-ch:
			if !ok {
				return
			}
		default:
			t.Fatal("Events is still open")
		}
	}
}

func TestIntegrationWatcherJustClose(t *testing.T) {
	t.Parallel()
	w := newPrivileged(t, Config{})
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	requireClosed(t, w.Events())
	if err := w.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close: %v, want ErrClosed", err)
	}
}

func TestIntegrationWatcherStartClose(t *testing.T) {
	t.Parallel()
	w := newPrivileged(t, Config{SyscallTracing: true})
	done := make(chan error, 1)
	go func() { done <- w.Run(context.Background()) }()
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("Run: %v, want nil (or ErrClosed if Close won the race)", err)
	}
	requireClosed(t, w.Events())
}

func TestIntegrationWatcherRunStopsOnCancel(t *testing.T) {
	t.Parallel()
	w := newPrivileged(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v, want nil", err)
	}
	requireClosed(t, w.Events())
	if err := w.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("second Run: %v, want ErrClosed", err)
	}
}

func TestIntegrationWatcherCloseTwice(t *testing.T) {
	t.Parallel()
	w := newPrivileged(t, Config{})
	for i := range 2 {
		if err := w.Close(); err != nil {
			t.Errorf("Close #%d: %v", i+1, err)
		}
	}
	if s := w.Stats(); s != (Stats{}) {
		t.Errorf("Stats after Close without events: %+v, want zero", s)
	}
}

// kernelIDs lists the IDs of every BPF program, map and link in the
// kernel, as `bpftool prog/map/link show` would.
func kernelIDs(t *testing.T) (progs []ebpf.ProgramID, maps []ebpf.MapID, links []link.ID) {
	t.Helper()
	for id := ebpf.ProgramID(0); ; {
		next, err := ebpf.ProgramGetNextID(id)
		if err != nil {
			break
		}
		progs, id = append(progs, next), next
	}
	for id := ebpf.MapID(0); ; {
		next, err := ebpf.MapGetNextID(id)
		if err != nil {
			break
		}
		maps, id = append(maps, next), next
	}
	// link.Iterator opens every link by ID, which fails with EAGAIN for a
	// link another test is tearing down at that moment; the IDs alone are
	// what is needed, so ask for them the way ProgramGetNextID does.
	for id := link.ID(0); ; {
		next, err := linkGetNextID(id)
		if err != nil {
			break
		}
		links, id = append(links, next), next
	}
	return progs, maps, links
}

// linkGetNextID is BPF_LINK_GET_NEXT_ID: the smallest link ID above start,
// or ENOENT when there is none.
func linkGetNextID(start link.ID) (link.ID, error) {
	attr := struct{ start, next, flags uint32 }{start: uint32(start)}
	_, _, errno := unix.Syscall(unix.SYS_BPF, unix.BPF_LINK_GET_NEXT_ID, uintptr(unsafe.Pointer(&attr)), unsafe.Sizeof(attr))
	if errno != 0 {
		return 0, errno
	}
	return link.ID(attr.next), nil
}

// TestIntegrationCloseLeavesNothing records the IDs of the watcher's own
// programs, maps and links (other tests' watchers run in parallel, so the
// totals cannot be compared), checks the kernel lists them while attached,
// and that it lists none of them after Close.
func TestIntegrationCloseLeavesNothing(t *testing.T) {
	t.Parallel()
	w := newPrivileged(t, Config{SyscallTracing: true, Comms: []string{"nobody"}})
	var progs []ebpf.ProgramID
	var maps []ebpf.MapID
	var links []link.ID
	for name, p := range w.w.coll.Programs {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		progs = append(progs, id)
		t.Logf("program %s: id %d", name, id)
	}
	for name, m := range w.w.coll.Maps {
		info, err := m.Info()
		if err != nil {
			t.Fatal(err)
		}
		id, _ := info.ID()
		maps = append(maps, id)
		t.Logf("map %s: id %d", name, id)
	}
	for _, l := range w.w.links {
		info, err := l.Info()
		if err != nil {
			t.Fatal(err)
		}
		links = append(links, info.ID)
	}
	// Five maps and .rodata, which holds the settings (volatile const).
	if len(progs) != 3 || len(maps) != 6 || len(links) != 3 {
		t.Fatalf("loaded %d programs, %d maps, %d links; want 3, 6, 3", len(progs), len(maps), len(links))
	}

	// listed returns which of the watcher's objects the kernel lists.
	listed := func() []string {
		kp, km, kl := kernelIDs(t)
		var found []string
		for _, id := range progs {
			if slices.Contains(kp, id) {
				found = append(found, fmt.Sprintf("program %d", id))
			}
		}
		for _, id := range maps {
			if slices.Contains(km, id) {
				found = append(found, fmt.Sprintf("map %d", id))
			}
		}
		for _, id := range links {
			if slices.Contains(kl, id) {
				found = append(found, fmt.Sprintf("link %d", id))
			}
		}
		return found
	}
	if found := listed(); len(found) != len(progs)+len(maps)+len(links) {
		t.Fatalf("attached: kernel lists only %v", found)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	// Links are gone at once; programs and maps of raw-tracepoint links
	// are freed after an RCU grace period, so wait (one deadline).
	deadline := time.Now().Add(10 * time.Second)
	for found := listed(); len(found) > 0; found = listed() {
		if time.Now().After(deadline) {
			t.Fatalf("10 s after Close the kernel still lists %v", found)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestIntegrationNewWithoutCapabilities drops CAP_BPF, CAP_PERFMON and
// CAP_SYS_ADMIN from the effective set of one locked thread (capabilities
// are per thread) and checks that New fails with ErrPermission, names the
// missing capabilities and leaves nothing loaded.
func TestIntegrationNewWithoutCapabilities(t *testing.T) {
	netnstest.RequirePrivileged(t)
	// This test is not parallel, so no other test of the package holds
	// BPF objects while it runs: the process's BPF descriptors before and
	// after New tell whether New left anything behind.
	before := bpfFDs(t)
	err := netnstest.WithoutCaps([]int{unix.CAP_BPF, unix.CAP_PERFMON, unix.CAP_SYS_ADMIN}, func() error {
		w, err := New(Config{})
		if err == nil {
			w.Close()
			return errors.New("New succeeded without CAP_BPF and CAP_PERFMON")
		}
		return err
	})
	t.Logf("New: %v", err)
	if !errors.Is(err, ErrPermission) {
		t.Fatalf("New without capabilities: %v, want ErrPermission", err)
	}
	for _, want := range []string{"CAP_BPF", "CAP_PERFMON"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %s", err, want)
		}
	}
	if after := bpfFDs(t); after != before {
		t.Errorf("the failed New left BPF descriptors open: %d before, %d after", before, after)
	}
}

// bpfFDs counts the process's open BPF programs, maps and links.
func bpfFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if target, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(target, "anon_inode:bpf") {
			n++
		}
	}
	return n
}

// TestIntegrationWatcherCancelUnderLoad cancels Run while records keep
// arriving: Run's reads of the ring buffer must not race with the reader's
// Close, which the cancellation runs on another goroutine (under -race, a
// race fails the test; without, it could dereference the closed ring).
func TestIntegrationWatcherCancelUnderLoad(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	ns := netnstest.New(t)
	comm := uniqueComm()
	stop := make(chan struct{})
	failing := make(chan error, 1)
	go func() {
		failing <- asThread(ns, comm, func(int) error { return sendUnroutable(-1, stop) })
	}()
	defer func() {
		close(stop)
		if err := <-failing; err != nil {
			t.Error(err)
		}
	}()
	for range 20 {
		w := newPrivileged(t, Config{SyscallTracing: true, Comms: []string{comm}})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- w.Run(ctx) }()
		select {
		case <-w.Events():
		case <-time.After(waitTimeout):
			t.Fatalf("no event within %v", waitTimeout)
		}
		cancel()
		for range w.Events() {
		}
		if err := <-done; err != nil {
			t.Errorf("Run: %v, want nil", err)
		}
	}
}
