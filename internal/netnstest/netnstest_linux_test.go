package netnstest

import (
	"net"
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
