//go:build linux

package wifiwatchtest

import (
	"encoding/binary"
	"fmt"
	"iter"
	"net"
	"os"
	"slices"
	"sync"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/genetlink/genltest"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// nl80211Family is the nl80211 family the fake announces. IDs are dynamic
// in the kernel; these are typical values.
func nl80211Family() genetlink.Family {
	return genetlink.Family{
		ID:      0x1c,
		Version: 1,
		Name:    unix.NL80211_GENL_NAME,
		Groups: []genetlink.MulticastGroup{
			{ID: 6, Name: unix.NL80211_MULTICAST_GROUP_CONFIG},
			{ID: 7, Name: unix.NL80211_MULTICAST_GROUP_SCAN},
			{ID: 8, Name: unix.NL80211_MULTICAST_GROUP_REG},
			{ID: 9, Name: unix.NL80211_MULTICAST_GROUP_MLME},
		},
	}
}

// Interface is the state of one fake wireless interface. Zero frequency and
// station fields are omitted from the kernel's answers, as a driver that
// does not measure them would omit them.
type Interface struct {
	Index int              // ifindex (NL80211_ATTR_IFINDEX)
	Name  string           // interface name (NL80211_ATTR_IFNAME)
	MAC   net.HardwareAddr // own address; SetInterface fills in 02:00:00:00:00:<Index> when nil
	Type  uint32           // NL80211_IFTYPE_*; SetInterface turns 0 into station

	// Association. A nil BSSID means not associated: GET_STATION and
	// GET_SCAN then answer nothing for the interface.
	SSID         string           // NL80211_ATTR_SSID and the scan entry's SSID element
	BSSID        net.HardwareAddr // the access point (NL80211_ATTR_MAC of GET_STATION)
	FreqMHz      int              // NL80211_ATTR_WIPHY_FREQ and NL80211_BSS_FREQUENCY
	SignalDBm    int              // NL80211_STA_INFO_SIGNAL
	SignalAvgDBm int              // NL80211_STA_INFO_SIGNAL_AVG
	// TxBitrate and RxBitrate are in 100 kbit/s, sent as
	// NL80211_RATE_INFO_BITRATE32 (and BITRATE while they fit in 16 bits)
	// in NL80211_STA_INFO_TX_BITRATE and RX_BITRATE.
	TxBitrate    uint32
	RxBitrate    uint32
	ConnectedSec uint32 // NL80211_STA_INFO_CONNECTED_TIME, seconds
	BeaconLoss   uint32 // NL80211_STA_INFO_BEACON_LOSS
	// HideSSID omits NL80211_ATTR_SSID from GET_INTERFACE, as kernels
	// before the attribute did; the SSID is then only in GET_SCAN.
	HideSSID bool

	// Wiphy is the radio (NL80211_ATTR_WIPHY). The interface dump lists
	// radios in turn and, within a radio, its wdevs in creation order, as
	// nl80211_dump_interface walks each rdev's wdev_list.
	Wiphy uint32
	// StationErr, when not 0, is the errno GET_STATION answers for this
	// interface: EOPNOTSUPP is what nl80211_dump_station returns for a
	// driver without a dump_station operation (some fullmac drivers).
	StationErr unix.Errno
	// TDLSPeers are the stations of direct links to other clients of the
	// BSS. GET_STATION lists them with the AP, flagged
	// NL80211_STA_FLAG_TDLS_PEER as mac80211 does (sta_set_sinfo).
	TDLSPeers []net.HardwareAddr
	// TDLSPeersFirst lists the peers ahead of the AP. mac80211 lists
	// stations in insertion order (sta_info_insert_finish appends to
	// sta_list), so the AP comes first there; nl80211 does not define the
	// order, and fullmac drivers dump firmware tables, so a watcher must
	// not depend on it.
	TDLSPeersFirst bool

	seq int // creation order, set by SetInterface
}

// Wdev is a wireless device without a network interface: a P2P-Device
// (wpa_supplicant creates one on most Intel cards when P2P is enabled) or
// a NAN device. The kernel reports it with NL80211_ATTR_WDEV and no
// NL80211_ATTR_IFINDEX or IFNAME (nl80211_send_iface: "if (dev && ...)").
type Wdev struct {
	ID    uint64           // NL80211_ATTR_WDEV: wiphy index << 32 | a counter
	Type  uint32           // NL80211_IFTYPE_P2P_DEVICE (0 means that) or NL80211_IFTYPE_NAN
	Wiphy uint32           // NL80211_ATTR_WIPHY
	MAC   net.HardwareAddr // nil: 02:00:00:00:01:<ID>

	seq int
}

// CQMRequest is one NL80211_CMD_SET_CQM the fake received.
type CQMRequest struct {
	Index        int    // NL80211_ATTR_IFINDEX of the request, -1 if absent
	ThresholdDBm int32  // NL80211_ATTR_CQM_RSSI_THOLD
	HysteresisDB uint32 // NL80211_ATTR_CQM_RSSI_HYST
}

// Fake is a fake nl80211. Its methods are safe for concurrent use.
type Fake struct {
	family genetlink.Family // never modified

	mu         sync.Mutex // guards the fields below
	missing    bool
	ifaces     map[int]*Interface
	wdevs      map[uint64]*Wdev
	seq        int // creation counter of interfaces and wdevs
	socks      map[*socket]bool
	requests   map[uint8]int
	cqm        []CQMRequest
	stationErr unix.Errno
	joinErr    unix.Errno // JoinGroup fails with it while joinFails > 0
	joinFails  int
	joins      int // successful JoinGroup calls
	dials      int
	ifaceErr   unix.Errno // GET_INTERFACE fails with it when not 0
}

// New returns a fake nl80211 without interfaces.
func New() *Fake {
	return &Fake{family: nl80211Family(), ifaces: map[int]*Interface{}, wdevs: map[uint64]*Wdev{},
		socks: map[*socket]bool{}, requests: map[uint8]int{}}
}

// NewWithoutNL80211 returns a fake kernel that has generic netlink but no
// nl80211 family (like a kernel built without cfg80211).
func NewWithoutNL80211() *Fake {
	f := New()
	f.missing = true
	return f
}

// Dial returns a new connection to the fake. Pass it to
// wifiwatch.NewWithDial.
func (f *Fake) Dial() (*genetlink.Conn, error) {
	s := &socket{f: f, groups: map[uint32]bool{}, mcast: make(chan netlink.Message, 64), closed: make(chan struct{})}
	f.mu.Lock()
	f.socks[s] = true
	f.dials++
	f.mu.Unlock()
	return genetlink.NewConn(netlink.NewConn(s, 4242)), nil
}

// SetInterface adds or replaces an interface without sending any event (a
// driver that changes silently: only polls see it).
func (f *Fake) SetInterface(ifi Interface) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ifi.Type == 0 {
		ifi.Type = unix.NL80211_IFTYPE_STATION
	}
	if ifi.MAC == nil {
		ifi.MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, byte(ifi.Index)}
	}
	if old := f.ifaces[ifi.Index]; old != nil {
		ifi.seq = old.seq
	} else {
		f.seq++
		ifi.seq = f.seq
	}
	f.ifaces[ifi.Index] = &ifi
}

