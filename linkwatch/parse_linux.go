package linkwatch

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"golang.org/x/sys/unix"
)

// Linux rtnetlink numbers that x/sys/unix does not name.
const (
	iflaCarrierChanges = 35         // IFLA_CARRIER_CHANGES
	rtmFCloned         = 0x200      // RTM_F_CLONED: a cached clone, not a configured route
	rtnhFLinkDown      = 0x10       // RTNH_F_LINKDOWN
	rtaVia             = 18         // RTA_VIA: a gateway of another family (IPv6 next hop for IPv4)
	sizeofRtaCacheinfo = 32         // struct rta_cacheinfo
	userHZ             = 100        // USER_HZ: clock_t ticks per second in the kernel's ABI
	rtaNHID            = 30         // RTA_NH_ID: the route uses a nexthop object
	sizeofNhmsg        = 8          // struct nhmsg (include/uapi/linux/nexthop.h)
	sizeofNexthopGrp   = 8          // struct nexthop_grp: one NHA_GROUP member
	nlaTypeMask        = 0x3fff     // strips NLA_F_NESTED and NLA_F_NET_BYTEORDER
	ifaInfinity        = 0xffffffff // INFINITY_LIFE_TIME
)

// ne is the byte order of rtnetlink headers and attributes: the host's.
var ne = binary.NativeEndian

// parseError describes a message that does not have the layout the kernel
// ABI promises.
type parseError struct {
	what      string // the field or attribute, e.g. "IFLA_MTU"
	got, want int    // lengths
}

func (e *parseError) Error() string {
	return fmt.Sprintf("linkwatch: %s: length %d, want %d", e.what, e.got, e.want)
}

// header is the part of struct nlmsghdr linkwatch needs.
type header struct {
	typ, flags uint16
	seq, pid   uint32
}

// splitMessages walks a datagram of netlink messages, calling fn for each
// with its header and payload. It stops at the first malformed header or
// when fn returns an error.
func splitMessages(b []byte, fn func(h header, data []byte) error) error {
	for len(b) >= unix.NLMSG_HDRLEN {
		l := int(ne.Uint32(b))
		if l < unix.NLMSG_HDRLEN || l > len(b) {
			return &parseError{what: "nlmsghdr.nlmsg_len", got: l, want: len(b)}
		}
		h := header{
			typ:   ne.Uint16(b[4:]),
			flags: ne.Uint16(b[6:]),
			seq:   ne.Uint32(b[8:]),
			pid:   ne.Uint32(b[12:]),
		}
		if err := fn(h, b[unix.NLMSG_HDRLEN:l]); err != nil {
			return err
		}
		b = b[min(align4(l), len(b)):]
	}
	return nil
}

func align4(n int) int { return (n + 3) &^ 3 }

// attrs walks rtnetlink attributes, calling fn with each type (flags
// stripped) and value.
func attrs(b []byte, what string, fn func(typ uint16, v []byte) error) error {
	for len(b) >= unix.SizeofRtAttr {
		l := int(ne.Uint16(b))
		if l < unix.SizeofRtAttr || l > len(b) {
			return &parseError{what: what + " attribute", got: l, want: len(b)}
		}
		if err := fn(ne.Uint16(b[2:])&nlaTypeMask, b[unix.SizeofRtAttr:l]); err != nil {
			return err
		}
		b = b[min(align4(l), len(b)):]
	}
	return nil
}

func u32(what string, v []byte) (uint32, error) {
	if len(v) != 4 {
		return 0, &parseError{what: what, got: len(v), want: 4}
	}
	return ne.Uint32(v), nil
}

// ipAttr decodes an address attribute of the given family.
func ipAttr(what string, family uint8, v []byte) (netip.Addr, error) {
	want := 4
	if family == unix.AF_INET6 {
		want = 16
	}
	if len(v) != want {
		return netip.Addr{}, &parseError{what: what, got: len(v), want: want}
	}
	a, _ := netip.AddrFromSlice(v)
	return a, nil
}

