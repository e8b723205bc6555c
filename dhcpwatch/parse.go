package dhcpwatch

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// errNoLease is wrapped by [Parse] when a file holds no usable lease.
var errNoLease = errors.New("no lease")

// maxLeaseDuration bounds the times read from files, so that arithmetic on
// them cannot overflow (a year is longer than any DHCP lease in practice;
// 0xffffffff, "infinite", is treated as unknown).
const maxLeaseDuration = 366 * 24 * time.Hour

// Parse reads one lease file of the given kind. name is the file's path
// (formats that keep the interface or ifindex in the file name need it) and
// modTime its modification time (the lease start for formats that carry no
// times of their own). It returns one lease per interface the file
// describes, or an error; never both. Parse is tolerant: unknown keys,
// options and statements are skipped, and a truncated trailing block is
// ignored.
//
// Every lease Parse returns has times a DHCP client could act on: either
// Length, T1 and T2 are all 0 (length unknown or infinite), or 0 < T1 <=
// T2 <= Length. A T1 or T2 that is missing or breaks that order is
// replaced as RFC 2131 says a client does (see [Lease]); a lease is never
// rejected for its times alone.
func Parse(kind Kind, name string, data []byte, modTime time.Time) ([]Lease, error) {
	var (
		ls  []Lease
		err error
	)
	switch kind {
	case Dhclient:
		ls, err = parseDhclient(data)
	case Dhcpcd:
		ls, err = parseDhcpcd(data, modTime)
		if len(ls) == 1 {
			// IFACE.lease or IFACE-SSID.lease; the tracker also matches
			// by address, which is what settles names containing '-'.
			ls[0].Iface = strings.TrimSuffix(filepath.Base(name), ".lease")
		}
	case DhcpcdDump:
		ls, err = parseDhcpcdDump(data, modTime)
	case Networkd:
		ls, err = parseNetworkd(data, modTime)
		if len(ls) == 1 {
			if i, aerr := strconv.Atoi(filepath.Base(name)); aerr == nil && i > 0 {
				ls[0].Index = i
			}
		}
	case NetworkManager:
		ls, err = parseNetworkManager(data, modTime)
		if len(ls) == 1 {
			ls[0].Iface = nmIface(filepath.Base(name))
		}
	default:
		return nil, fmt.Errorf("dhcpwatch: parse %s: unknown kind %d", name, kind)
	}
	if err == nil && len(ls) == 0 {
		err = errNoLease
	}
	if err != nil {
		return nil, fmt.Errorf("dhcpwatch: parse %s file %s: %w", kind, name, err)
	}
	for i := range ls {
		ls[i].Source = name
		ls[i].Kind = kind
		ls[i].normalizeTimes()
	}
	return ls, nil
}

// normalizeTimes makes l's times usable: whole seconds (DHCP's unit), and
// either all zero or 0 < T1 <= T2 <= Length. A T2 that is missing or past
// the lease's end becomes RFC 2131's default of 87.5% of the lease (section
// 4.4.5), as dhcpcd and systemd-networkd do. A T1 that is missing or past
// T2 becomes the default of 50% when that is before T2; when the server's
// own, valid T2 comes before half the lease, T1 keeps RFC 2131's ratio of
// T1 to T2 instead (4/7 of T2), so that the order holds without discarding
// the server's T2. Without a length (none in the file, or DHCP's
// "infinite") a client never renews, so T1 and T2 are 0 too.
func (l *Lease) normalizeTimes() {
	l.Length = l.Length.Truncate(time.Second)
	l.T1 = l.T1.Truncate(time.Second)
	l.T2 = l.T2.Truncate(time.Second)
	if l.Length <= 0 {
		l.Length, l.T1, l.T2 = 0, 0, 0
		return
	}
	if l.T2 <= 0 || l.T2 > l.Length {
		l.T2 = l.Length * 7 / 8
	}
	if l.T1 <= 0 || l.T1 > l.T2 {
		l.T1 = l.Length / 2
		if l.T1 > l.T2 {
			l.T1 = l.T2 * 4 / 7
		}
	}
}

