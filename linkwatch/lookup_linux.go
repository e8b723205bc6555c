package linkwatch

import (
	"fmt"
	"net/netip"
	"sync"

	"golang.org/x/sys/unix"
)

// Lookup asks the kernel which path a packet to dst carrying the packet
// mark mark (0: none) would take, as connect() and sendto() do: policy
// rules, the mark, and routes flagged linkdown are honoured
// (RTM_GETROUTE with RTM_F_LOOKUP_TABLE, the request `ip route get`
// makes). No packet is sent. A destination the kernel has no route for is
// not an error: the returned Path says why in Err. The error is for a
// lookup that could not be asked (a closed or failing socket).
//
// Lookup may be called from any goroutine, before or during
// [Watcher.Run]; while Run runs it reuses one socket in the watched
// namespace, closed when Run returns. Each call costs one request and one
// reply on that socket (about 10 µs).
func (w *Watcher) Lookup(dst netip.Addr, mark uint32) (Path, error) {
	p := Path{Dst: dst, Mark: mark}
	if !dst.IsValid() {
		return p, fmt.Errorf("linkwatch: Lookup of an invalid address, want an IPv4 or IPv6 address")
	}
	dst = dst.Unmap()
	p.Dst = dst
	w.lk.Lock()
	defer w.lk.Unlock()
	s := w.lk.s
	if s == nil {
		var err error
		if s, err = openSocket(w.cfg.NetNS, 0, 0); err != nil {
			return p, err
		}
		if w.lk.keep {
			w.lk.s = s
		} else {
			defer s.close()
		}
	}
	req := lookupRequest(s.seq.Add(1), dst, mark)
	err := s.exchange(req, func(h header, data []byte) (bool, error) {
		// One message answers: the route, or an error.
		return true, parseLookup(h, data, &p)
	})
	if err != nil {
		return p, err
	}
	return p, nil
}

// keepLookupSocket makes Lookup keep its socket open for reuse (while Run
// runs) or closes it.
func (w *Watcher) keepLookupSocket(keep bool) {
	w.lk.Lock()
	defer w.lk.Unlock()
	w.lk.keep = keep
	if !keep && w.lk.s != nil {
		w.lk.s.close()
		w.lk.s = nil
	}
}

// lookupSock is the socket Lookup reuses while Run runs.
type lookupSock struct {
	sync.Mutex
	s    *sock
	keep bool
}

// lookupRequest encodes RTM_GETROUTE for one destination.
func lookupRequest(seq uint32, dst netip.Addr, mark uint32) []byte {
	family, n := uint8(unix.AF_INET), 4
	if dst.Is6() {
		family, n = unix.AF_INET6, 16
	}
	l := unix.NLMSG_HDRLEN + unix.SizeofRtMsg + unix.SizeofRtAttr + n
	if mark != 0 {
		l += unix.SizeofRtAttr + 4
	}
	b := make([]byte, l)
	ne.PutUint32(b, uint32(l))
	ne.PutUint16(b[4:], unix.RTM_GETROUTE)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST)
	ne.PutUint32(b[8:], seq)
	r := b[unix.NLMSG_HDRLEN:]
	r[0] = family
	r[1] = byte(8 * n) // rtm_dst_len: a host
	ne.PutUint32(r[8:], unix.RTM_F_LOOKUP_TABLE)
	a := r[unix.SizeofRtMsg:]
	ne.PutUint16(a, uint16(unix.SizeofRtAttr+n))
	ne.PutUint16(a[2:], unix.RTA_DST)
	copy(a[unix.SizeofRtAttr:], dst.AsSlice())
	if mark != 0 {
		a = a[unix.SizeofRtAttr+n:]
		ne.PutUint16(a, unix.SizeofRtAttr+4)
		ne.PutUint16(a[2:], unix.RTA_MARK)
		ne.PutUint32(a[unix.SizeofRtAttr:], mark)
	}
	return b
}

// noPathErrno is the errno a send gets through a route of a type that does
// not carry packets (fib_props in net/ipv4/fib_semantics.c).
var noPathErrno = map[uint8]unix.Errno{
	unix.RTN_UNREACHABLE: unix.EHOSTUNREACH,
	unix.RTN_PROHIBIT:    unix.EACCES,
	unix.RTN_BLACKHOLE:   unix.EINVAL,
	unix.RTN_THROW:       unix.EAGAIN,
}

// parseLookup decodes the kernel's answer to a lookup into p: an
// RTM_NEWROUTE describing the path, or an NLMSG_ERROR whose errno says
// why there is none.
func parseLookup(h header, b []byte, p *Path) error {
	switch h.typ {
	case unix.NLMSG_ERROR:
		if len(b) < 4 {
			return &parseError{what: "nlmsgerr", got: len(b), want: 4}
		}
		if e := -int32(ne.Uint32(b)); e != 0 {
			p.Err = fmt.Errorf("%w: %s: %w", ErrNoPath, p.Dst, unix.Errno(e))
		}
		return nil
	case unix.RTM_NEWROUTE:
	default:
		return &parseError{what: fmt.Sprintf("reply type %d to RTM_GETROUTE", h.typ), got: int(h.typ), want: unix.RTM_NEWROUTE}
	}
	if len(b) < unix.SizeofRtMsg {
		return &parseError{what: "rtmsg", got: len(b), want: unix.SizeofRtMsg}
	}
	family, typ := b[0], b[7]
	p.Table = int(b[4])
	err := attrs(b[unix.SizeofRtMsg:], "rtmsg", func(t uint16, v []byte) (err error) {
		var n uint32
		switch t {
		case unix.RTA_TABLE:
			n, err = u32("RTA_TABLE", v)
			p.Table = int(n)
		case unix.RTA_OIF:
			n, err = u32("RTA_OIF", v)
			p.Index = int(int32(n))
		case unix.RTA_GATEWAY:
			p.Gateway, err = ipAttr("RTA_GATEWAY", family, v)
		case rtaVia:
			p.Gateway, err = viaAttr(v)
		case unix.RTA_PREFSRC:
			p.Src, err = ipAttr("RTA_PREFSRC", family, v)
		}
		return err
	})
	if err != nil {
		return err
	}
	switch {
	case typ == unix.RTN_UNICAST && p.Index != 0:
	case typ == unix.RTN_UNICAST:
		p.Err = fmt.Errorf("%w: %s: the route names no output interface", ErrNoPath, p.Dst)
	default:
		e, ok := noPathErrno[typ]
		if !ok {
			e = unix.ENETUNREACH
		}
		// IPv6 answers a destination without a route with its null
		// entry (type unreachable, device lo) rather than an error.
		p.Err = fmt.Errorf("%w: %s: route type %d: %w", ErrNoPath, p.Dst, typ, e)
	}
	if p.Err != nil {
		p.Index, p.Gateway, p.Src = 0, netip.Addr{}, netip.Addr{}
	}
	return nil
}