// unspecified returns the unspecified address of an AF_INET or AF_INET6
// family: the destination of a default route.
func unspecified(family uint8) netip.Addr {
	if family == unix.AF_INET6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// prefixFrom makes the prefix of a header's length field (what) and an
// address attribute, refusing a length longer than the address.
func prefixFrom(what string, a netip.Addr, bits int) (netip.Prefix, error) {
	if bits > a.BitLen() {
		return netip.Prefix{}, &parseError{what: what, got: bits, want: a.BitLen()}
	}
	return netip.PrefixFrom(a, bits), nil
}

// lifetime converts a kernel lifetime in seconds to a Duration.
func lifetime(s uint32) time.Duration {
	if s == ifaInfinity {
		return Forever
	}
	return time.Duration(s) * time.Second
}

// parseMessage decodes one rtnetlink message into m, which it resets
// first. Messages linkwatch does not track leave m.kind == kindNone. A
// message that breaks the ABI's layout is an error and m is then
// unspecified.
func parseMessage(h header, b []byte, m *message) error {
	routes := m.routes[:0]
	*m = message{routes: routes}
	switch h.typ {
	case unix.RTM_NEWLINK, unix.RTM_DELLINK:
		m.del = h.typ == unix.RTM_DELLINK
		return parseLink(b, m)
	case unix.RTM_NEWADDR, unix.RTM_DELADDR:
		m.del = h.typ == unix.RTM_DELADDR
		return parseAddr(b, m)
	case unix.RTM_NEWROUTE, unix.RTM_DELROUTE:
		m.del = h.typ == unix.RTM_DELROUTE
		m.replace = h.flags&unix.NLM_F_REPLACE != 0
		return parseRoute(b, m)
	case unix.RTM_NEWNEIGH, unix.RTM_DELNEIGH:
		m.del = h.typ == unix.RTM_DELNEIGH
		return parseNeigh(b, m)
	case unix.RTM_NEWRULE, unix.RTM_DELRULE:
		m.del = h.typ == unix.RTM_DELRULE
		return parseRule(b, m)
	case unix.RTM_NEWNEXTHOP, unix.RTM_DELNEXTHOP:
		m.del = h.typ == unix.RTM_DELNEXTHOP
		return parseNexthop(b, m)
	}
	return nil
}

func parseLink(b []byte, m *message) error {
	if len(b) < unix.SizeofIfInfomsg {
		return &parseError{what: "ifinfomsg", got: len(b), want: unix.SizeofIfInfomsg}
	}
	// Per-protocol notifications (AF_INET6 when router advertisements
	// change an interface, AF_BRIDGE for bridge ports) repeat a subset of
	// the link's attributes; the AF_UNSPEC message is the link itself.
	if b[0] != unix.AF_UNSPEC {
		return nil
	}
	flags := ne.Uint32(b[8:])
	m.kind = kindLink
	m.link = Link{
		Index:   int(int32(ne.Uint32(b[4:]))),
		AdminUp: flags&unix.IFF_UP != 0,
		Carrier: flags&unix.IFF_LOWER_UP != 0,
	}
	m.loopback = flags&unix.IFF_LOOPBACK != 0
	// rtnl_fill_ifinfo (net/core/rtnetlink.c) always puts IFLA_OPERSTATE;
	// a message without it is partial (see message.partial).
	m.partial = !m.del
	return attrs(b[unix.SizeofIfInfomsg:], "ifinfomsg", func(typ uint16, v []byte) error {
		switch typ {
		case unix.IFLA_IFNAME:
			m.name = cstring(v)
		case unix.IFLA_ADDRESS:
			m.mac = v
		case unix.IFLA_MTU:
			mtu, err := u32("IFLA_MTU", v)
			m.link.MTU = int(mtu)
			return err
		case unix.IFLA_OPERSTATE:
			if len(v) != 1 {
				return &parseError{what: "IFLA_OPERSTATE", got: len(v), want: 1}
			}
			m.link.Oper = OperState(v[0])
			m.partial = false
		case unix.IFLA_MASTER:
			// nla_put_master puts it only while the link has a master.
			n, err := u32("IFLA_MASTER", v)
			m.link.Master = int(int32(n))
			return err
		case iflaCarrierChanges:
			n, err := u32("IFLA_CARRIER_CHANGES", v)
			m.link.CarrierChanges = n
			return err
		case unix.IFLA_WIRELESS:
			m.wireless = true
		case unix.IFLA_LINKINFO:
			return attrs(v, "IFLA_LINKINFO", func(typ uint16, v []byte) error {
				if typ == unix.IFLA_INFO_KIND {
					m.linkKind = cstring(v)
				}
				return nil
			})
		}
		return nil
	})
}

// cstring trims the NUL terminators of a string attribute.
func cstring(v []byte) []byte {
	for len(v) > 0 && v[len(v)-1] == 0 {
		v = v[:len(v)-1]
	}
	return v
}

func parseAddr(b []byte, m *message) error {
	if len(b) < unix.SizeofIfAddrmsg {
		return &parseError{what: "ifaddrmsg", got: len(b), want: unix.SizeofIfAddrmsg}
	}
	family, bits := b[0], int(b[1])
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return nil
	}
	a := Addr{
		Index: int(int32(ne.Uint32(b[4:]))),
		Scope: b[3],
		Flags: uint32(b[2]),
		// Without IFA_CACHEINFO (never seen from Linux) an address has
		// no lifetime.
		Valid:     Forever,
		Preferred: Forever,
	}
	var local, address netip.Addr
	err := attrs(b[unix.SizeofIfAddrmsg:], "ifaddrmsg", func(typ uint16, v []byte) (err error) {
		switch typ {
		case unix.IFA_LOCAL:
			local, err = ipAttr("IFA_LOCAL", family, v)
		case unix.IFA_ADDRESS:
			address, err = ipAttr("IFA_ADDRESS", family, v)
		case unix.IFA_FLAGS:
			// The 8-bit ifa_flags cannot hold the newer flags; the
			// attribute holds all of them.
			a.Flags, err = u32("IFA_FLAGS", v)
		case unix.IFA_CACHEINFO:
			if len(v) != unix.SizeofIfaCacheinfo {
				return &parseError{what: "IFA_CACHEINFO", got: len(v), want: unix.SizeofIfaCacheinfo}
			}
			a.Preferred = lifetime(ne.Uint32(v))
			a.Valid = lifetime(ne.Uint32(v[4:]))
		}
		return err
	})
	if err != nil {
		return err
	}
	// For IPv4, IFA_LOCAL is the interface's own address and IFA_ADDRESS
	// the peer on a point-to-point link; IPv6 sends only IFA_ADDRESS.
	ip := local
	if !ip.IsValid() {
		ip = address
	}
	if !ip.IsValid() {
		return &parseError{what: "ifaddrmsg without IFA_LOCAL or IFA_ADDRESS", got: 0, want: 1}
	}
	if a.Prefix, err = prefixFrom("ifaddrmsg.ifa_prefixlen", ip, bits); err != nil {
		return err
	}
	m.kind = kindAddr
	m.addr = a
	return nil
}