// SetWdev adds a wireless device without a netdev silently, as one that
// existed before the watcher started.
func (f *Fake) SetWdev(w Wdev) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.Type == 0 {
		w.Type = unix.NL80211_IFTYPE_P2P_DEVICE
	}
	if w.MAC == nil {
		w.MAC = net.HardwareAddr{0x02, 0, 0, 0, 1, byte(w.ID)}
	}
	f.seq++
	w.seq = f.seq
	f.wdevs[w.ID] = &w
}

// AddWdev adds a wireless device without a netdev and sends
// NL80211_CMD_NEW_INTERFACE for it in the config group, as
// nl80211_notify_iface does when wpa_supplicant creates its P2P-Device:
// the message has no NL80211_ATTR_IFINDEX.
func (f *Fake) AddWdev(w Wdev) {
	f.SetWdev(w)
	f.mu.Lock()
	wd := *f.wdevs[w.ID]
	f.mu.Unlock()
	f.emit(unix.NL80211_MULTICAST_GROUP_CONFIG, unix.NL80211_CMD_NEW_INTERFACE, func(ae *netlink.AttributeEncoder) {
		wdevAttrs(ae, &wd)
	})
}

// RemoveWdev removes a wireless device without a netdev and sends
// NL80211_CMD_DEL_INTERFACE (again without NL80211_ATTR_IFINDEX).
func (f *Fake) RemoveWdev(id uint64) {
	f.mu.Lock()
	w := f.wdevs[id]
	delete(f.wdevs, id)
	f.mu.Unlock()
	if w == nil {
		return
	}
	f.emit(unix.NL80211_MULTICAST_GROUP_CONFIG, unix.NL80211_CMD_DEL_INTERFACE, func(ae *netlink.AttributeEncoder) {
		wdevAttrs(ae, w)
	})
}

