package nsthread

import (
	"errors"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"go.uber.org/goleak"
	"golang.org/x/sys/unix"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// threadNetNS returns the inode of the calling thread's network namespace.
func threadNetNS(t *testing.T) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// TestDoRunsInTheNamespace: fn sees namespace h, and the caller's thread
// (and h 0) stays in its own.
func TestDoRunsInTheNamespace(t *testing.T) {
	netnstest.RequirePrivileged(t)
	ns := netnstest.New(t)
	var want unix.Stat_t
	if err := unix.Fstat(int(ns.Handle), &want); err != nil {
		t.Fatal(err)
	}
	here := threadNetNS(t)
	var got, zero uint64
	if err := Do(ns.Handle, "test", func() error { got = threadNetNS(t); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if err := Do(0, "test", func() error { zero = threadNetNS(t); return nil }, nil); err != nil {
		t.Fatal(err)
	}
	if got != want.Ino || got == here {
		t.Errorf("fn ran in namespace %d, want %d (the caller's is %d)", got, want.Ino, here)
	}
	if zero != here || threadNetNS(t) != here {
		t.Errorf("h 0 ran in %d, the caller is now in %d; want both %d", zero, threadNetNS(t), here)
	}
	boom := errors.New("boom")
	if err := Do(ns.Handle, "test", func() error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("Do returned %v, want fn's error", err)
	}
}
