package wifiwatch

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/mdlayher/netlink"
)

// nl80211 ABI values from include/uapi/linux/nl80211.h. They are declared
// here rather than taken from x/sys/unix, which defines them only on Linux,
// so that the package builds (and reports Wi-Fi unavailable) everywhere.
// nl80211_linux_test.go checks every value against x/sys/unix.
const (
	familyName = "nl80211"
	groupMLME  = "mlme"   // connect, disconnect, roam, deauth, CQM
	groupCfg   = "config" // interfaces added and removed

	cmdNewWiphy        = 3
	cmdDelWiphy        = 4
	cmdGetInterface    = 5
	cmdSetInterface    = 6
	cmdNewInterface    = 7
	cmdDelInterface    = 8
	cmdGetStation      = 17
	cmdGetScan         = 32
	cmdDeauthenticate  = 39
	cmdDisassociate    = 40
	cmdConnect         = 46
	cmdRoam            = 47
	cmdDisconnect      = 48
	cmdSetCQM          = 63
	cmdNotifyCQM       = 64
	cmdChSwitchNotify  = 88
	cmdPortAuthorized  = 125
	attrIfindex        = 3
	attrIfname         = 4
	attrIftype         = 5
	attrMAC            = 6
	attrStaInfo        = 21
	attrWiphyFreq      = 38
	attrBSS            = 47
	attrFrame          = 51
	attrSSID           = 52
	attrReasonCode     = 54
	attrTimedOut       = 65
	attrDisconnectByAP = 71
	attrStatusCode     = 72
	attrCQM            = 94
	attrWdev           = 153

	staInactiveTime  = 1
	staSignal        = 7
	staTxBitrate     = 8
	staTxRetries     = 11
	staTxFailed      = 12
	staSignalAvg     = 13
	staRxBitrate     = 14
	staConnectedTime = 16
	staStaFlags      = 17
	staBeaconLoss    = 18

	rateBitrate   = 1 // u16, 100 kbit/s
	rateBitrate32 = 5 // u32, 100 kbit/s

	bssBSSID     = 1
	bssFrequency = 2
	bssIEs       = 6
	bssSignalMBM = 7
	bssStatus    = 9

	cqmRSSIThold      = 1
	cqmRSSIHyst       = 2
	cqmRSSIThreshEv   = 3
	cqmPktLossEv      = 4
	cqmBeaconLossEv   = 8
	cqmRSSILevel      = 9
	cqmRSSIThreshLow  = 0
	cqmRSSIThreshHigh = 1

	iftypeStation   = 2
	iftypeP2PClient = 8

	// Bits of struct nl80211_sta_flag_update (NL80211_STA_INFO_STA_FLAGS).
	staFlagTDLSPeer   = 6
	staFlagAssociated = 7

	bssStatusAssociated = 1
)

// errMalformed is wrapped by every parse error, so that tests and callers can
// tell a bad kernel message from an I/O error.
var errMalformed = errors.New("malformed nl80211 message")

// ifaceInfo is one NL80211_CMD_GET_INTERFACE reply. index is 0 for a
// wireless device without a network interface (a P2P-Device or NAN wdev):
// the kernel's nl80211_send_iface (net/wireless/nl80211.c) puts
// NL80211_ATTR_IFINDEX and IFNAME only "if (dev && ...)", where dev is
// wdev->netdev, and NL80211_ATTR_WDEV always.
type ifaceInfo struct {
	index  int // 0: no netdev
	wdev   uint64
	name   string
	iftype uint32
	mac    net.HardwareAddr
	ssid   string // present while a station is connected
	freq   int    // MHz, present while the interface has a channel
}

// stationInfo is one NL80211_CMD_GET_STATION reply: in station mode, the
// access point this interface is associated with.
type stationInfo struct {
	index                           int
	bssid                           net.HardwareAddr
	flagsMask, flagsSet             uint32 // NL80211_STA_INFO_STA_FLAGS, 0 if absent
	signal, signalAvg               int    // dBm, 0 if absent
	txBitrate, rxBitrate            uint64
	connected, inactive             time.Duration
	beaconLoss, txRetries, txFailed uint32
}