// RemainOnChannel sends NL80211_CMD_REMAIN_ON_CHANNEL for a wdev in the
// mlme group, as a P2P search does every few hundred milliseconds
// (nl80211_send_remain_on_chan_event: NL80211_ATTR_IFINDEX only when the
// wdev has a netdev).
func (f *Fake) RemainOnChannel(id uint64, freqMHz int) {
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_REMAIN_ON_CHANNEL, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_WIPHY, uint32(id>>32))
		ae.Uint64(unix.NL80211_ATTR_WDEV, id)
		ae.Uint32(unix.NL80211_ATTR_WIPHY_FREQ, uint32(freqMHz))
		ae.Uint32(unix.NL80211_ATTR_WIPHY_CHANNEL_TYPE, unix.NL80211_CHAN_NO_HT)
		ae.Uint64(unix.NL80211_ATTR_COOKIE, 1)
		ae.Uint32(unix.NL80211_ATTR_DURATION, 300)
	})
}

// NotifyWiphy sends NL80211_CMD_NEW_WIPHY or DEL_WIPHY (cmd) for radio
// wiphy in the config group, as nl80211_notify_wiphy does when a driver
// registers or unregisters a radio (a USB adapter plugged in or pulled
// out, mac80211_hwsim radios created). It names the radio, not an
// interface: there is no NL80211_ATTR_IFINDEX.
func (f *Fake) NotifyWiphy(cmd uint8, wiphy uint32) {
	f.emit(unix.NL80211_MULTICAST_GROUP_CONFIG, cmd, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_WIPHY, wiphy)
		ae.String(unix.NL80211_ATTR_WIPHY_NAME, fmt.Sprintf("phy%d", wiphy))
		ae.Uint32(unix.NL80211_ATTR_GENERATION, 1)
	})
}

// RemoveInterface removes an interface and sends NL80211_CMD_DEL_INTERFACE.
func (f *Fake) RemoveInterface(index int) {
	f.mu.Lock()
	delete(f.ifaces, index)
	f.mu.Unlock()
	f.emit(unix.NL80211_MULTICAST_GROUP_CONFIG, unix.NL80211_CMD_DEL_INTERFACE, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
	})
}

// Update changes an interface with fn without sending any event.
func (f *Fake) Update(index int, fn func(*Interface)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ifi := f.ifaces[index]; ifi != nil {
		fn(ifi)
	}
}

// SetSignal sets the last and average signal of an interface, silently.
func (f *Fake) SetSignal(index, dbm int) {
	f.Update(index, func(ifi *Interface) { ifi.SignalDBm, ifi.SignalAvgDBm = dbm, dbm })
}

// SetSignals sets the signal of the last frame and the driver's average
// apart, as mac80211 reports them (NL80211_STA_INFO_SIGNAL from the last
// received frame, SIGNAL_AVG an EWMA of them). avg 0 omits SIGNAL_AVG, as
// drivers that do not keep an average do.
func (f *Fake) SetSignals(index, last, avg int) {
	f.Update(index, func(ifi *Interface) { ifi.SignalDBm, ifi.SignalAvgDBm = last, avg })
}

// Associate associates an interface and sends a successful
// NL80211_CMD_CONNECT, as cfg80211 does when a connection completes.
func (f *Fake) Associate(index int, ssid string, bssid net.HardwareAddr, freqMHz, signalDBm int) {
	f.Update(index, func(ifi *Interface) {
		ifi.SSID, ifi.BSSID, ifi.FreqMHz = ssid, bssid, freqMHz
		ifi.SignalDBm, ifi.SignalAvgDBm = signalDBm, signalDBm
		ifi.TxBitrate, ifi.RxBitrate, ifi.ConnectedSec = 8667, 6500, 1
	})
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_CONNECT, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Bytes(unix.NL80211_ATTR_MAC, bssid)
		ae.Uint16(unix.NL80211_ATTR_STATUS_CODE, 0)
	})
}

// ConnectFailed sends an NL80211_CMD_CONNECT with a failure status.
func (f *Fake) ConnectFailed(index int, bssid net.HardwareAddr, status uint16, timedOut bool) {
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_CONNECT, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Bytes(unix.NL80211_ATTR_MAC, bssid)
		ae.Uint16(unix.NL80211_ATTR_STATUS_CODE, status)
		if timedOut {
			ae.Flag(unix.NL80211_ATTR_TIMED_OUT, true)
		}
	})
}

// Disconnect clears the association and sends NL80211_CMD_DISCONNECT with
// the reason code and, when byAP, NL80211_ATTR_DISCONNECTED_BY_AP.
func (f *Fake) Disconnect(index int, reason uint16, byAP bool) {
	f.clear(index)
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_DISCONNECT, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Uint16(unix.NL80211_ATTR_REASON_CODE, reason)
		if byAP {
			ae.Flag(unix.NL80211_ATTR_DISCONNECTED_BY_AP, true)
		}
	})
}