// nmIface extracts IFACE from internal-UUID-IFACE.lease. A UUID has five
// dash-separated groups, so the interface is what follows the fifth dash
// after the prefix.
func nmIface(base string) string {
	s := strings.TrimSuffix(base, ".lease")
	for _, p := range []string{"internal-", "dhclient-", "dhclient6-"} {
		s = strings.TrimPrefix(s, p)
	}
	parts := strings.SplitN(s, "-", 6)
	if len(parts) == 6 {
		return parts[5]
	}
	return ""
}

// secs converts a count of seconds read from a file into a duration, or 0
// when it is out of range (including DHCP's 0xffffffff "infinity").
func secs(n uint64) time.Duration {
	d := time.Duration(n) * time.Second
	if n == 0 || d > maxLeaseDuration || d < 0 {
		return 0
	}
	return d
}

// prefixFrom combines an address and a dotted netmask into a prefix; an
// unusable mask gives a host prefix.
func prefixFrom(a netip.Addr, mask netip.Addr) netip.Prefix {
	bits := a.BitLen()
	if mask.Is4() && a.Is4() {
		m := binary.BigEndian.Uint32(mask.AsSlice())
		ones := 0
		for m&0x80000000 != 0 {
			ones++
			m <<= 1
		}
		if m == 0 { // contiguous
			bits = ones
		}
	}
	p, err := a.Prefix(bits)
	if err != nil {
		return netip.PrefixFrom(a, a.BitLen())
	}
	return netip.PrefixFrom(a, p.Bits())
}

// ---- ISC dhclient ---------------------------------------------------------

// dhclientBlock accumulates one lease { } block.
type dhclientBlock struct {
	l                     Lease
	mask                  netip.Addr
	renew, rebind, expire time.Time
	hasAddr, hasInterface bool
}

// parseDhclient reads dhclient.leases(5). The file is an append-only log;
// the last complete block for each interface wins. lease6 blocks and
// anything else at the top level are skipped.
func parseDhclient(data []byte) ([]Lease, error) {
	toks := dhclientTokens(data)
	var (
		order []string
		last  = map[string]Lease{}
	)
	for i := 0; i < len(toks); i++ {
		if toks[i] != "lease" || i+1 >= len(toks) || toks[i+1] != "{" {
			continue
		}
		// Collect the block's statements up to its matching brace; nested
		// blocks are skipped with their depth.
		j := i + 2
		depth := 1
		var stmts [][]string
		var cur []string
		for ; j < len(toks) && depth > 0; j++ {
			switch t := toks[j]; t {
			case "{":
				depth++
				cur = nil
			case "}":
				depth--
				cur = nil
			case ";":
				if depth == 1 && len(cur) > 0 {
					stmts = append(stmts, cur)
				}
				cur = nil
			default:
				cur = append(cur, t)
			}
		}
		i = j - 1
		if depth != 0 {
			break // truncated last block: an append in progress
		}
		b := dhclientBlock{}
		for _, s := range stmts {
			b.statement(s)
		}
		l, ok := b.lease()
		if !ok {
			continue
		}
		if _, seen := last[l.Iface]; !seen {
			order = append(order, l.Iface)
		}
		last[l.Iface] = l
	}
	out := make([]Lease, 0, len(order))
	for _, n := range order {
		out = append(out, last[n])
	}
	return out, nil
}

// dhclientTokens splits the file into words, quoted strings (unquoted),
// and the punctuation "{", "}" and ";". Comments run from '#' to the end of
// the line.
func dhclientTokens(data []byte) []string {
	var toks []string
	for i := 0; i < len(data); {
		c := data[i]
		switch {
		case c == '#':
			for i < len(data) && data[i] != '\n' {
				i++
			}
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '{' || c == '}' || c == ';':
			toks = append(toks, string(c))
			i++
		case c == '"':
			j := i + 1
			for j < len(data) && data[j] != '"' {
				if data[j] == '\\' {
					j++
				}
				j++
			}
			toks = append(toks, string(data[i+1:min(j, len(data))]))
			i = j + 1
		default:
			j := i
			for j < len(data) && !bytes.ContainsRune([]byte(" \t\r\n{};\"#"), rune(data[j])) {
				j++
			}
			// A comma ends a list item but belongs to no token we need.
			toks = append(toks, strings.TrimSuffix(string(data[i:j]), ","))
			i = j
		}
	}
	return toks
}