func parseRoute(b []byte, m *message) error {
	if len(b) < unix.SizeofRtMsg {
		return &parseError{what: "rtmsg", got: len(b), want: unix.SizeofRtMsg}
	}
	family, dstLen, srcLen := b[0], b[1], b[2]
	rflags := ne.Uint32(b[8:])
	// Default unicast routes are tracked; local and broadcast entries,
	// multicast, source-specific routes and cached clones are noise here.
	// Other routes that steer packets (a prefix route, a VPN's split route,
	// an unreachable or prohibit route) are reported without state: they
	// can move a destination's path.
	if (family != unix.AF_INET && family != unix.AF_INET6) || srcLen != 0 || rflags&rtmFCloned != 0 {
		return nil
	}
	if dstLen != 0 || b[7] != unix.RTN_UNICAST {
		return parseOtherRoute(b, m)
	}
	r := Route{
		Table:    int(b[4]),
		Protocol: int(b[5]),
		LinkDown: rflags&rtnhFLinkDown != 0,
		Dst:      netip.PrefixFrom(unspecified(family), 0),
	}
	var multipath []byte
	err := attrs(b[unix.SizeofRtMsg:], "rtmsg", func(typ uint16, v []byte) (err error) {
		var n uint32
		switch typ {
		case unix.RTA_TABLE:
			n, err = u32("RTA_TABLE", v)
			r.Table = int(n)
		case unix.RTA_OIF:
			n, err = u32("RTA_OIF", v)
			r.Index = int(int32(n))
		case unix.RTA_PRIORITY:
			n, err = u32("RTA_PRIORITY", v)
			r.Metric = int(n)
		case unix.RTA_GATEWAY:
			r.Gateway, err = ipAttr("RTA_GATEWAY", family, v)
		case rtaVia:
			r.Gateway, err = viaAttr(v)
		case unix.RTA_PREFSRC:
			r.Src, err = ipAttr("RTA_PREFSRC", family, v)
		case unix.RTA_MULTIPATH:
			multipath = v
		case rtaNHID:
			r.NexthopID, err = u32("RTA_NH_ID", v)
		case unix.RTA_CACHEINFO:
			// The remaining lifetime of a route that expires is
			// rta_expires, in clock_t (USER_HZ) ticks: rt6_fill_node
			// (net/ipv6/route.c) passes dst.expires - jiffies to
			// rtnl_put_cacheinfo, which converts it with
			// jiffies_to_clock_t (negative once past). RTA_EXPIRES
			// exists only in requests (rtm_to_fib6_config).
			if len(v) != sizeofRtaCacheinfo {
				return &parseError{what: "RTA_CACHEINFO", got: len(v), want: sizeofRtaCacheinfo}
			}
			r.Expires = time.Duration(int32(ne.Uint32(v[8:]))) * (time.Second / userHZ)
		}
		return err
	})
	if err != nil {
		return err
	}
	if r.Table == unix.RT_TABLE_LOCAL {
		return nil
	}
	m.kind = kindRoute
	if multipath == nil {
		m.routes = append(m.routes, r)
		return nil
	}
	// A multipath route becomes one Route per next hop, each with its own
	// interface, gateway and linkdown flag.
	for len(multipath) >= unix.SizeofRtNexthop {
		l := int(ne.Uint16(multipath))
		if l < unix.SizeofRtNexthop || l > len(multipath) {
			return &parseError{what: "rtnexthop", got: l, want: len(multipath)}
		}
		hop := r
		hop.Gateway = netip.Addr{}
		hop.LinkDown = multipath[2]&rtnhFLinkDown != 0
		hop.Index = int(int32(ne.Uint32(multipath[4:])))
		err := attrs(multipath[unix.SizeofRtNexthop:l], "rtnexthop", func(typ uint16, v []byte) (err error) {
			switch typ {
			case unix.RTA_GATEWAY:
				hop.Gateway, err = ipAttr("RTA_GATEWAY", family, v)
			case rtaVia:
				hop.Gateway, err = viaAttr(v)
			}
			return err
		})
		if err != nil {
			return err
		}
		m.routes = append(m.routes, hop)
		multipath = multipath[min(align4(l), len(multipath)):]
	}
	return nil
}