// Deauthenticate clears the association and sends
// NL80211_CMD_DEAUTHENTICATE carrying a deauthentication frame; fromAP
// chooses whether the AP (transmitter = BSSID) or the station sent it.
func (f *Fake) Deauthenticate(index int, reason uint16, fromAP bool) {
	f.mu.Lock()
	ifi := f.ifaces[index]
	var own, bssid net.HardwareAddr
	if ifi != nil {
		own, bssid = ifi.MAC, ifi.BSSID
	}
	f.mu.Unlock()
	f.clear(index)
	frame := make([]byte, 26)
	frame[0] = 0xc0 // management, subtype deauthentication
	ta, ra := own, bssid
	if fromAP {
		ta, ra = bssid, own
	}
	copy(frame[4:10], ra)
	copy(frame[10:16], ta)
	copy(frame[16:22], bssid)
	binary.LittleEndian.PutUint16(frame[24:], reason)
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_DEAUTHENTICATE, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Bytes(unix.NL80211_ATTR_FRAME, frame)
	})
}

// Roam moves the association to another BSSID and sends NL80211_CMD_ROAM.
func (f *Fake) Roam(index int, bssid net.HardwareAddr, freqMHz, signalDBm int) {
	f.Update(index, func(ifi *Interface) {
		ifi.BSSID, ifi.FreqMHz = bssid, freqMHz
		ifi.SignalDBm, ifi.SignalAvgDBm = signalDBm, signalDBm
	})
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_ROAM, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Bytes(unix.NL80211_ATTR_MAC, bssid)
	})
}

// NotifyCQM sends NL80211_CMD_NOTIFY_CQM with the nested attributes fn
// writes (NL80211_ATTR_CQM_*).
func (f *Fake) NotifyCQM(index int, fn func(*netlink.AttributeEncoder)) {
	f.emit(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_NOTIFY_CQM, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
		ae.Nested(unix.NL80211_ATTR_CQM, func(n *netlink.AttributeEncoder) error { fn(n); return nil })
	})
}

// Send delivers a raw notification with command cmd and attribute payload
// data (possibly malformed) to the sockets that joined group.
func (f *Fake) Send(group string, cmd uint8, data []byte) {
	f.deliver(group, genetlink.Message{Header: genetlink.Header{Command: cmd, Version: f.family.Version}, Data: data})
}

// Overflow makes the next Receive on every socket that joined a group fail
// with ENOBUFS, as when the kernel drops notifications for a full socket
// buffer.
func (f *Fake) Overflow() {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.socks {
		if len(s.groups) > 0 {
			s.mcast <- netlink.Message{Header: netlink.Header{Type: overflowMarker}}
		}
	}
}

// FailReceive makes the next Receive on every socket that joined a group
// fail with errno, once; the socket stays usable. Use it for errors other
// than ENOBUFS (see Overflow).
func (f *Fake) FailReceive(errno unix.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.socks {
		if len(s.groups) > 0 {
			s.queueError(errno, false)
		}
	}
}

// BreakEvents makes every Receive on the sockets that joined a group, now
// and later, fail with errno until they are closed: only a new socket
// receives notifications again. Sockets opened later are not affected.
func (f *Fake) BreakEvents(errno unix.Errno) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.socks {
		if len(s.groups) > 0 {
			s.queueError(errno, true)
		}
	}
}

// FailJoin makes the next n JoinGroup calls fail with errno.
func (f *Fake) FailJoin(errno unix.Errno, n int) {
	f.mu.Lock()
	f.joinErr, f.joinFails = errno, n
	f.mu.Unlock()
}

// Joins returns how many JoinGroup calls succeeded: each subscription of a
// watcher joins two groups (mlme and config).
func (f *Fake) Joins() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.joins
}

// Dials returns how many connections Dial opened.
func (f *Fake) Dials() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.dials
}

// FailInterfaces makes the GET_INTERFACE dump fail with errno (0 to stop
// failing).
func (f *Fake) FailInterfaces(errno unix.Errno) {
	f.mu.Lock()
	f.ifaceErr = errno
	f.mu.Unlock()
}

// Sockets returns how many sockets are open.
func (f *Fake) Sockets() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.socks)
}

// FailStation makes GET_STATION fail with errno on every interface (0 to
// stop failing); Interface.StationErr does it for one.
func (f *Fake) FailStation(errno unix.Errno) {
	f.mu.Lock()
	f.stationErr = errno
	f.mu.Unlock()
}

// Requests returns how many requests with command cmd the fake answered.
func (f *Fake) Requests(cmd uint8) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[cmd]
}

// CQM returns the SET_CQM requests received so far.
func (f *Fake) CQM() []CQMRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]CQMRequest(nil), f.cqm...)
}

func (f *Fake) clear(index int) {
	f.Update(index, func(ifi *Interface) {
		ifi.SSID, ifi.BSSID, ifi.FreqMHz = "", nil, 0
		ifi.SignalDBm, ifi.SignalAvgDBm, ifi.TxBitrate, ifi.RxBitrate, ifi.ConnectedSec = 0, 0, 0, 0, 0
	})
}