func (b *dhclientBlock) statement(s []string) {
	switch s[0] {
	case "interface":
		if len(s) > 1 {
			b.l.Iface, b.hasInterface = s[1], true
		}
	case "fixed-address":
		if len(s) > 1 {
			if a, err := netip.ParseAddr(s[1]); err == nil && a.Is4() {
				b.l.Addr, b.hasAddr = netip.PrefixFrom(a, 32), true
			}
		}
	case "renew", "rebind", "expire":
		t := dhclientTime(s[1:])
		switch s[0] {
		case "renew":
			b.renew = t
		case "rebind":
			b.rebind = t
		default:
			b.expire = t
		}
	case "option":
		if len(s) < 3 {
			return
		}
		v := s[2]
		switch s[1] {
		case "subnet-mask":
			b.mask, _ = netip.ParseAddr(v)
		case "routers":
			b.l.Router, _ = netip.ParseAddr(v)
		case "dhcp-server-identifier":
			b.l.Server, _ = netip.ParseAddr(v)
		case "dhcp-lease-time":
			n, _ := strconv.ParseUint(v, 10, 32)
			b.l.Length = secs(n)
		case "dhcp-renewal-time":
			n, _ := strconv.ParseUint(v, 10, 32)
			b.l.T1 = secs(n)
		case "dhcp-rebinding-time":
			n, _ := strconv.ParseUint(v, 10, 32)
			b.l.T2 = secs(n)
		}
	}
}

// dhclientTime reads "W YYYY/MM/DD HH:MM:SS" (UTC), "epoch N" or "never".
func dhclientTime(s []string) time.Time {
	if len(s) >= 2 && s[0] == "epoch" {
		n, err := strconv.ParseInt(s[1], 10, 64)
		if err != nil || n <= 0 || n > 1<<40 {
			return time.Time{}
		}
		return time.Unix(n, 0).UTC()
	}
	if len(s) >= 3 {
		t, err := time.Parse("2006/01/02 15:04:05", s[1]+" "+s[2])
		if err == nil {
			return t
		}
	}
	return time.Time{}
}

// lease completes a block: the dates dhclient wrote are what it acts on,
// so they define Start, T1 and T2 when present.
func (b *dhclientBlock) lease() (Lease, bool) {
	if !b.hasAddr || !b.hasInterface {
		return Lease{}, false
	}
	l := b.l
	if b.mask.IsValid() {
		l.Addr = prefixFrom(l.Addr.Addr(), b.mask)
	}
	if !b.expire.IsZero() && l.Length > 0 {
		l.Start = b.expire.Add(-l.Length)
		if !b.renew.IsZero() {
			if d := b.renew.Sub(l.Start); d > 0 && d <= l.Length {
				l.T1 = d
			}
		}
		if !b.rebind.IsZero() {
			if d := b.rebind.Sub(l.Start); d > 0 && d <= l.Length {
				l.T2 = d
			}
		}
	}
	return l, true
}

// ---- dhcpcd ---------------------------------------------------------------

// DHCP options dhcpwatch reads (RFC 2132).
const (
	optPad      = 0
	optMask     = 1
	optRouter   = 3
	optLease    = 51
	optServerID = 54
	optT1       = 58
	optT2       = 59
	optEnd      = 255
)

