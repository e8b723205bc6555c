package netmon

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// MaxTargets is how many targets [Options].Targets may name. Every kernel
// change costs one route lookup per target (two through an overlay), so
// the list is for the destinations that matter, not a host inventory.
const MaxTargets = 64

// Target is a destination that matters to this robot: its on-site server,
// its cloud broker. The Monitor judges the path the kernel would use to
// reach each one; see [Options].Targets.
type Target struct {
	// Spec is the target as given: "10.1.0.5", "[2001:db8::5]:8883",
	// "broker.example.com:8883".
	Spec string
	// Host is the host name to resolve, "" when Spec is an address.
	Host string
	// Addr is the address given, invalid for a host name (the Monitor
	// resolves it).
	Addr netip.Addr
	// Port is the port given, 0 when none. It does not change the path
	// (routing is by address) and is kept for display.
	Port uint16
}

// ParseTarget parses a target: an IPv4 or IPv6 address, an address with a
// port ("10.1.0.5:8883", "[2001:db8::5]:8883"), a host name, or a host name
// with a port. It rejects link-local addresses with a zone (their path is
// chosen by the zone, not by routing) and anything that is not a valid host
// name, naming the problem.
func ParseTarget(s string) (Target, error) {
	t := Target{Spec: s}
	bad := func(why string) (Target, error) {
		return Target{}, fmt.Errorf("netmon: target %q: %s; want an address, a host name, or either with :PORT (10.1.0.5, [2001:db8::5]:8883, broker.example.com:8883)", s, why)
	}
	if s == "" {
		return bad("empty")
	}
	host := s
	if a, err := netip.ParseAddr(s); err == nil {
		t.Addr = a
	} else if ap, err := netip.ParseAddrPort(s); err == nil {
		t.Addr, t.Port = ap.Addr(), ap.Port()
		if t.Port == 0 {
			return bad("port 0")
		}
	} else if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil || n == 0 {
			return bad(fmt.Sprintf("port %q is not a number from 1 to 65535", p))
		}
		host, t.Port = h, uint16(n)
		if a, err := netip.ParseAddr(h); err == nil {
			t.Addr = a
		}
	}
	if t.Addr.IsValid() {
		if t.Addr.Zone() != "" {
			return bad("an address with a zone (link-local) has no routed path")
		}
		if t.Addr.IsUnspecified() || t.Addr.IsMulticast() {
			return bad("an unspecified or multicast address is not a destination")
		}
		t.Addr = t.Addr.Unmap()
		return t, nil
	}
	if why := checkHostName(host); why != "" {
		return bad(why)
	}
	t.Host = host
	return t, nil
}

// checkHostName returns why h is not a host name (RFC 1123 labels, with
// the underscore some local names use), or "".
func checkHostName(h string) string {
	h = strings.TrimSuffix(h, ".")
	if h == "" || len(h) > 253 {
		return "a host name must have 1 to 253 characters"
	}
	labels := strings.Split(h, ".")
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		// RFC 1123 2.1: a top-level label is never all digits.
		return "not a valid IP address, and a host name cannot end in a number"
	}
	for _, label := range labels {
		if label == "" || len(label) > 63 {
			return "a host name's labels must have 1 to 63 characters"
		}
		if label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Sprintf("label %q starts or ends with '-'", label)
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Sprintf("%q is not allowed in a host name", c)
			}
		}
	}
	return ""
}

// String returns Spec.
func (t Target) String() string { return t.Spec }