func (f *Fake) emit(group string, cmd uint8, attrs func(*netlink.AttributeEncoder)) {
	f.Send(group, cmd, encode(attrs))
}

// deliver queues m on every socket that joined group. A socket whose queue
// is full loses the message and gets ENOBUFS next, like a kernel socket.
func (f *Fake) deliver(group string, m genetlink.Message) {
	var id uint32
	for _, g := range f.family.Groups {
		if g.Name == group {
			id = g.ID
		}
	}
	b, err := m.MarshalBinary()
	if err != nil {
		panic(fmt.Sprintf("wifiwatchtest: marshal: %v", err))
	}
	nm := netlink.Message{Header: netlink.Header{Type: netlink.HeaderType(f.family.ID)}, Data: b}
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.socks {
		if !s.groups[id] {
			continue
		}
		select {
		case s.mcast <- nm:
		default:
			s.overflow = true
		}
	}
}

func encode(fn func(*netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	b, err := ae.Encode()
	if err != nil {
		panic(fmt.Sprintf("wifiwatchtest: encode: %v", err))
	}
	return b
}

// overflowMarker and errorMarker are internal header types queued by
// Overflow, FailReceive and BreakEvents.
const (
	overflowMarker = 0xffff
	errorMarker    = 0xfffe
)

// queueError makes a Receive fail with errno: the next one (waking a
// blocked one), or every one from now on when persistent. The caller holds
// f.mu.
func (s *socket) queueError(errno unix.Errno, persistent bool) {
	if persistent {
		s.broken = errno
	}
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, uint32(errno))
	select {
	case s.mcast <- netlink.Message{Header: netlink.Header{Type: errorMarker}, Data: b}:
	default:
		s.overflow = true
	}
}

// serve answers one request the way nl80211 would.
func (f *Fake) serve(greq genetlink.Message, nreq netlink.Message) ([]genetlink.Message, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests[greq.Header.Command]++
	index := -1
	if ad, err := netlink.NewAttributeDecoder(greq.Data); err == nil {
		for ad.Next() {
			if ad.Type() == unix.NL80211_ATTR_IFINDEX {
				index = int(ad.Uint32())
			}
		}
	}
	reply := func(attrs func(*netlink.AttributeEncoder)) genetlink.Message {
		return genetlink.Message{Header: genetlink.Header{Command: greq.Header.Command, Version: f.family.Version}, Data: encode(attrs)}
	}
	var out []genetlink.Message
	switch greq.Header.Command {
	case unix.NL80211_CMD_GET_INTERFACE:
		if f.ifaceErr != 0 {
			return nil, genltestErrno(f.ifaceErr)
		}
		// nl80211_send_iface: IFINDEX and IFNAME only for a wdev with a
		// netdev; WIPHY, IFTYPE, WDEV, MAC and GENERATION always.
		for _, e := range f.sorted() {
			if e.ifi == nil {
				out = append(out, reply(func(ae *netlink.AttributeEncoder) { wdevAttrs(ae, e.wdev) }))
				continue
			}
			ifi := e.ifi
			out = append(out, reply(func(ae *netlink.AttributeEncoder) {
				ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(ifi.Index))
				ae.String(unix.NL80211_ATTR_IFNAME, ifi.Name)
				ae.Uint32(unix.NL80211_ATTR_WIPHY, ifi.Wiphy)
				ae.Uint32(unix.NL80211_ATTR_IFTYPE, ifi.Type)
				ae.Uint64(unix.NL80211_ATTR_WDEV, uint64(ifi.Wiphy)<<32|uint64(ifi.seq))
				ae.Bytes(unix.NL80211_ATTR_MAC, ifi.MAC)
				ae.Uint32(unix.NL80211_ATTR_GENERATION, 1)
				if ifi.BSSID != nil && !ifi.HideSSID {
					ae.Bytes(unix.NL80211_ATTR_SSID, []byte(ifi.SSID))
				}
				if ifi.FreqMHz != 0 {
					ae.Uint32(unix.NL80211_ATTR_WIPHY_FREQ, uint32(ifi.FreqMHz))
				}
			}))
		}
	case unix.NL80211_CMD_GET_STATION:
		if f.stationErr != 0 {
			return nil, genltestErrno(f.stationErr)
		}
		ifi := f.ifaces[index]
		if ifi == nil {
			return nil, genltestErrno(unix.ENODEV)
		}
		if ifi.StationErr != 0 {
			return nil, genltestErrno(ifi.StationErr)
		}
		peers := func() {
			for _, p := range ifi.TDLSPeers {
				out = append(out, reply(func(ae *netlink.AttributeEncoder) { tdlsAttrs(ae, ifi.Index, p) }))
			}
		}
		if ifi.TDLSPeersFirst {
			peers()
		}
		if ifi.BSSID != nil {
			out = append(out, reply(func(ae *netlink.AttributeEncoder) { stationAttrs(ae, ifi) }))
		}
		if !ifi.TDLSPeersFirst {
			peers()
		}
	case unix.NL80211_CMD_GET_SCAN:
		if ifi := f.ifaces[index]; ifi != nil && ifi.BSSID != nil {
			// A neighbour first, so that a parser must pick the right entry.
			out = append(out, reply(func(ae *netlink.AttributeEncoder) {
				bssAttrs(ae, ifi.Index, "neighbour", net.HardwareAddr{0x0a, 0, 0, 0, 0, 0xff}, 2412, false)
			}))
			out = append(out, reply(func(ae *netlink.AttributeEncoder) {
				bssAttrs(ae, ifi.Index, ifi.SSID, ifi.BSSID, ifi.FreqMHz, true)
			}))
		}
	case unix.NL80211_CMD_SET_CQM:
		req := CQMRequest{Index: index}
		ad, err := netlink.NewAttributeDecoder(greq.Data)
		if err != nil {
			return nil, err
		}
		for ad.Next() {
			if ad.Type() == unix.NL80211_ATTR_CQM {
				ad.Nested(func(n *netlink.AttributeDecoder) error {
					for n.Next() {
						switch n.Type() {
						case unix.NL80211_ATTR_CQM_RSSI_THOLD:
							req.ThresholdDBm = n.Int32()
						case unix.NL80211_ATTR_CQM_RSSI_HYST:
							req.HysteresisDB = n.Uint32()
						}
					}
					return nil
				})
			}
		}
		f.cqm = append(f.cqm, req)
		return nil, nil // acknowledged by the socket
	default:
		return nil, genltestErrno(unix.EOPNOTSUPP)
	}
	return out, nil
}