// parseDhcpcd reads the BOOTP/DHCP message dhcpcd saves as its lease: the
// offered address in yiaddr, the rest in options after the magic cookie.
func parseDhcpcd(data []byte, modTime time.Time) ([]Lease, error) {
	const (
		yiaddrOff = 16
		cookieOff = 236
	)
	if len(data) < cookieOff+4 {
		return nil, fmt.Errorf("message of %d bytes, want at least %d", len(data), cookieOff+4)
	}
	if data[0] != 2 { // BOOTREPLY
		return nil, fmt.Errorf("op %d, want 2 (BOOTREPLY)", data[0])
	}
	if !bytes.Equal(data[cookieOff:cookieOff+4], []byte{99, 130, 83, 99}) {
		return nil, fmt.Errorf("magic cookie %x, want 63825363", data[cookieOff:cookieOff+4])
	}
	a := netip.AddrFrom4([4]byte(data[yiaddrOff : yiaddrOff+4]))
	if a.IsUnspecified() {
		return nil, errors.New("yiaddr is 0.0.0.0")
	}
	l := Lease{Addr: netip.PrefixFrom(a, 32), Start: modTime}
	var mask netip.Addr
	opts := data[cookieOff+4:]
	for len(opts) > 0 {
		code := opts[0]
		if code == optPad {
			opts = opts[1:]
			continue
		}
		if code == optEnd || len(opts) < 2 || len(opts) < 2+int(opts[1]) {
			break // the end, or a truncated option: keep what was read
		}
		v := opts[2 : 2+int(opts[1])]
		opts = opts[2+int(opts[1]):]
		switch code {
		case optMask:
			if len(v) == 4 {
				mask = netip.AddrFrom4([4]byte(v))
			}
		case optRouter:
			if len(v) >= 4 {
				l.Router = netip.AddrFrom4([4]byte(v[:4]))
			}
		case optServerID:
			if len(v) == 4 {
				l.Server = netip.AddrFrom4([4]byte(v))
			}
		case optLease, optT1, optT2:
			if len(v) != 4 {
				continue
			}
			d := secs(uint64(binary.BigEndian.Uint32(v)))
			switch code {
			case optLease:
				l.Length = d
			case optT1:
				l.T1 = d
			default:
				l.T2 = d
			}
		}
	}
	if mask.IsValid() {
		l.Addr = prefixFrom(a, mask)
	}
	return []Lease{l}, nil
}

// parseDhcpcdDump reads `dhcpcd -U IFACE`: key=value lines whose values
// may be single-quoted.
func parseDhcpcdDump(data []byte, modTime time.Time) ([]Lease, error) {
	kv := keyValues(data)
	a, err := netip.ParseAddr(kv["ip_address"])
	if err != nil || !a.Is4() {
		return nil, fmt.Errorf("ip_address %q: want an IPv4 address", kv["ip_address"])
	}
	l := Lease{Iface: kv["interface"], Addr: netip.PrefixFrom(a, 32), Start: modTime}
	if n, err := strconv.Atoi(kv["subnet_cidr"]); err == nil && n >= 0 && n <= 32 {
		l.Addr = netip.PrefixFrom(a, n)
	} else if m, err := netip.ParseAddr(kv["subnet_mask"]); err == nil {
		l.Addr = prefixFrom(a, m)
	}
	l.Router, _ = netip.ParseAddr(firstField(kv["routers"]))
	l.Server, _ = netip.ParseAddr(kv["dhcp_server_identifier"])
	l.Length = secsString(kv["dhcp_lease_time"])
	l.T1 = secsString(kv["dhcp_renewal_time"])
	l.T2 = secsString(kv["dhcp_rebinding_time"])
	return []Lease{l}, nil
}

func secsString(s string) time.Duration {
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0
	}
	return secs(n)
}

func firstField(s string) string {
	if f := strings.Fields(s); len(f) > 0 {
		return f[0]
	}
	return ""
}

// keyValues reads KEY=VALUE lines, skipping comments and blank lines and
// removing one level of single or double quotes. The first occurrence of a
// key wins.
func keyValues(data []byte) map[string]string {
	kv := map[string]string{}
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		v = strings.TrimSpace(v)
		if len(v) >= 2 && (v[0] == '\'' || v[0] == '"') && v[len(v)-1] == v[0] {
			v = v[1 : len(v)-1]
		}
		if _, dup := kv[k]; !dup {
			kv[k] = v
		}
	}
	return kv
}