// bssInfo is the BSS nested in one NL80211_CMD_GET_SCAN reply.
type bssInfo struct {
	bssid     net.HardwareAddr
	ssid      string
	freq      int
	signalMBm int32
	status    int // -1 when absent (not the current BSS)
}

// event is a decoded nl80211 multicast notification.
type event struct {
	cmd        uint8
	index      int
	mac        net.HardwareAddr // BSSID for connect/roam/disconnect frames, peer for CQM
	reason     uint16
	byAP       bool
	status     uint16
	timedOut   bool
	quality    QualityKind
	levelDBm   int
	lostPkts   uint32
	frameBSSID net.HardwareAddr // addr3 of a deauth/disassoc frame
}

// malformed wraps err (an attribute decoder error) as a parse error of what.
func malformed(what string, err error) error {
	return fmt.Errorf("wifiwatch: %s: %w: %w", what, errMalformed, err)
}

// hwaddr validates a 6-byte MAC attribute.
func hwaddr(what string, b []byte) (net.HardwareAddr, error) {
	if len(b) != 6 {
		return nil, fmt.Errorf("wifiwatch: %s: %w: MAC length %d, want 6", what, errMalformed, len(b))
	}
	return net.HardwareAddr(b), nil
}

// parseInterface decodes the attributes of one GET_INTERFACE reply.
func parseInterface(b []byte) (ifaceInfo, error) {
	ifi := ifaceInfo{}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return ifi, malformed("interface", err)
	}
	var macErr error
	for ad.Next() {
		switch ad.Type() {
		case attrIfindex:
			ifi.index = int(ad.Uint32())
		case attrIfname:
			ifi.name = ad.String()
		case attrIftype:
			ifi.iftype = ad.Uint32()
		case attrWdev:
			ifi.wdev = ad.Uint64()
		case attrMAC:
			ifi.mac, macErr = hwaddr("interface", ad.Bytes())
		case attrSSID:
			// The SSID is 0..32 raw octets, not NUL-terminated.
			ifi.ssid = string(ad.Bytes())
		case attrWiphyFreq:
			ifi.freq = int(ad.Uint32())
		}
	}
	if err := ad.Err(); err != nil {
		return ifaceInfo{}, malformed("interface", err)
	}
	if macErr != nil {
		return ifaceInfo{}, macErr
	}
	// No NL80211_ATTR_IFINDEX is not an error: it is how the kernel sends
	// a wdev without a netdev (see ifaceInfo). The caller skips it.
	return ifi, nil
}

