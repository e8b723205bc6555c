//go:build linux

package netnstest

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// AddrStorm adds and removes n distinct /32 addresses on dev, one after
// the other (2n kernel messages, the interface never holding more than
// one of them), through one `ip -batch -` inside the namespace: a storm of
// address changes faster than a reader can log them.
func (ns *NS) AddrStorm(dev string, n int) {
	ns.t.Helper()
	var b strings.Builder
	for i := range n {
		a := fmt.Sprintf("10.250.%d.%d/32", i/250, i%250+1)
		fmt.Fprintf(&b, "addr add %s dev %s\naddr del %s dev %s\n", a, dev, a, dev)
	}
	ns.t.Logf("$ ip -n %s -batch - # %d address adds and deletes on %s", ns.Name, 2*n, dev)
	cmd := exec.Command("ip", "-n", ns.Name, "-batch", "-")
	var stderr bytes.Buffer
	cmd.Stdin, cmd.Stderr = strings.NewReader(b.String()), &stderr
	if err := cmd.Run(); err != nil {
		ns.t.Fatalf("netnstest: ip -batch in %s: %v: %s", ns.Name, err, strings.TrimSpace(stderr.String()))
	}
}