// viaAttr decodes RTA_VIA: a 16-bit family followed by the address.
func viaAttr(v []byte) (netip.Addr, error) {
	if len(v) < 2 {
		return netip.Addr{}, &parseError{what: "RTA_VIA", got: len(v), want: 2}
	}
	return ipAttr("RTA_VIA", uint8(ne.Uint16(v)), v[2:])
}

func parseNeigh(b []byte, m *message) error {
	if len(b) < unix.SizeofNdMsg {
		return &parseError{what: "ndmsg", got: len(b), want: unix.SizeofNdMsg}
	}
	family := b[0]
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return nil // bridge forwarding entries and the like
	}
	n := Neigh{
		Index: int(int32(ne.Uint32(b[4:]))),
		State: ne.Uint16(b[8:]),
	}
	err := attrs(b[unix.SizeofNdMsg:], "ndmsg", func(typ uint16, v []byte) (err error) {
		switch typ {
		case unix.NDA_DST:
			n.IP, err = ipAttr("NDA_DST", family, v)
		case unix.NDA_LLADDR:
			m.mac = v
		}
		return err
	})
	if err != nil {
		return err
	}
	if !n.IP.IsValid() {
		return nil // a proxy or multicast entry without a destination
	}
	m.kind = kindNeigh
	m.neigh = n
	return nil
}