// parseStation decodes the attributes of one GET_STATION reply. Signal and
// bitrate attributes are optional: drivers omit what they do not measure.
func parseStation(b []byte) (stationInfo, error) {
	var si stationInfo
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return si, malformed("station", err)
	}
	var inner error
	for ad.Next() {
		switch ad.Type() {
		case attrIfindex:
			si.index = int(ad.Uint32())
		case attrMAC:
			si.bssid, inner = hwaddr("station", ad.Bytes())
		case attrStaInfo:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				if err := decodeStaInfo(nad, &si); inner == nil {
					inner = err
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return stationInfo{}, malformed("station", err)
	}
	if inner != nil {
		return stationInfo{}, inner
	}
	if si.bssid == nil {
		return stationInfo{}, fmt.Errorf("wifiwatch: station: %w: NL80211_ATTR_MAC missing", errMalformed)
	}
	return si, nil
}

// decodeStaInfo reads NL80211_ATTR_STA_INFO. Decoder errors stay in nad and
// reach the outer decoder through Nested; the error it returns is about a
// field the decoder cannot check (the size of a struct).
func decodeStaInfo(nad *netlink.AttributeDecoder, si *stationInfo) error {
	var err error
	for nad.Next() {
		switch nad.Type() {
		case staStaFlags:
			// struct nl80211_sta_flag_update { __u32 mask; __u32 set; },
			// in host byte order like every nl80211 integer.
			b := nad.Bytes()
			if len(b) != 8 {
				err = fmt.Errorf("wifiwatch: station: %w: NL80211_STA_INFO_STA_FLAGS length %d, want 8", errMalformed, len(b))
				continue
			}
			si.flagsMask, si.flagsSet = binary.NativeEndian.Uint32(b), binary.NativeEndian.Uint32(b[4:])
		case staSignal:
			// u8 on the wire, but a signed dBm value (iw casts it to int8).
			si.signal = int(int8(nad.Uint8()))
		case staSignalAvg:
			si.signalAvg = int(int8(nad.Uint8()))
		case staTxBitrate:
			nad.Nested(func(r *netlink.AttributeDecoder) error { si.txBitrate = decodeRate(r); return nil })
		case staRxBitrate:
			nad.Nested(func(r *netlink.AttributeDecoder) error { si.rxBitrate = decodeRate(r); return nil })
		case staConnectedTime:
			si.connected = time.Duration(nad.Uint32()) * time.Second
		case staInactiveTime:
			si.inactive = time.Duration(nad.Uint32()) * time.Millisecond
		case staBeaconLoss:
			si.beaconLoss = nad.Uint32()
		case staTxRetries:
			si.txRetries = nad.Uint32()
		case staTxFailed:
			si.txFailed = nad.Uint32()
		}
	}
	return err
}

// flag reports whether the station flag bit is known (in the mask) and set.
func (si stationInfo) flag(bit uint) (known, set bool) {
	return si.flagsMask&(1<<bit) != 0, si.flagsSet&(1<<bit) != 0
}

// isAP reports whether a station entry of a station-mode interface can be
// its access point. mac80211 (sta_set_sinfo in net/mac80211/sta_info.c)
// always reports TDLS_PEER and ASSOCIATED in the mask, so a TDLS peer (a
// direct link to another client of the same BSS) is told apart from the AP,
// and an AP entry that exists only while authenticating is not taken for an
// association. Drivers that send no flags leave both unknown: the entry
// counts, as before flags existed.
func (si stationInfo) isAP() bool {
	if known, tdls := si.flag(staFlagTDLSPeer); known && tdls {
		return false
	}
	if known, assoc := si.flag(staFlagAssociated); known && !assoc {
		return false
	}
	return true
}

// decodeRate returns the bitrate of a nested rate_info in bits/s. Both
// NL80211_RATE_INFO_BITRATE (u16) and BITRATE32 count 100 kbit/s units; the
// kernel sends BITRATE32 always and the u16 only while the rate fits, so
// BITRATE32 wins. (mdlayher/wifi's RateInfo documents this field in
// 100 kbit/s but stores bits/s and prints it divided by 10; we never use it.)
func decodeRate(r *netlink.AttributeDecoder) uint64 {
	var r16, r32 uint64
	for r.Next() {
		switch r.Type() {
		case rateBitrate:
			r16 = uint64(r.Uint16())
		case rateBitrate32:
			r32 = uint64(r.Uint32())
		}
	}
	if r32 != 0 {
		return r32 * 100_000
	}
	return r16 * 100_000
}

// parseBSS decodes the BSS nested in one GET_SCAN reply. ok is false when the
// message carries no NL80211_ATTR_BSS.
func parseBSS(b []byte) (bss bssInfo, ok bool, err error) {
	bss.status = -1
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return bssInfo{}, false, malformed("bss", err)
	}
	var inner error
	for ad.Next() {
		if ad.Type() != attrBSS {
			continue
		}
		ok = true
		ad.Nested(func(nad *netlink.AttributeDecoder) error {
			for nad.Next() {
				switch nad.Type() {
				case bssBSSID:
					bss.bssid, inner = hwaddr("bss", nad.Bytes())
				case bssFrequency:
					bss.freq = int(nad.Uint32())
				case bssSignalMBM:
					bss.signalMBm = int32(nad.Uint32())
				case bssStatus:
					bss.status = int(nad.Uint32())
				case bssIEs:
					var ssidErr error
					bss.ssid, ssidErr = ssidFromIEs(nad.Bytes())
					if inner == nil {
						inner = ssidErr
					}
				}
			}
			return nil
		})
	}
	if err := ad.Err(); err != nil {
		return bssInfo{}, false, malformed("bss", err)
	}
	if inner != nil {
		return bssInfo{}, false, inner
	}
	return bss, ok, nil
}