// ---- systemd-networkd -----------------------------------------------------

// parseNetworkd reads a networkd lease file. The file says "Do not parse"
// and its format changes between versions, so every field is optional
// except ADDRESS, and times are accepted as integer seconds or as
// systemd timespans.
func parseNetworkd(data []byte, modTime time.Time) ([]Lease, error) {
	kv := keyValues(data)
	a, err := netip.ParseAddr(kv["ADDRESS"])
	if err != nil || !a.Is4() {
		return nil, fmt.Errorf("ADDRESS %q: want an IPv4 address", kv["ADDRESS"])
	}
	l := Lease{Addr: netip.PrefixFrom(a, 32), Start: modTime}
	if m, err := netip.ParseAddr(kv["NETMASK"]); err == nil {
		l.Addr = prefixFrom(a, m)
	}
	l.Router, _ = netip.ParseAddr(firstField(kv["ROUTER"]))
	l.Server, _ = netip.ParseAddr(kv["SERVER_ADDRESS"])
	l.Length = timespan(kv["LIFETIME"])
	l.T1 = timespan(kv["T1"])
	l.T2 = timespan(kv["T2"])
	return []Lease{l}, nil
}

// timespan reads a systemd timespan ("1580", "5min", "8min 45s", "1h
// 30min", "infinity") and returns 0 for anything it cannot read or that is
// out of range.
func timespan(s string) time.Duration {
	s = strings.TrimSpace(s)
	if s == "" || s == "infinity" {
		return 0
	}
	if n, err := strconv.ParseUint(s, 10, 64); err == nil {
		return secs(n)
	}
	var total time.Duration
	for s != "" {
		s = strings.TrimLeft(s, " ")
		i := 0
		for i < len(s) && (s[i] >= '0' && s[i] <= '9' || s[i] == '.') {
			i++
		}
		if i == 0 {
			return 0
		}
		n, err := strconv.ParseFloat(s[:i], 64)
		if err != nil {
			return 0
		}
		s = s[i:]
		j := 0
		for j < len(s) && s[j] >= 'a' && s[j] <= 'z' {
			j++
		}
		unit, ok := timespanUnit(s[:j])
		if !ok {
			return 0
		}
		s = s[j:]
		v := n * float64(unit)
		if v > float64(maxLeaseDuration) {
			return 0
		}
		total += time.Duration(v)
		if total > maxLeaseDuration {
			return 0
		}
	}
	return total
}

// timespanUnit maps the units systemd's format_timespan writes and
// parse_sec accepts to durations; a bare number is seconds.
func timespanUnit(u string) (time.Duration, bool) {
	switch u {
	case "", "s", "sec", "second", "seconds":
		return time.Second, true
	case "ms", "msec":
		return time.Millisecond, true
	case "us", "usec":
		return time.Microsecond, true
	case "m", "min", "minute", "minutes":
		return time.Minute, true
	case "h", "hr", "hour", "hours":
		return time.Hour, true
	case "d", "day", "days":
		return 24 * time.Hour, true
	case "w", "week", "weeks":
		return 7 * 24 * time.Hour, true
	}
	return 0, false
}

// ---- NetworkManager -------------------------------------------------------

// parseNetworkManager reads the internal client's lease file, which keeps
// only the address (NetworkManager's nm-dhcp-nettools.c writes ADDRESS= and
// nothing else); its modification time is when it was written.
func parseNetworkManager(data []byte, modTime time.Time) ([]Lease, error) {
	kv := keyValues(data)
	a, err := netip.ParseAddr(kv["ADDRESS"])
	if err != nil || !a.Is4() {
		return nil, fmt.Errorf("ADDRESS %q: want an IPv4 address", kv["ADDRESS"])
	}
	return []Lease{{Addr: netip.PrefixFrom(a, 32), Start: modTime}}, nil
}
