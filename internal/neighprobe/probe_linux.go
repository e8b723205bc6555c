package neighprobe

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/seed-a56be422/netmon/internal/nsthread"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// prober holds the two sockets; mu orders probes against close.
type prober struct {
	mu  sync.Mutex
	arp int // AF_PACKET, SOCK_DGRAM, protocol 0: sends, receives nothing; -1 when closed
	nd  int // raw ICMPv6, every type filtered out; -1 when closed or without IPv6
}

// icmp6Filter is ICMPV6_FILTER (include/uapi/linux/icmpv6.h), the option
// x/sys/unix does not name.
const icmp6Filter = 1

func open(ns netns.NsHandle) (*prober, error) {
	p := &prober{arp: -1, nd: -1}
	err := nsthread.Do(ns, "neighprobe: network namespace", func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			return sockErr("socket(AF_PACKET)", err)
		}
		p.arp = fd
		fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.IPPROTO_ICMPV6)
		switch {
		case errors.Is(err, unix.EAFNOSUPPORT):
			return nil // a kernel without IPv6: ARP alone
		case err != nil:
			return sockErr("socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)", err)
		}
		p.nd = fd
		// The socket would otherwise get a copy of every ICMPv6
		// packet the namespace receives.
		var block unix.ICMPv6Filter
		for i := range block.Data {
			block.Data[i] = ^uint32(0)
		}
		if err := unix.SetsockoptICMPv6Filter(fd, unix.IPPROTO_ICMPV6, icmp6Filter, &block); err != nil {
			return os.NewSyscallError("setsockopt(ICMPV6_FILTER)", err)
		}
		// RFC 4861 7.1.1: a receiver drops a solicitation whose hop
		// limit is not 255. Our own copy (multicast loop) is not wanted.
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_HOPS, 255); err != nil {
			return os.NewSyscallError("setsockopt(IPV6_MULTICAST_HOPS)", err)
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_LOOP, 0); err != nil {
			return os.NewSyscallError("setsockopt(IPV6_MULTICAST_LOOP)", err)
		}
		return nil
	}, nil)
	if err != nil {
		_ = p.close()
		return nil, err
	}
	return p, nil
}

// sockErr wraps a failed socket call; a refusal matches ErrUnavailable.
func sockErr(op string, err error) error {
	serr := os.NewSyscallError(op, err)
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return fmt.Errorf("%w: CAP_NET_RAW needed: %w", ErrUnavailable, serr)
	}
	return fmt.Errorf("neighprobe: %w", serr)
}

func (p *prober) probe(r Request) error {
	gw := r.Gateway.Unmap()
	p.mu.Lock()
	defer p.mu.Unlock()
	var err error
	switch {
	case gw.Is4():
		err = p.arpRequest(r.Index, r.MAC, r.Src.Unmap(), gw)
	case gw.Is6():
		err = p.solicit(r.Index, r.MAC, r.Src, gw)
	default:
		err = errors.New("not an IP address")
	}
	if err != nil {
		return fmt.Errorf("neighprobe: probe %v on ifindex %d: %w", r.Gateway, r.Index, err)
	}
	return nil
}

// arpRequest broadcasts "who has gw, tell src" (RFC 826) on the link; the
// kernel adds the Ethernet header from the link-layer address given.
func (p *prober) arpRequest(index int, mac []byte, src, gw netip.Addr) error {
	if p.arp < 0 {
		return os.ErrClosed
	}
	if len(mac) != 6 {
		return fmt.Errorf("no Ethernet address on the interface (%d bytes)", len(mac))
	}
	if !src.Is4() {
		return errors.New("no IPv4 address to ask from")
	}
	var b [28]byte
	binary.BigEndian.PutUint16(b[0:], unix.ARPHRD_ETHER)
	binary.BigEndian.PutUint16(b[2:], unix.ETH_P_IP)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], 1) // ARPOP_REQUEST
	s, g := src.As4(), gw.As4()
	copy(b[8:14], mac)
	copy(b[14:18], s[:])
	copy(b[24:28], g[:]) // the target hardware address stays zero
	sa := &unix.SockaddrLinklayer{
		Protocol: htons(unix.ETH_P_ARP),
		Ifindex:  index,
		Halen:    6,
		Addr:     [8]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
	}
	if err := unix.Sendto(p.arp, b[:], unix.MSG_DONTWAIT, sa); err != nil {
		return os.NewSyscallError("sendto", err)
	}
	return nil
}

// solicit sends a Neighbor Solicitation for gw (RFC 4861 4.3) to its
// solicited-node multicast address, with the source link-layer address
// option when the interface has one. The kernel computes the checksum
// (raw ICMPv6 sockets always do) and, without src, picks the source.
func (p *prober) solicit(index int, mac []byte, src, gw netip.Addr) error {
	if p.nd < 0 {
		return errors.Join(errors.New("no IPv6 socket"), os.ErrClosed)
	}
	b := make([]byte, 24, 32)
	b[0] = 135 // ND_NEIGHBOR_SOLICIT; code, checksum and reserved stay 0
	g := gw.As16()
	copy(b[8:24], g[:])
	if len(mac) == 6 {
		b = append(b, 1, 1) // ND_OPT_SOURCE_LINKADDR, 8 bytes
		b = append(b, mac...)
	}
	dst := [16]byte{0: 0xff, 1: 0x02, 11: 0x01, 12: 0xff, 13: g[13], 14: g[14], 15: g[15]}
	info := unix.Inet6Pktinfo{Ifindex: uint32(index)}
	if src.Is6() && !src.Is4In6() {
		info.Addr = src.As16()
	}
	sa := &unix.SockaddrInet6{Addr: dst, ZoneId: uint32(index)}
	if _, err := unix.SendmsgN(p.nd, b, unix.PktInfo6(&info), sa, unix.MSG_DONTWAIT); err != nil {
		return os.NewSyscallError("sendmsg", err)
	}
	return nil
}

func (p *prober) close() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	var errs []error
	for _, fd := range []*int{&p.arp, &p.nd} {
		if *fd >= 0 {
			errs = append(errs, unix.Close(*fd))
			*fd = -1
		}
	}
	return errors.Join(errs...)
}

// htons puts v in network byte order, as sockaddr_ll's protocol wants it.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