// ssidFromIEs finds the SSID element (ID 0) in 802.11 information elements,
// each encoded as ID (1 byte), length (1 byte), data.
func ssidFromIEs(b []byte) (string, error) {
	for len(b) > 0 {
		if len(b) < 2 || int(b[1]) > len(b)-2 {
			return "", fmt.Errorf("wifiwatch: bss: %w: information element truncated", errMalformed)
		}
		id, n := b[0], int(b[1])
		if id == 0 {
			return string(b[2 : 2+n]), nil
		}
		b = b[2+n:]
	}
	return "", nil
}

// parseEvent decodes one nl80211 multicast notification with command cmd.
// Commands this package does not act on decode to an event with only cmd
// and index set; index is 0 when the notification names no netdev (see
// perInterface).
func parseEvent(cmd uint8, b []byte) (event, error) {
	ev := event{cmd: cmd}
	ad, err := netlink.NewAttributeDecoder(b)
	if err != nil {
		return event{}, malformed(cmdName(cmd), err)
	}
	var inner error
	keep := func(err error) {
		if inner == nil {
			inner = err
		}
	}
	for ad.Next() {
		switch ad.Type() {
		case attrIfindex:
			ev.index = int(ad.Uint32())
		case attrMAC:
			mac, err := hwaddr(cmdName(cmd), ad.Bytes())
			keep(err)
			ev.mac = mac
		case attrReasonCode:
			ev.reason = ad.Uint16()
		case attrDisconnectByAP:
			ev.byAP = true // a flag: present means true
		case attrStatusCode:
			ev.status = ad.Uint16()
		case attrTimedOut:
			ev.timedOut = true
		case attrFrame:
			keep(ev.parseFrame(ad.Bytes()))
		case attrCQM:
			ad.Nested(func(nad *netlink.AttributeDecoder) error {
				for nad.Next() {
					switch nad.Type() {
					case cqmRSSIThreshEv:
						switch nad.Uint32() {
						case cqmRSSIThreshLow:
							ev.quality = QualityRSSILow
						case cqmRSSIThreshHigh:
							ev.quality = QualityRSSIHigh
						}
					case cqmRSSILevel:
						ev.levelDBm = int(int32(nad.Uint32()))
					case cqmPktLossEv:
						ev.quality = QualityPacketLoss
						ev.lostPkts = nad.Uint32()
					case cqmBeaconLossEv:
						ev.quality = QualityBeaconLoss
					}
				}
				return nil
			})
		}
	}
	if err := ad.Err(); err != nil {
		return event{}, malformed(cmdName(cmd), err)
	}
	if inner != nil {
		return event{}, inner
	}
	if ev.index <= 0 && perInterface(cmd) {
		return event{}, fmt.Errorf("wifiwatch: %s: %w: NL80211_ATTR_IFINDEX missing or 0", cmdName(cmd), errMalformed)
	}
	return ev, nil
}

// perInterface reports whether the notification cmd is always about a
// netdev, so that the kernel always includes NL80211_ATTR_IFINDEX: the
// connect, roam and disconnect results (nl80211_send_connect_result,
// nl80211_send_roamed, nl80211_send_disconnected), the MLME frames
// (nl80211_send_mlme_event) and CQM (cfg80211_prepare_cqm) all take a
// net_device. The other notifications of the joined groups may concern a
// wireless device without a netdev, and then carry NL80211_ATTR_WDEV
// alone: NEW/DEL/SET_INTERFACE of a P2P-Device (nl80211_send_iface),
// REMAIN_ON_CHANNEL and CANCEL_REMAIN_ON_CHANNEL of a P2P search
// (nl80211_send_remain_on_chan_event), and NEW/DEL_WIPHY, which name a
// radio and no interface at all (nl80211_notify_wiphy).
func perInterface(cmd uint8) bool {
	switch cmd {
	case cmdConnect, cmdRoam, cmdDisconnect, cmdDeauthenticate, cmdDisassociate, cmdNotifyCQM:
		return true
	}
	return false
}