// staFlagsMask is the mask mac80211 always reports in
// NL80211_STA_INFO_STA_FLAGS (sta_set_sinfo in net/mac80211/sta_info.c).
const staFlagsMask = 1<<unix.NL80211_STA_FLAG_AUTHORIZED | 1<<unix.NL80211_STA_FLAG_SHORT_PREAMBLE |
	1<<unix.NL80211_STA_FLAG_WME | 1<<unix.NL80211_STA_FLAG_MFP | 1<<unix.NL80211_STA_FLAG_AUTHENTICATED |
	1<<unix.NL80211_STA_FLAG_ASSOCIATED | 1<<unix.NL80211_STA_FLAG_TDLS_PEER

// staFlags encodes struct nl80211_sta_flag_update (mask, set), host order.
func staFlags(n *netlink.AttributeEncoder, set uint32) {
	b := make([]byte, 8)
	binary.NativeEndian.PutUint32(b, staFlagsMask)
	binary.NativeEndian.PutUint32(b[4:], set)
	n.Bytes(unix.NL80211_STA_INFO_STA_FLAGS, b)
}

// associatedFlags are the flags of an AP the station is associated with.
const associatedFlags = 1<<unix.NL80211_STA_FLAG_AUTHORIZED | 1<<unix.NL80211_STA_FLAG_WME |
	1<<unix.NL80211_STA_FLAG_AUTHENTICATED | 1<<unix.NL80211_STA_FLAG_ASSOCIATED

// tdlsAttrs is the GET_STATION entry of a TDLS peer: mac80211 marks it
// TDLS_PEER, and AUTHORIZED/ASSOCIATED once the link is set up.
func tdlsAttrs(ae *netlink.AttributeEncoder, index int, peer net.HardwareAddr) {
	ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
	ae.Bytes(unix.NL80211_ATTR_MAC, peer)
	ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
		n.Uint32(unix.NL80211_STA_INFO_INACTIVE_TIME, 10)
		n.Uint8(unix.NL80211_STA_INFO_SIGNAL, uint8(0xff&-35)) // a peer next to the robot
		staFlags(n, associatedFlags|1<<unix.NL80211_STA_FLAG_TDLS_PEER)
		return nil
	})
}

func wdevAttrs(ae *netlink.AttributeEncoder, w *Wdev) {
	ae.Uint32(unix.NL80211_ATTR_WIPHY, w.Wiphy)
	ae.Uint32(unix.NL80211_ATTR_IFTYPE, w.Type)
	ae.Uint64(unix.NL80211_ATTR_WDEV, w.ID)
	ae.Bytes(unix.NL80211_ATTR_MAC, w.MAC)
	ae.Uint32(unix.NL80211_ATTR_GENERATION, 1)
	ae.Uint8(unix.NL80211_ATTR_4ADDR, 0)
}

