package sockwatch

import (
	"fmt"
	"net/netip"
)

// filter is the part of the configuration applied in user space, in the
// ring-buffer reader, before an event is delivered: Config.Cgroups and
// Config.Destinations. The zero value lets every event through.
type filter struct {
	cgroups map[uint64]struct{} // nil: any cgroup
	dsts    []netip.Prefix      // nil: any destination
}

// newFilter builds the filter of a validated Config.
func newFilter(cfg Config) filter {
	var f filter
	if len(cfg.Cgroups) > 0 {
		f.cgroups = make(map[uint64]struct{}, len(cfg.Cgroups))
		for _, id := range cfg.Cgroups {
			f.cgroups[id] = struct{}{}
		}
	}
	f.dsts = cfg.Destinations
	return f
}

// match reports whether ev passes the filter. With a cgroup filter, an
// event whose cgroup is unknown (0) does not pass; with a destination
// filter, neither does one without a destination. An IPv4-mapped IPv6
// destination (::ffff:10.0.0.5, from an AF_INET6 socket talking IPv4)
// matches the IPv4 prefixes that contain its IPv4 address.
func (f filter) match(ev Event) bool {
	if f.cgroups != nil {
		if _, ok := f.cgroups[ev.Cgroup]; !ok {
			return false
		}
	}
	if f.dsts == nil {
		return true
	}
	if !ev.Dst.IsValid() {
		return false
	}
	a := ev.Dst.Addr()
	u := a.Unmap()
	for _, p := range f.dsts {
		if p.Contains(u) || p.Contains(a) {
			return true
		}
	}
	return false
}

// validateFilter checks Config.Cgroups and Config.Destinations and returns
// the destinations normalised: host bits cleared, and IPv4-mapped IPv6
// prefixes of at least 96 bits written as the IPv4 prefixes they are. The
// caller's slice is not modified.
func validateFilter(cfg Config) ([]netip.Prefix, error) {
	for i, id := range cfg.Cgroups {
		if id == 0 {
			return nil, fmt.Errorf("sockwatch: Config.Cgroups[%d] is 0: want a cgroup v2 ID, the inode number of a cgroup directory (stat -c %%i /sys/fs/cgroup/system.slice/NAME.service)", i)
		}
	}
	if len(cfg.Destinations) == 0 {
		return nil, nil
	}
	out := make([]netip.Prefix, 0, len(cfg.Destinations))
	for i, p := range cfg.Destinations {
		if !p.IsValid() {
			return nil, fmt.Errorf("sockwatch: Config.Destinations[%d] is not a valid prefix: want an IPv4 or IPv6 prefix such as 10.0.0.0/8 or 2001:db8::/32", i)
		}
		if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(a.Unmap(), p.Bits()-96)
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