// parseFrame reads the reason code and addresses of a deauthentication or
// disassociation frame (IEEE 802.11 management header of 24 bytes, then a
// little-endian reason code).
func (ev *event) parseFrame(f []byte) error {
	if ev.cmd != cmdDeauthenticate && ev.cmd != cmdDisassociate {
		return nil // other MLME frames (auth, assoc) carry nothing we use
	}
	if len(f) < 26 {
		return fmt.Errorf("wifiwatch: %s: %w: frame length %d, want >= 26", cmdName(ev.cmd), errMalformed, len(f))
	}
	ta, bssid := f[10:16], f[16:22]
	ev.frameBSSID = net.HardwareAddr(bssid)
	ev.reason = binary.LittleEndian.Uint16(f[24:26])
	// A frame whose transmitter is the BSSID was sent by the AP; one we sent
	// (tx deauth, locally generated) carries our own address there.
	ev.byAP = string(ta) == string(bssid)
	return nil
}

// cmdName names the nl80211 commands this package handles, for messages.
func cmdName(cmd uint8) string {
	switch cmd {
	case cmdNewWiphy:
		return "NEW_WIPHY"
	case cmdDelWiphy:
		return "DEL_WIPHY"
	case cmdGetInterface:
		return "GET_INTERFACE"
	case cmdSetInterface:
		return "SET_INTERFACE"
	case cmdNewInterface:
		return "NEW_INTERFACE"
	case cmdDelInterface:
		return "DEL_INTERFACE"
	case cmdGetStation:
		return "GET_STATION"
	case cmdGetScan:
		return "GET_SCAN"
	case cmdDeauthenticate:
		return "DEAUTHENTICATE"
	case cmdDisassociate:
		return "DISASSOCIATE"
	case cmdConnect:
		return "CONNECT"
	case cmdRoam:
		return "ROAM"
	case cmdDisconnect:
		return "DISCONNECT"
	case cmdSetCQM:
		return "SET_CQM"
	case cmdNotifyCQM:
		return "NOTIFY_CQM"
	case cmdChSwitchNotify:
		return "CH_SWITCH_NOTIFY"
	case cmdPortAuthorized:
		return "PORT_AUTHORIZED"
	}
	return fmt.Sprintf("nl80211 command %d", cmd)
}

// reader issues nl80211 requests on a dedicated connection. It is the only
// code that talks to the kernel for reads; *wifi.Client is not used because
// it cannot run on an injected connection and its parsers index attribute
// payloads without checking their length (a truncated attribute panics).
type reader struct {
	c   *genetlink.Conn
	fam genetlink.Family
}

// dump runs a dump request of cmd with the given attributes.
func (r *reader) dump(cmd uint8, attrs func(*netlink.AttributeEncoder)) ([]genetlink.Message, error) {
	var data []byte
	if attrs != nil {
		ae := netlink.NewAttributeEncoder()
		attrs(ae)
		var err error
		if data, err = ae.Encode(); err != nil {
			return nil, fmt.Errorf("wifiwatch: encoding %s: %w", cmdName(cmd), err)
		}
	}
	msgs, err := r.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmd, Version: r.fam.Version},
		Data:   data,
	}, r.fam.ID, netlink.Request|netlink.Dump)
	if err != nil {
		return nil, fmt.Errorf("wifiwatch: nl80211 %s: %w%s", cmdName(cmd), err, privilegeHint(err))
	}
	return msgs, nil
}

