package neighprobe

import (
	"errors"
	"net"
	"net/netip"

	"github.com/vishvananda/netns"
)

// ErrUnavailable is matched (errors.Is) by [Open]'s error when the raw
// sockets cannot be had: without CAP_NET_RAW, or on a system other than
// Linux. The error also wraps the errno where there is one.
var ErrUnavailable = errors.New("neighprobe: gateway probes unavailable")

// Request names one gateway to resolve, and what to ask with.
type Request struct {
	// Index is the ifindex of the interface the gateway is on.
	Index int
	// MAC is that interface's link-layer address (6 bytes, Ethernet and
	// Wi-Fi): the ARP sender and the NS source link-layer option.
	MAC net.HardwareAddr
	// Src is the interface's address to ask from. IPv4 needs one (an ARP
	// request names its sender; the gateway answers it). For IPv6 it may
	// be left zero: the kernel then chooses, a link-local address for the
	// link-scope destination.
	Src netip.Addr
	// Gateway is the address to resolve, IPv4 or IPv6.
	Gateway netip.Addr
}

// Prober sends the probes from sockets opened in one network namespace.
// Its methods may be called from any goroutine.
type Prober struct {
	p *prober // the OS's implementation
}

// Open opens the sockets in network namespace ns (0: the caller's). The
// error matches [ErrUnavailable] when raw sockets are not permitted.
func Open(ns netns.NsHandle) (*Prober, error) {
	p, err := open(ns)
	if err != nil {
		return nil, err
	}
	return &Prober{p: p}, nil
}

// Probe sends one request for r.Gateway: an ARP request or a Neighbor
// Solicitation, as its family asks. It does not wait for the answer, which
// the kernel takes into the gateway's neighbour entry (watch it with
// linkwatch). It never blocks: a full socket buffer is an error
// (EAGAIN).
func (p *Prober) Probe(r Request) error { return p.p.probe(r) }

// Close closes the sockets. Probes after Close return an error.
func (p *Prober) Close() error { return p.p.close() }
