package netnstest

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestIntegrationVethAcrossNamespaces(t *testing.T) {
	t.Parallel()
	a, b := New(t), New(t)
	Veth(t, a, "va", b, "vb")
	a.IP("addr", "add", "10.200.0.1/24", "dev", "va")
	b.IP("addr", "add", "10.200.0.2/24", "dev", "vb")

	// A listener inside b, a dial from a: proves Do enters the namespace and
	// that the pair carries traffic.
	var ln net.Listener
	if err := b.Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", "10.200.0.2:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Close()
		}
	}()
	if err := a.Do(func() error {
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err == nil {
			c.Close()
		}
		return err
	}); err != nil {
		t.Fatalf("dial across veth: %v", err)
	}

	// The link is not visible in the test's own namespace.
	if _, err := netlink.LinkByName("va"); err == nil {
		t.Fatal("va leaked into the host namespace")
	}
	if out := a.IP("-br", "link", "show", "va"); !strings.Contains(out, "va@") {
		t.Fatalf("ip -n %s link show va = %q", a.Name, out)
	}
}

func TestNamespaceNamesAreUnique(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for range 5 {
		n := uniqueName()
		if seen[n] {
			t.Fatalf("duplicate name %q", n)
		}
		seen[n] = true
	}
}

// TestOnLockedThreadGoexit: a function that ends its goroutine (as
// t.Fatal inside Do does) makes onLockedThread return an error instead of
// hanging the test binary.
func TestOnLockedThreadGoexit(t *testing.T) {
	err := onLockedThread(func() error {
		runtime.Goexit()
		return nil
	})
	if !errors.Is(err, errGoexit) {
		t.Fatalf("onLockedThread = %v, want errGoexit", err)
	}
	if err := onLockedThread(func() error { return nil }); err != nil {
		t.Fatalf("onLockedThread(return nil) = %v", err)
	}
}

// TestSweepOrphans: a namespace left by a test process that died is
// removed; one whose creator lives is kept.
func TestSweepOrphans(t *testing.T) {
	RequirePrivileged(t)
	// A PID that is surely dead: a child that has exited and been reaped.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("nmt-%d-0-orphan", cmd.Process.Pid)
	live := fmt.Sprintf("nmt-%d-0-alive", os.Getpid())
	for _, name := range []string{dead, live} {
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			t.Fatalf("ip netns add %s: %v: %s", name, err, out)
		}
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	}
	sweepOrphans()
	if _, err := os.Stat("/run/netns/" + dead); !os.IsNotExist(err) {
		t.Errorf("orphan %s still there (stat: %v)", dead, err)
	}
	if _, err := os.Stat("/run/netns/" + live); err != nil {
		t.Errorf("namespace of a live process removed: %v", err)
	}
}
