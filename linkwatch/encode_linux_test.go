package linkwatch

import (
	"net/netip"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// The encoders in this file build rtnetlink messages the way the kernel
// lays them out, so that parser tests and benchmarks run without a kernel
// and every fixture round-trips through the parser.

// nlmsg wraps body in a netlink header.
func nlmsg(typ, flags uint16, body []byte) []byte {
	b := make([]byte, unix.NLMSG_HDRLEN, unix.NLMSG_HDRLEN+len(body))
	ne.PutUint32(b, uint32(unix.NLMSG_HDRLEN+len(body)))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	return append(b, body...)
}

// appendAttr appends one attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	var h [4]byte
	ne.PutUint16(h[:], uint16(4+len(v)))
	ne.PutUint16(h[2:], typ)
	b = append(b, h[:]...)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func u32b(v uint32) []byte { b := make([]byte, 4); ne.PutUint32(b, v); return b }

// linkMsg encodes l as RTM_NEWLINK (or RTM_DELLINK) the way
// rtnl_fill_ifinfo (net/core/rtnetlink.c) does, with the subset of its
// attributes linkwatch reads. For Kind "wireless" it adds IFLA_WIRELESS,
// which no real full message carries (the kernel sends it only in the
// partial wireless extensions message that [wextLinkMsg] encodes); it
// stands for a wireless link that the model must not lose.
func linkMsg(l Link, del bool) []byte {
	body := make([]byte, unix.SizeofIfInfomsg)
	ne.PutUint32(body[4:], uint32(int32(l.Index)))
	var flags uint32
	if l.AdminUp {
		flags |= unix.IFF_UP
	}
	if l.Carrier {
		flags |= unix.IFF_LOWER_UP | unix.IFF_RUNNING
	}
	if l.Kind == "loopback" {
		flags |= unix.IFF_LOOPBACK
	}
	ne.PutUint32(body[8:], flags)
	body = appendAttr(body, unix.IFLA_IFNAME, append([]byte(l.Name), 0))
	body = appendAttr(body, unix.IFLA_MTU, u32b(uint32(l.MTU)))
	body = appendAttr(body, unix.IFLA_OPERSTATE, []byte{byte(l.Oper)})
	if l.MAC != nil {
		body = appendAttr(body, unix.IFLA_ADDRESS, l.MAC)
	}
	body = appendAttr(body, iflaCarrierChanges, u32b(l.CarrierChanges))
	if l.Master != 0 {
		body = appendAttr(body, unix.IFLA_MASTER, u32b(uint32(l.Master)))
	}
	if l.Kind != "" && l.Kind != "loopback" && l.Kind != "wireless" {
		info := appendAttr(nil, unix.IFLA_INFO_KIND, []byte(l.Kind))
		body = appendAttr(body, unix.IFLA_LINKINFO|unix.NLA_F_NESTED, info)
	}
	if l.Kind == "wireless" {
		body = appendAttr(body, unix.IFLA_WIRELESS, []byte{0, 0, 0, 0})
	}
	typ := uint16(unix.RTM_NEWLINK)
	if del {
		typ = unix.RTM_DELLINK
	}
	return nlmsg(typ, 0, body)
}

func family(a netip.Addr) byte {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

func secs(d interface{ Seconds() float64 }) uint32 {
	if d.Seconds() >= float64(Forever)/1e9 {
		return ifaInfinity
	}
	return uint32(d.Seconds())
}

// addrMsg encodes a as RTM_NEWADDR (or RTM_DELADDR).
func addrMsg(a Addr, del bool) []byte {
	ip := a.Prefix.Addr()
	body := make([]byte, unix.SizeofIfAddrmsg)
	body[0] = family(ip)
	body[1] = byte(a.Prefix.Bits())
	body[2] = byte(a.Flags)
	body[3] = a.Scope
	ne.PutUint32(body[4:], uint32(a.Index))
	body = appendAttr(body, unix.IFA_ADDRESS, ip.AsSlice())
	if ip.Is4() {
		body = appendAttr(body, unix.IFA_LOCAL, ip.AsSlice())
	}
	body = appendAttr(body, unix.IFA_FLAGS, u32b(a.Flags))
	ci := make([]byte, unix.SizeofIfaCacheinfo)
	ne.PutUint32(ci, secs(a.Preferred))
	ne.PutUint32(ci[4:], secs(a.Valid))
	body = appendAttr(body, unix.IFA_CACHEINFO, ci)
	typ := uint16(unix.RTM_NEWADDR)
	if del {
		typ = unix.RTM_DELADDR
	}
	return nlmsg(typ, 0, body)
}

// rtmsg encodes struct rtmsg of a unicast route with r's family,
// destination, table (and RTA_TABLE), protocol, linkdown flag and metric
// (RTA_PRIORITY).
func rtmsg(r Route) []byte {
	body := make([]byte, unix.SizeofRtMsg)
	body[0] = family(r.Dst.Addr())
	body[1] = byte(r.Dst.Bits())
	body[4] = byte(min(r.Table, 252))
	body[5] = byte(r.Protocol)
	body[7] = unix.RTN_UNICAST
	if r.LinkDown {
		ne.PutUint32(body[8:], rtnhFLinkDown)
	}
	body = appendAttr(body, unix.RTA_TABLE, u32b(uint32(r.Table)))
	if r.Dst.Bits() != 0 {
		// rt_fill_info (net/ipv4/route.c) and rt6_fill_node
		// (net/ipv6/route.c) put RTA_DST whenever rtm_dst_len is not 0.
		body = appendAttr(body, unix.RTA_DST, r.Dst.Addr().AsSlice())
	}
	if r.Metric != 0 {
		body = appendAttr(body, unix.RTA_PRIORITY, u32b(uint32(r.Metric)))
	}
	return body
}

// routeMsg encodes r as RTM_NEWROUTE (or RTM_DELROUTE) of type unicast.
func routeMsg(r Route, del bool, flags uint16) []byte {
	body := rtmsg(r)
	if r.Gateway.IsValid() {
		body = appendAttr(body, unix.RTA_GATEWAY, r.Gateway.AsSlice())
	}
	if r.Src.IsValid() {
		body = appendAttr(body, unix.RTA_PREFSRC, r.Src.AsSlice())
	}
	if r.NexthopID != 0 {
		body = appendAttr(body, rtaNHID, u32b(r.NexthopID))
	}
	if r.NexthopID == 0 || r.Index != 0 {
		// With a nexthop object and nexthop_compat_mode=0, fib_dump_info
		// puts RTA_NH_ID alone.
		body = appendAttr(body, unix.RTA_OIF, u32b(uint32(r.Index)))
	}
	if r.Expires != 0 {
		// rtnl_put_cacheinfo: struct rta_cacheinfo, rta_expires (an s32
		// at offset 8) in USER_HZ ticks.
		ci := make([]byte, sizeofRtaCacheinfo)
		ne.PutUint32(ci[8:], uint32(int32(r.Expires/(time.Second/userHZ))))
		body = appendAttr(body, unix.RTA_CACHEINFO, ci)
	}
	typ := uint16(unix.RTM_NEWROUTE)
	if del {
		typ = unix.RTM_DELROUTE
	}
	return nlmsg(typ, flags, body)
}

// neighMsg encodes n as RTM_NEWNEIGH (or RTM_DELNEIGH).
func neighMsg(n Neigh, del bool) []byte {
	body := make([]byte, unix.SizeofNdMsg)
	body[0] = family(n.IP)
	ne.PutUint32(body[4:], uint32(n.Index))
	ne.PutUint16(body[8:], n.State)
	body = appendAttr(body, unix.NDA_DST, n.IP.AsSlice())
	if n.MAC != nil {
		body = appendAttr(body, unix.NDA_LLADDR, n.MAC)
	}
	typ := uint16(unix.RTM_NEWNEIGH)
	if del {
		typ = unix.RTM_DELNEIGH
	}
	return nlmsg(typ, 0, body)
}

// Wireless extensions numbers (include/uapi/linux/wireless.h and
// include/uapi/linux/if_arp.h).
const (
	siocgiwap   = 0x8B15 // SIOCGIWAP: association changed (the access point's address)
	arphrdEther = 1      // ARPHRD_ETHER
)

// wextLinkMsg encodes the RTM_NEWLINK that cfg80211's wireless extensions
// (CONFIG_CFG80211_WEXT) send on connect and disconnect, byte for byte as
// the kernel builds it:
//
//   - net/wireless/sme.c __cfg80211_connect_result / __cfg80211_disconnected
//     call wireless_send_event(dev, SIOCGIWAP, &wrqu, NULL) with
//     wrqu.ap_addr.sa_family = ARPHRD_ETHER and sa_data the BSSID (all
//     zeros on disconnect).
//   - net/wireless/wext-core.c wireless_send_event: nlmsg_new, then
//     rtnetlink_ifinfo_prep, then nla_reserve(skb, IFLA_WIRELESS,
//     event_len) holding a struct iw_event: memset(event, 0, hdr_len),
//     event->len = event_len, event->cmd = cmd, then the fixed payload
//     (struct sockaddr for IW_HEADER_TYPE_ADDR) at offset IW_EV_LCP_LEN;
//     event_len = IW_EV_ADDR_LEN = IW_EV_LCP_LEN + sizeof(struct sockaddr).
//     IW_EV_LCP_LEN is sizeof(struct iw_event) - sizeof(union iwreq_data):
//     the union holds a pointer (struct iw_point), so the prefix is 8
//     bytes on 64-bit kernels and 4 on 32-bit ones.
//   - rtnetlink_ifinfo_prep: nlmsg_put(skb, 0, 0, RTM_NEWLINK,
//     sizeof(struct ifinfomsg), 0) (port id 0, seq 0, no flags), then
//     ifi_family = AF_UNSPEC, ifi_type = dev->type, ifi_index =
//     dev->ifindex, ifi_flags = dev_get_flags(dev), ifi_change = 0, and
//     nla_put_string(skb, IFLA_IFNAME, dev->name). Nothing else: no
//     IFLA_OPERSTATE, IFLA_MTU, IFLA_ADDRESS, IFLA_LINKINFO or
//     IFLA_CARRIER_CHANGES, which only rtnl_fill_ifinfo
//     (net/core/rtnetlink.c) puts.
//   - wireless_nlevent_flush sends the queued skb with rtnl_notify(skb,
//     net, 0, RTNLGRP_LINK, NULL, GFP_KERNEL): the same group as every
//     link message.
//
// flags are the IFF_* bits dev_get_flags reports (IFF_UP, IFF_RUNNING,
// IFF_LOWER_UP, IFF_DORMANT, ...).
func wextLinkMsg(index int, name string, flags uint32, bssid [6]byte) []byte {
	lcp := strconv.IntSize / 8 // IW_EV_LCP_LEN
	event := make([]byte, lcp+16)
	ne.PutUint16(event, uint16(len(event)))
	ne.PutUint16(event[2:], siocgiwap)
	ne.PutUint16(event[lcp:], arphrdEther) // sockaddr.sa_family
	copy(event[lcp+2:], bssid[:])          // sockaddr.sa_data
	body := make([]byte, unix.SizeofIfInfomsg)
	ne.PutUint16(body[2:], arphrdEther)
	ne.PutUint32(body[4:], uint32(int32(index)))
	ne.PutUint32(body[8:], flags)
	body = appendAttr(body, unix.IFLA_IFNAME, append([]byte(name), 0))
	body = appendAttr(body, unix.IFLA_WIRELESS, event)
	return nlmsg(unix.RTM_NEWLINK, 0, body)
}

// multipathMsg encodes hops (which share table, destination, metric and
// protocol) as one RTM_NEWROUTE (or RTM_DELROUTE) with RTA_MULTIPATH, as
// fib_dump_info (net/ipv4/fib_semantics.c) and rt6_fill_node
// (net/ipv6/route.c) lay it out: no top-level RTA_OIF or RTA_GATEWAY, one
// struct rtnexthop per hop (rtnh_hops is the weight minus one) followed
// by its RTA_GATEWAY.
func multipathMsg(hops []Route, del bool, flags uint16) []byte {
	body := rtmsg(with(hops[0], func(r *Route) { r.LinkDown = false })) // each hop has its own
	var mp []byte
	for _, h := range hops {
		nh := make([]byte, unix.SizeofRtNexthop)
		if h.LinkDown {
			nh[2] = rtnhFLinkDown
		}
		ne.PutUint32(nh[4:], uint32(h.Index))
		if h.Gateway.IsValid() {
			nh = appendAttr(nh, unix.RTA_GATEWAY, h.Gateway.AsSlice())
		}
		ne.PutUint16(nh, uint16(len(nh)))
		mp = append(mp, nh...)
	}
	body = appendAttr(body, unix.RTA_MULTIPATH, mp)
	typ := uint16(unix.RTM_NEWROUTE)
	if del {
		typ = unix.RTM_DELROUTE
	}
	return nlmsg(typ, flags, body)
}

// nexthopMsg encodes nh as RTM_NEWNEXTHOP (or RTM_DELNEXTHOP), as
// nh_fill_node (net/ipv4/nexthop.c) does: struct nhmsg (nh_family
// AF_UNSPEC for a group, else the gateway's family), NHA_ID, then
// NHA_GROUP_TYPE and NHA_GROUP (struct nexthop_grp: id, weight - 1,
// weight_high, reserved), NHA_BLACKHOLE, or NHA_OIF and NHA_GATEWAY.
func nexthopMsg(nh nexthop, del bool) []byte {
	body := make([]byte, sizeofNhmsg)
	if nh.gw.IsValid() {
		body[0] = family(nh.gw)
	} else if nh.group == nil {
		body[0] = unix.AF_INET
	}
	if nh.linkDown {
		ne.PutUint32(body[4:], unix.RTNH_F_LINKDOWN)
	}
	body = appendAttr(body, unix.NHA_ID, u32b(nh.id))
	switch {
	case nh.group != nil:
		body = appendAttr(body, unix.NHA_GROUP_TYPE, []byte{0, 0}) // NEXTHOP_GRP_TYPE_MPATH
		var grp []byte
		for _, id := range nh.group {
			grp = append(grp, u32b(id)...)
			grp = append(grp, 0, 0, 0, 0)
		}
		body = appendAttr(body, unix.NHA_GROUP, grp)
	case nh.blackhole:
		body = appendAttr(body, unix.NHA_BLACKHOLE, nil)
	default:
		body = appendAttr(body, unix.NHA_OIF, u32b(uint32(nh.index)))
		if nh.gw.IsValid() {
			body = appendAttr(body, unix.NHA_GATEWAY, nh.gw.AsSlice())
		}
	}
	typ := uint16(unix.RTM_NEWNEXTHOP)
	if del {
		typ = unix.RTM_DELNEXTHOP
	}
	return nlmsg(typ, 0, body)
}

// ruleMsg encodes r as RTM_NEWRULE (or RTM_DELRULE) as fib_nl_fill_rule
// (net/core/fib_rules.c) lays it out: struct fib_rule_hdr, FRA_TABLE,
// FRA_SUPPRESS_PREFIXLEN (always, -1 when unset), FRA_PRIORITY, FRA_FWMARK
// and FRA_FWMASK when a mark is set, FRA_SRC/FRA_DST for selectors.
func ruleMsg(r Rule, del bool) []byte {
	body := make([]byte, sizeofFibRuleHdr)
	body[0] = r.Family
	body[1] = byte(r.Dst.Bits())
	body[2] = byte(r.Src.Bits())
	body[4] = byte(min(r.Table, 252))
	body[7] = r.Action
	if r.Invert {
		ne.PutUint32(body[8:], unix.FIB_RULE_INVERT)
	}
	body = appendAttr(body, unix.FRA_TABLE, u32b(uint32(r.Table)))
	body = appendAttr(body, unix.FRA_SUPPRESS_PREFIXLEN, u32b(uint32(int32(r.SuppressPrefixLen))))
	if r.Priority != 0 {
		body = appendAttr(body, unix.FRA_PRIORITY, u32b(uint32(r.Priority)))
	}
	if r.Mark != 0 {
		body = appendAttr(body, unix.FRA_FWMARK, u32b(r.Mark))
		body = appendAttr(body, unix.FRA_FWMASK, u32b(r.Mask))
	}
	if r.Src.IsValid() {
		body = appendAttr(body, unix.FRA_SRC, r.Src.Addr().AsSlice())
	}
	if r.Dst.IsValid() {
		body = appendAttr(body, unix.FRA_DST, r.Dst.Addr().AsSlice())
	}
	typ := uint16(unix.RTM_NEWRULE)
	if del {
		typ = unix.RTM_DELRULE
	}
	return nlmsg(typ, 0, body)
}