// interfaces dumps every nl80211 interface.
func (r *reader) interfaces() ([]ifaceInfo, error) {
	msgs, err := r.dump(cmdGetInterface, nil)
	if err != nil {
		return nil, err
	}
	out := make([]ifaceInfo, 0, len(msgs))
	for _, m := range msgs {
		ifi, err := parseInterface(m.Data)
		if err != nil {
			return nil, err
		}
		if ifi.index <= 0 || !tracked(ifi.iftype) {
			continue // no netdev (P2P-Device, NAN), or no station traffic
		}
		out = append(out, ifi)
	}
	return out, nil
}

// tracked reports whether interfaces of the nl80211 type iftype are
// watched: those that are a client of an access point, station and P2P
// client. The others carry no association the robot depends on, or none at
// all: an AP, P2P GO or AP_VLAN serves clients (GET_STATION lists them, not
// an uplink), IBSS, mesh point, OCB and WDS have peers but no access point,
// a monitor interface only captures, and a P2P-Device or NAN wdev has no
// netdev (and no ifindex) to carry traffic.
func tracked(iftype uint32) bool {
	return iftype == iftypeStation || iftype == iftypeP2PClient
}

// station returns the access point a station interface is associated with;
// ok is false when there is none.
func (r *reader) station(index int) (si stationInfo, ok bool, err error) {
	msgs, err := r.dump(cmdGetStation, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(attrIfindex, uint32(index))
	})
	if err != nil {
		return stationInfo{}, false, err
	}
	for _, m := range msgs {
		si, err := parseStation(m.Data)
		if err != nil {
			return stationInfo{}, false, err
		}
		// In station mode the peers are the AP and any TDLS peers; skip
		// the latter (isAP), and stray entries for other interfaces should
		// a driver include them.
		if (si.index == 0 || si.index == index) && si.isAP() {
			return si, true, nil
		}
	}
	return stationInfo{}, false, nil
}

// bss returns the scan entry of the BSS bssid (or else the one the kernel
// marks associated) on the interface index.
func (r *reader) bss(index int, bssid net.HardwareAddr) (bssInfo, bool, error) {
	msgs, err := r.dump(cmdGetScan, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(attrIfindex, uint32(index))
	})
	if err != nil {
		return bssInfo{}, false, err
	}
	var assoc bssInfo
	found := false
	for _, m := range msgs {
		b, ok, err := parseBSS(m.Data)
		if err != nil {
			return bssInfo{}, false, err
		}
		if !ok {
			continue
		}
		if string(b.bssid) == string(bssid) {
			return b, true, nil
		}
		if b.status == bssStatusAssociated && !found {
			assoc, found = b, true
		}
	}
	return assoc, found, nil
}

// setCQM arms the RSSI threshold of the connection quality monitor.
func (r *reader) setCQM(index, thresholdDBm, hystDB int) error {
	_, err := r.c.Execute(genetlink.Message{
		Header: genetlink.Header{Command: cmdSetCQM, Version: r.fam.Version},
		Data: mustEncode(func(ae *netlink.AttributeEncoder) {
			ae.Uint32(attrIfindex, uint32(index))
			ae.Nested(attrCQM, func(n *netlink.AttributeEncoder) error {
				n.Int32(cqmRSSIThold, int32(thresholdDBm))
				n.Uint32(cqmRSSIHyst, uint32(hystDB))
				return nil
			})
		}),
	}, r.fam.ID, netlink.Request|netlink.Acknowledge)
	if err != nil {
		return fmt.Errorf("wifiwatch: nl80211 SET_CQM: %w%s", err, privilegeHint(err))
	}
	return nil
}

// mustEncode encodes attributes that cannot fail to encode (fixed-size
// integers and nests of them); an error here is a bug in this package.
func mustEncode(fn func(*netlink.AttributeEncoder)) []byte {
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	b, err := ae.Encode()
	if err != nil {
		panic("wifiwatch: encoding fixed attributes: " + err.Error())
	}
	return b
}