// steering are the route types that decide where packets go (or that they
// go nowhere): a change of one can move a destination's path.
var steering = [...]bool{unix.RTN_UNICAST: true, unix.RTN_BLACKHOLE: true, unix.RTN_UNREACHABLE: true,
	unix.RTN_PROHIBIT: true, unix.RTN_THROW: true}

// parseOtherRoute decodes a route linkwatch does not keep: a prefix route
// or a route that does not carry packets, outside the local table.
func parseOtherRoute(b []byte, m *message) error {
	family, dstLen, typ := b[0], int(b[1]), b[7]
	if int(typ) >= len(steering) || !steering[typ] {
		return nil
	}
	o := OtherRouteEvent{Table: int(b[4]), Type: typ}
	var dst netip.Addr
	err := attrs(b[unix.SizeofRtMsg:], "rtmsg", func(t uint16, v []byte) (err error) {
		switch t {
		case unix.RTA_TABLE:
			var n uint32
			n, err = u32("RTA_TABLE", v)
			o.Table = int(n)
		case unix.RTA_DST:
			dst, err = ipAttr("RTA_DST", family, v)
		}
		return err
	})
	if err != nil || o.Table == unix.RT_TABLE_LOCAL {
		return err
	}
	if !dst.IsValid() {
		dst = unspecified(family) // a default route has no RTA_DST
	}
	if o.Dst, err = prefixFrom("rtmsg.rtm_dst_len", dst, dstLen); err != nil {
		return err
	}
	m.kind = kindOtherRoute
	m.other = o
	return nil
}

// parseNexthop decodes a nexthop object (RTM_NEWNEXTHOP, RTM_DELNEXTHOP),
// as nh_fill_node (net/ipv4/nexthop.c) lays it out: struct nhmsg, NHA_ID,
// then NHA_GROUP for a group, NHA_BLACKHOLE for a blackhole, or NHA_OIF
// and NHA_GATEWAY (of nh_family).
func parseNexthop(b []byte, m *message) error {
	if len(b) < sizeofNhmsg {
		return &parseError{what: "nhmsg", got: len(b), want: sizeofNhmsg}
	}
	family := b[0]
	nh := nexthop{linkDown: ne.Uint32(b[4:])&unix.RTNH_F_LINKDOWN != 0}
	err := attrs(b[sizeofNhmsg:], "nhmsg", func(typ uint16, v []byte) (err error) {
		var n uint32
		switch typ {
		case unix.NHA_ID:
			nh.id, err = u32("NHA_ID", v)
		case unix.NHA_OIF:
			n, err = u32("NHA_OIF", v)
			nh.index = int(int32(n))
		case unix.NHA_GATEWAY:
			nh.gw, err = ipAttr("NHA_GATEWAY", family, v)
		case unix.NHA_BLACKHOLE:
			nh.blackhole = true
		case unix.NHA_GROUP:
			if len(v)%sizeofNexthopGrp != 0 {
				return &parseError{what: "NHA_GROUP (8 bytes per struct nexthop_grp)", got: len(v),
					want: (len(v) + sizeofNexthopGrp - 1) / sizeofNexthopGrp * sizeofNexthopGrp}
			}
			nh.group = make([]uint32, 0, len(v)/sizeofNexthopGrp)
			for ; len(v) >= sizeofNexthopGrp; v = v[sizeofNexthopGrp:] {
				nh.group = append(nh.group, ne.Uint32(v))
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	if nh.id == 0 {
		return &parseError{what: "nhmsg without NHA_ID", got: 0, want: 4}
	}
	m.kind = kindNexthop
	m.nh = nh
	return nil
}