func stationAttrs(ae *netlink.AttributeEncoder, ifi *Interface) {
	ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(ifi.Index))
	ae.Bytes(unix.NL80211_ATTR_MAC, ifi.BSSID)
	ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
		n.Uint32(unix.NL80211_STA_INFO_INACTIVE_TIME, 40)
		staFlags(n, associatedFlags)
		if ifi.ConnectedSec != 0 {
			n.Uint32(unix.NL80211_STA_INFO_CONNECTED_TIME, ifi.ConnectedSec)
		}
		if ifi.SignalDBm != 0 {
			n.Uint8(unix.NL80211_STA_INFO_SIGNAL, uint8(int8(ifi.SignalDBm)))
		}
		if ifi.SignalAvgDBm != 0 {
			n.Uint8(unix.NL80211_STA_INFO_SIGNAL_AVG, uint8(int8(ifi.SignalAvgDBm)))
		}
		rate := func(typ uint16, r uint32) {
			if r == 0 {
				return
			}
			n.Nested(typ, func(rn *netlink.AttributeEncoder) error {
				rn.Uint32(unix.NL80211_RATE_INFO_BITRATE32, r)
				if r <= 0xffff {
					rn.Uint16(unix.NL80211_RATE_INFO_BITRATE, uint16(r))
				}
				return nil
			})
		}
		rate(unix.NL80211_STA_INFO_TX_BITRATE, ifi.TxBitrate)
		rate(unix.NL80211_STA_INFO_RX_BITRATE, ifi.RxBitrate)
		if ifi.BeaconLoss != 0 {
			n.Uint32(unix.NL80211_STA_INFO_BEACON_LOSS, ifi.BeaconLoss)
		}
		return nil
	})
}

func bssAttrs(ae *netlink.AttributeEncoder, index int, ssid string, bssid net.HardwareAddr, freq int, associated bool) {
	ae.Uint32(unix.NL80211_ATTR_IFINDEX, uint32(index))
	ae.Nested(unix.NL80211_ATTR_BSS, func(n *netlink.AttributeEncoder) error {
		n.Bytes(unix.NL80211_BSS_BSSID, bssid)
		n.Uint32(unix.NL80211_BSS_FREQUENCY, uint32(freq))
		mbm := int32(-6000) // -60 dBm
		n.Uint32(unix.NL80211_BSS_SIGNAL_MBM, uint32(mbm))
		ies := []byte{1, 2, 0x82, 0x84} // supported rates, before the SSID
		ies = append(ies, 0, byte(len(ssid)))
		ies = append(ies, ssid...)
		n.Bytes(unix.NL80211_BSS_INFORMATION_ELEMENTS, ies)
		if associated {
			n.Uint32(unix.NL80211_BSS_STATUS, unix.NL80211_BSS_STATUS_ASSOCIATED)
		}
		return nil
	})
}

// entry is an interface or a wdev without a netdev, for the dump.
type entry struct {
	ifi  *Interface
	wdev *Wdev
}

// sorted lists interfaces and wdevs by radio, then in creation order, as
// nl80211_dump_interface walks each radio's wdev_list.
func (f *Fake) sorted() []entry {
	out := make([]entry, 0, len(f.ifaces)+len(f.wdevs))
	for _, ifi := range f.ifaces {
		out = append(out, entry{ifi: ifi})
	}
	for _, w := range f.wdevs {
		out = append(out, entry{wdev: w})
	}
	key := func(e entry) (uint32, int) {
		if e.ifi != nil {
			return e.ifi.Wiphy, e.ifi.seq
		}
		return e.wdev.Wiphy, e.wdev.seq
	}
	slices.SortFunc(out, func(a, b entry) int {
		wa, sa := key(a)
		wb, sb := key(b)
		if wa != wb {
			return int(wa) - int(wb)
		}
		return sa - sb
	})
	return out
}

// genltestErrno asks the socket to answer with an NLMSG_ERROR.
type genltestErrno unix.Errno

func (e genltestErrno) Error() string { return unix.Errno(e).Error() }

// socket is a netlink.Socket served by a Fake.
type socket struct {
	f        *Fake
	mu       sync.Mutex // guards pending
	pending  []netlink.Message
	groups   map[uint32]bool // guarded by f.mu
	overflow bool            // guarded by f.mu
	broken   unix.Errno      // guarded by f.mu: every Receive fails with it
	mcast    chan netlink.Message
	closed   chan struct{}
	once     sync.Once
}

// Close closes the socket: it no longer receives notifications, and a
// Receive with nothing queued fails with an error wrapping net.ErrClosed.
func (s *socket) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.f.mu.Lock()
		delete(s.f.socks, s)
		s.f.mu.Unlock()
	})
	return nil
}

// SendMessages sends each message in turn, as Send does.
func (s *socket) SendMessages(ms []netlink.Message) error {
	for _, m := range ms {
		if err := s.Send(m); err != nil {
			return err
		}
	}
	return nil
}

