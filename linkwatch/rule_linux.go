package linkwatch

import (
	"net/netip"

	"golang.org/x/sys/unix"
)

// sizeofFibRuleHdr is struct fib_rule_hdr (include/uapi/linux/fib_rules.h):
// family, dst_len, src_len, tos, table, res1, res2, action (one byte each)
// and a 32-bit flags word.
const sizeofFibRuleHdr = 12

// parseRule decodes RTM_NEWRULE / RTM_DELRULE (net/core/fib_rules.c,
// fib_nl_fill_rule) into m.rule.
func parseRule(b []byte, m *message) error {
	if len(b) < sizeofFibRuleHdr {
		return &parseError{what: "fib_rule_hdr", got: len(b), want: sizeofFibRuleHdr}
	}
	family := b[0]
	if family != unix.AF_INET && family != unix.AF_INET6 {
		return nil // RTNL_FAMILY_IPMR and the like
	}
	dstLen, srcLen := int(b[1]), int(b[2])
	r := Rule{
		Family:            family,
		Table:             int(b[4]),
		Action:            b[7],
		Invert:            ne.Uint32(b[8:])&unix.FIB_RULE_INVERT != 0,
		SuppressPrefixLen: -1,
	}
	var src, dst netip.Addr
	err := attrs(b[sizeofFibRuleHdr:], "fib_rule_hdr", func(typ uint16, v []byte) (err error) {
		var n uint32
		switch typ {
		case unix.FRA_PRIORITY:
			n, err = u32("FRA_PRIORITY", v)
			r.Priority = int(n)
		case unix.FRA_TABLE:
			n, err = u32("FRA_TABLE", v)
			r.Table = int(n)
		case unix.FRA_FWMARK:
			r.Mark, err = u32("FRA_FWMARK", v)
		case unix.FRA_FWMASK:
			r.Mask, err = u32("FRA_FWMASK", v)
		case unix.FRA_SUPPRESS_PREFIXLEN:
			n, err = u32("FRA_SUPPRESS_PREFIXLEN", v)
			r.SuppressPrefixLen = int(int32(n))
		case unix.FRA_SRC:
			src, err = ipAttr("FRA_SRC", family, v)
		case unix.FRA_DST:
			dst, err = ipAttr("FRA_DST", family, v)
		case unix.FRA_IIFNAME:
			r.IIf = string(cstring(v))
		case unix.FRA_OIFNAME:
			r.OIf = string(cstring(v))
		}
		return err
	})
	if err != nil {
		return err
	}
	if src.IsValid() {
		if r.Src, err = prefixFrom("fib_rule_hdr.src_len", src, srcLen); err != nil {
			return err
		}
	}
	if dst.IsValid() {
		if r.Dst, err = prefixFrom("fib_rule_hdr.dst_len", dst, dstLen); err != nil {
			return err
		}
	}
	m.kind = kindRule
	m.rule = r
	return nil
}