// Send answers the request m at once and queues the answer for Receive.
func (s *socket) Send(m netlink.Message) error {
	var greq genetlink.Message
	if err := greq.UnmarshalBinary(m.Data); err != nil {
		return err
	}
	var handler genltest.Func
	if s.f.missing {
		handler = func(genetlink.Message, netlink.Message) ([]genetlink.Message, error) {
			return nil, genltestErrno(unix.ENOENT)
		}
	} else {
		handler = genltest.ServeFamily(s.f.family, s.f.serve)
	}
	gms, err := handler(greq, m)
	hdr := netlink.Header{Type: m.Header.Type, Sequence: m.Header.Sequence, PID: m.Header.PID}
	var out []netlink.Message
	switch e, ok := err.(genltestErrno); {
	case ok:
		out = append(out, errorMessage(hdr, m, int32(-e)))
	case err != nil:
		return err
	case m.Header.Flags&netlink.Dump == netlink.Dump:
		for _, g := range gms {
			b, _ := g.MarshalBinary()
			h := hdr
			h.Flags = netlink.Multi
			out = append(out, netlink.Message{Header: h, Data: b})
		}
		done := hdr
		done.Type, done.Flags = netlink.Done, netlink.Multi
		out = append(out, netlink.Message{Header: done, Data: make([]byte, 4)})
	case len(gms) == 0 && m.Header.Flags&netlink.Acknowledge != 0:
		out = append(out, errorMessage(hdr, m, 0))
	default:
		for _, g := range gms {
			b, _ := g.MarshalBinary()
			out = append(out, netlink.Message{Header: hdr, Data: b})
		}
	}
	s.mu.Lock()
	s.pending = append(s.pending, out...)
	s.mu.Unlock()
	return nil
}

// errorMessage builds an NLMSG_ERROR (an acknowledgement when errno is 0)
// quoting the request header, as the kernel does.
func errorMessage(hdr netlink.Header, req netlink.Message, errno int32) netlink.Message {
	reqb, _ := req.MarshalBinary()
	data := make([]byte, 4, 4+16)
	binary.NativeEndian.PutUint32(data, uint32(errno))
	data = append(data, reqb[:16]...)
	hdr.Type = netlink.Error
	return netlink.Message{Header: hdr, Data: data}
}

// Receive returns the queued answers, or else blocks until a notification
// of a joined group arrives, the socket overflows (ENOBUFS) or it is
// closed.
func (s *socket) Receive() ([]netlink.Message, error) {
	s.mu.Lock()
	if len(s.pending) > 0 {
		out := s.pending
		s.pending = nil
		s.mu.Unlock()
		return out, nil
	}
	s.mu.Unlock()

	s.f.mu.Lock()
	over, broken := s.overflow, s.broken
	s.overflow = false
	s.f.mu.Unlock()
	if broken != 0 {
		return nil, os.NewSyscallError("recvmsg", broken)
	}
	if over {
		return nil, os.NewSyscallError("recvmsg", unix.ENOBUFS)
	}
	select {
	case m := <-s.mcast:
		switch m.Header.Type {
		case overflowMarker:
			return nil, os.NewSyscallError("recvmsg", unix.ENOBUFS)
		case errorMarker:
			return nil, os.NewSyscallError("recvmsg", unix.Errno(binary.NativeEndian.Uint32(m.Data)))
		}
		return []netlink.Message{m}, nil
	case <-s.closed:
		return nil, os.NewSyscallError("recvmsg", net.ErrClosed)
	}
}

// ReceiveIter yields the messages of one Receive, or its error.
func (s *socket) ReceiveIter() iter.Seq2[netlink.Message, error] {
	return func(yield func(netlink.Message, error) bool) {
		msgs, err := s.Receive()
		if err != nil {
			yield(netlink.Message{}, err)
			return
		}
		for _, m := range msgs {
			if !yield(m, nil) {
				return
			}
		}
	}
}

// JoinGroup joins a multicast group; unknown groups fail as in the kernel.
func (s *socket) JoinGroup(id uint32) error {
	for _, g := range s.f.family.Groups {
		if g.ID == id {
			s.f.mu.Lock()
			defer s.f.mu.Unlock()
			if s.f.joinFails > 0 {
				s.f.joinFails--
				return os.NewSyscallError("setsockopt", s.f.joinErr)
			}
			s.groups[id] = true
			s.f.joins++
			return nil
		}
	}
	return os.NewSyscallError("setsockopt", unix.EINVAL)
}

// LeaveGroup leaves a multicast group.
func (s *socket) LeaveGroup(id uint32) error {
	s.f.mu.Lock()
	delete(s.groups, id)
	s.f.mu.Unlock()
	return nil
}
