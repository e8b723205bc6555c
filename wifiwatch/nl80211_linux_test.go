package wifiwatch

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/mdlayher/netlink"
	"github.com/mdlayher/wifi"
	"golang.org/x/sys/unix"
)

// TestConstantsMatchKernelABI checks the package's nl80211 values against
// x/sys/unix, which is generated from the kernel headers.
func TestConstantsMatchKernelABI(t *testing.T) {
	for _, c := range []struct {
		name      string
		got, want int
	}{
		{"NEW_WIPHY", cmdNewWiphy, unix.NL80211_CMD_NEW_WIPHY},
		{"DEL_WIPHY", cmdDelWiphy, unix.NL80211_CMD_DEL_WIPHY},
		{"GET_INTERFACE", cmdGetInterface, unix.NL80211_CMD_GET_INTERFACE},
		{"SET_INTERFACE", cmdSetInterface, unix.NL80211_CMD_SET_INTERFACE},
		{"NEW_INTERFACE", cmdNewInterface, unix.NL80211_CMD_NEW_INTERFACE},
		{"DEL_INTERFACE", cmdDelInterface, unix.NL80211_CMD_DEL_INTERFACE},
		{"GET_STATION", cmdGetStation, unix.NL80211_CMD_GET_STATION},
		{"GET_SCAN", cmdGetScan, unix.NL80211_CMD_GET_SCAN},
		{"DEAUTHENTICATE", cmdDeauthenticate, unix.NL80211_CMD_DEAUTHENTICATE},
		{"DISASSOCIATE", cmdDisassociate, unix.NL80211_CMD_DISASSOCIATE},
		{"CONNECT", cmdConnect, unix.NL80211_CMD_CONNECT},
		{"ROAM", cmdRoam, unix.NL80211_CMD_ROAM},
		{"DISCONNECT", cmdDisconnect, unix.NL80211_CMD_DISCONNECT},
		{"SET_CQM", cmdSetCQM, unix.NL80211_CMD_SET_CQM},
		{"NOTIFY_CQM", cmdNotifyCQM, unix.NL80211_CMD_NOTIFY_CQM},
		{"CH_SWITCH_NOTIFY", cmdChSwitchNotify, unix.NL80211_CMD_CH_SWITCH_NOTIFY},
		{"PORT_AUTHORIZED", cmdPortAuthorized, unix.NL80211_CMD_PORT_AUTHORIZED},
		{"ATTR_IFINDEX", attrIfindex, unix.NL80211_ATTR_IFINDEX},
		{"ATTR_IFNAME", attrIfname, unix.NL80211_ATTR_IFNAME},
		{"ATTR_IFTYPE", attrIftype, unix.NL80211_ATTR_IFTYPE},
		{"ATTR_MAC", attrMAC, unix.NL80211_ATTR_MAC},
		{"ATTR_STA_INFO", attrStaInfo, unix.NL80211_ATTR_STA_INFO},
		{"ATTR_WIPHY_FREQ", attrWiphyFreq, unix.NL80211_ATTR_WIPHY_FREQ},
		{"ATTR_BSS", attrBSS, unix.NL80211_ATTR_BSS},
		{"ATTR_FRAME", attrFrame, unix.NL80211_ATTR_FRAME},
		{"ATTR_SSID", attrSSID, unix.NL80211_ATTR_SSID},
		{"ATTR_REASON_CODE", attrReasonCode, unix.NL80211_ATTR_REASON_CODE},
		{"ATTR_TIMED_OUT", attrTimedOut, unix.NL80211_ATTR_TIMED_OUT},
		{"ATTR_DISCONNECTED_BY_AP", attrDisconnectByAP, unix.NL80211_ATTR_DISCONNECTED_BY_AP},
		{"ATTR_STATUS_CODE", attrStatusCode, unix.NL80211_ATTR_STATUS_CODE},
		{"ATTR_CQM", attrCQM, unix.NL80211_ATTR_CQM},
		{"ATTR_WDEV", attrWdev, unix.NL80211_ATTR_WDEV},
		{"STA_INFO_STA_FLAGS", staStaFlags, unix.NL80211_STA_INFO_STA_FLAGS},
		{"STA_FLAG_TDLS_PEER", staFlagTDLSPeer, unix.NL80211_STA_FLAG_TDLS_PEER},
		{"STA_FLAG_ASSOCIATED", staFlagAssociated, unix.NL80211_STA_FLAG_ASSOCIATED},
		{"STA_INFO_INACTIVE_TIME", staInactiveTime, unix.NL80211_STA_INFO_INACTIVE_TIME},
		{"STA_INFO_SIGNAL", staSignal, unix.NL80211_STA_INFO_SIGNAL},
		{"STA_INFO_TX_BITRATE", staTxBitrate, unix.NL80211_STA_INFO_TX_BITRATE},
		{"STA_INFO_TX_RETRIES", staTxRetries, unix.NL80211_STA_INFO_TX_RETRIES},
		{"STA_INFO_TX_FAILED", staTxFailed, unix.NL80211_STA_INFO_TX_FAILED},
		{"STA_INFO_SIGNAL_AVG", staSignalAvg, unix.NL80211_STA_INFO_SIGNAL_AVG},
		{"STA_INFO_RX_BITRATE", staRxBitrate, unix.NL80211_STA_INFO_RX_BITRATE},
		{"STA_INFO_CONNECTED_TIME", staConnectedTime, unix.NL80211_STA_INFO_CONNECTED_TIME},
		{"STA_INFO_BEACON_LOSS", staBeaconLoss, unix.NL80211_STA_INFO_BEACON_LOSS},
		{"RATE_INFO_BITRATE", rateBitrate, unix.NL80211_RATE_INFO_BITRATE},
		{"RATE_INFO_BITRATE32", rateBitrate32, unix.NL80211_RATE_INFO_BITRATE32},
		{"BSS_BSSID", bssBSSID, unix.NL80211_BSS_BSSID},
		{"BSS_FREQUENCY", bssFrequency, unix.NL80211_BSS_FREQUENCY},
		{"BSS_INFORMATION_ELEMENTS", bssIEs, unix.NL80211_BSS_INFORMATION_ELEMENTS},
		{"BSS_SIGNAL_MBM", bssSignalMBM, unix.NL80211_BSS_SIGNAL_MBM},
		{"BSS_STATUS", bssStatus, unix.NL80211_BSS_STATUS},
		{"BSS_STATUS_ASSOCIATED", bssStatusAssociated, unix.NL80211_BSS_STATUS_ASSOCIATED},
		{"CQM_RSSI_THOLD", cqmRSSIThold, unix.NL80211_ATTR_CQM_RSSI_THOLD},
		{"CQM_RSSI_HYST", cqmRSSIHyst, unix.NL80211_ATTR_CQM_RSSI_HYST},
		{"CQM_RSSI_THRESHOLD_EVENT", cqmRSSIThreshEv, unix.NL80211_ATTR_CQM_RSSI_THRESHOLD_EVENT},
		{"CQM_PKT_LOSS_EVENT", cqmPktLossEv, unix.NL80211_ATTR_CQM_PKT_LOSS_EVENT},
		{"CQM_BEACON_LOSS_EVENT", cqmBeaconLossEv, unix.NL80211_ATTR_CQM_BEACON_LOSS_EVENT},
		{"CQM_RSSI_LEVEL", cqmRSSILevel, unix.NL80211_ATTR_CQM_RSSI_LEVEL},
		{"CQM_RSSI_THRESHOLD_EVENT_LOW", cqmRSSIThreshLow, unix.NL80211_CQM_RSSI_THRESHOLD_EVENT_LOW},
		{"CQM_RSSI_THRESHOLD_EVENT_HIGH", cqmRSSIThreshHigh, unix.NL80211_CQM_RSSI_THRESHOLD_EVENT_HIGH},
		{"IFTYPE_STATION", iftypeStation, unix.NL80211_IFTYPE_STATION},
		{"IFTYPE_P2P_CLIENT", iftypeP2PClient, unix.NL80211_IFTYPE_P2P_CLIENT},
	} {
		if c.got != c.want {
			t.Errorf("%s = %d, kernel ABI says %d", c.name, c.got, c.want)
		}
	}
	if familyName != unix.NL80211_GENL_NAME || groupMLME != unix.NL80211_MULTICAST_GROUP_MLME || groupCfg != unix.NL80211_MULTICAST_GROUP_CONFIG {
		t.Error("family or group names differ from x/sys/unix")
	}
}

func enc(t testing.TB, fn func(ae *netlink.AttributeEncoder)) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	fn(ae)
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stationReply is a GET_STATION reply as a mac80211 driver sends it.
func stationReply(t testing.TB) []byte {
	return enc(t, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
		ae.Bytes(unix.NL80211_ATTR_MAC, apA)
		ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
			n.Uint32(unix.NL80211_STA_INFO_INACTIVE_TIME, 120)
			n.Uint32(unix.NL80211_STA_INFO_CONNECTED_TIME, 123)
			n.Uint8(unix.NL80211_STA_INFO_SIGNAL, uint8(0xff&-70))
			n.Uint8(unix.NL80211_STA_INFO_SIGNAL_AVG, uint8(0xff&-72))
			n.Uint32(unix.NL80211_STA_INFO_BEACON_LOSS, 2)
			n.Uint32(unix.NL80211_STA_INFO_TX_RETRIES, 9)
			n.Uint32(unix.NL80211_STA_INFO_TX_FAILED, 1)
			n.Nested(unix.NL80211_STA_INFO_TX_BITRATE, func(r *netlink.AttributeEncoder) error {
				r.Uint32(unix.NL80211_RATE_INFO_BITRATE32, 8667)
				r.Uint16(unix.NL80211_RATE_INFO_BITRATE, 8667)
				r.Uint8(unix.NL80211_RATE_INFO_VHT_MCS, 9)
				return nil
			})
			n.Nested(unix.NL80211_STA_INFO_RX_BITRATE, func(r *netlink.AttributeEncoder) error {
				r.Uint16(unix.NL80211_RATE_INFO_BITRATE, 65) // an old driver: u16 only
				return nil
			})
			return nil
		})
	})
}

// TestParseStationAgreesWithMdlayherWifi uses mdlayher/wifi's parser as an
// independent oracle on a well-formed reply.
func TestParseStationAgreesWithMdlayherWifi(t *testing.T) {
	b := stationReply(t)
	got, err := parseStation(b)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := wifi.ParseStationInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.signal != ref.Signal || got.signalAvg != ref.SignalAverage || got.bssid.String() != ref.HardwareAddr.String() ||
		got.connected != ref.Connected || got.inactive != ref.Inactive || int(got.beaconLoss) != ref.BeaconLoss ||
		int(got.txRetries) != ref.TransmitRetries || int(got.txFailed) != ref.TransmitFailed {
		t.Fatalf("parseStation %+v disagrees with wifi.ParseStationInfo %+v", got, ref)
	}
	// The bitrate is checked by value, not against the library: 8667 units
	// of 100 kbit/s are 866.7 Mbit/s.
	if got.txBitrate != 866_700_000 || got.rxBitrate != 6_500_000 {
		t.Fatalf("bitrates tx %d rx %d, want 866700000 and 6500000 bits/s", got.txBitrate, got.rxBitrate)
	}
}

func TestParseMalformed(t *testing.T) {
	ifindex := enc(t, func(ae *netlink.AttributeEncoder) { ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3) })
	tests := []struct {
		name  string
		parse func([]byte) error
		b     []byte
	}{
		{"station truncated header", func(b []byte) error { _, err := parseStation(b); return err }, []byte{8, 0, 3}},
		{"station attribute longer than buffer", func(b []byte) error { _, err := parseStation(b); return err }, []byte{200, 0, 3, 0, 1, 2, 3, 4}},
		{"station empty signal", func(b []byte) error { _, err := parseStation(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NL80211_ATTR_MAC, apA)
			ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
				n.Bytes(unix.NL80211_STA_INFO_SIGNAL, nil)
				return nil
			})
		})},
		{"station short bitrate32", func(b []byte) error { _, err := parseStation(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NL80211_ATTR_MAC, apA)
			ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
				n.Nested(unix.NL80211_STA_INFO_TX_BITRATE, func(r *netlink.AttributeEncoder) error {
					r.Bytes(unix.NL80211_RATE_INFO_BITRATE32, []byte{1, 2})
					return nil
				})
				return nil
			})
		})},
		{"station short MAC", func(b []byte) error { _, err := parseStation(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NL80211_ATTR_MAC, []byte{1, 2, 3})
		})},
		{"station without MAC", func(b []byte) error { _, err := parseStation(b); return err }, ifindex},
		{"interface short ifindex", func(b []byte) error { _, err := parseInterface(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NL80211_ATTR_IFINDEX, []byte{3})
		})},
		{"station short STA_FLAGS", func(b []byte) error { _, err := parseStation(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Bytes(unix.NL80211_ATTR_MAC, apA)
			ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
				n.Bytes(unix.NL80211_STA_INFO_STA_FLAGS, []byte{1, 2, 3, 4})
				return nil
			})
		})},
		{"bss truncated IE", func(b []byte) error { _, _, err := parseBSS(b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Nested(unix.NL80211_ATTR_BSS, func(n *netlink.AttributeEncoder) error {
				n.Bytes(unix.NL80211_BSS_INFORMATION_ELEMENTS, []byte{0, 10, 'a'})
				return nil
			})
		})},
		{"disconnect short reason", func(b []byte) error { _, err := parseEvent(cmdDisconnect, b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Bytes(unix.NL80211_ATTR_REASON_CODE, []byte{4})
		})},
		{"deauth short frame", func(b []byte) error { _, err := parseEvent(cmdDeauthenticate, b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Bytes(unix.NL80211_ATTR_FRAME, make([]byte, 25))
		})},
		{"cqm short level", func(b []byte) error { _, err := parseEvent(cmdNotifyCQM, b); return err }, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Nested(unix.NL80211_ATTR_CQM, func(n *netlink.AttributeEncoder) error {
				n.Bytes(unix.NL80211_ATTR_CQM_RSSI_LEVEL, []byte{1})
				return nil
			})
		})},
		{"disconnect without ifindex", func(b []byte) error { _, err := parseEvent(cmdDisconnect, b); return err }, nil},
		{"CQM without ifindex", func(b []byte) error { _, err := parseEvent(cmdNotifyCQM, b); return err }, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.parse(tt.b)
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v, want one wrapping errMalformed", err)
			}
			t.Logf("%v", err)
		})
	}
}

// TestParseWdevWithoutNetdev feeds the parsers the shapes the kernel sends
// for a wireless device without a netdev (a P2P-Device created by
// wpa_supplicant, a NAN device): nl80211_send_iface puts
// NL80211_ATTR_IFINDEX and IFNAME only "if (dev && ...)", and
// nl80211_send_remain_on_chan_event puts IFINDEX only "wdev->netdev &&";
// both always put NL80211_ATTR_WDEV. NEW_WIPHY and DEL_WIPHY
// (nl80211_notify_wiphy) name a radio only. None of them is malformed.
func TestParseWdevWithoutNetdev(t *testing.T) {
	p2pDev := enc(t, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
		ae.Uint32(unix.NL80211_ATTR_IFTYPE, unix.NL80211_IFTYPE_P2P_DEVICE)
		ae.Uint64(unix.NL80211_ATTR_WDEV, 1<<32|2)
		ae.Bytes(unix.NL80211_ATTR_MAC, apB)
		ae.Uint32(unix.NL80211_ATTR_GENERATION, 7)
		ae.Uint8(unix.NL80211_ATTR_4ADDR, 0)
	})
	ifi, err := parseInterface(p2pDev)
	if err != nil {
		t.Fatalf("parseInterface(P2P-Device wdev): %v, want no error", err)
	}
	if ifi.index != 0 || ifi.iftype != unix.NL80211_IFTYPE_P2P_DEVICE || ifi.wdev != 1<<32|2 {
		t.Fatalf("parseInterface(P2P-Device wdev) = %+v, want index 0, type P2P_DEVICE, wdev 0x100000002", ifi)
	}
	for _, tt := range []struct {
		name string
		cmd  uint8
		b    []byte
	}{
		{"NEW_INTERFACE of a P2P-Device", unix.NL80211_CMD_NEW_INTERFACE, p2pDev},
		{"DEL_INTERFACE of a P2P-Device", unix.NL80211_CMD_DEL_INTERFACE, p2pDev},
		{"NEW_WIPHY", unix.NL80211_CMD_NEW_WIPHY, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 1)
			ae.String(unix.NL80211_ATTR_WIPHY_NAME, "phy1")
			ae.Uint32(unix.NL80211_ATTR_GENERATION, 8)
		})},
		{"DEL_WIPHY", unix.NL80211_CMD_DEL_WIPHY, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 1)
			ae.String(unix.NL80211_ATTR_WIPHY_NAME, "phy1")
		})},
		{"REMAIN_ON_CHANNEL of a P2P search", unix.NL80211_CMD_REMAIN_ON_CHANNEL, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
			ae.Uint64(unix.NL80211_ATTR_WDEV, 1<<32|2)
			ae.Uint32(unix.NL80211_ATTR_WIPHY_FREQ, 2412)
			ae.Uint32(unix.NL80211_ATTR_WIPHY_CHANNEL_TYPE, unix.NL80211_CHAN_NO_HT)
			ae.Uint64(unix.NL80211_ATTR_COOKIE, 42)
			ae.Uint32(unix.NL80211_ATTR_DURATION, 500)
		})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := parseEvent(tt.cmd, tt.b)
			if err != nil {
				t.Fatalf("parseEvent: %v, want no error", err)
			}
			if ev.index != 0 || ev.cmd != tt.cmd {
				t.Fatalf("parseEvent = %+v, want command %d and index 0", ev, tt.cmd)
			}
		})
	}
}

// TestStationSkipsTDLSPeers: in station mode a GET_STATION dump lists the
// AP and every TDLS peer, each with NL80211_STA_INFO_STA_FLAGS, whose mask
// mac80211 always fills with TDLS_PEER and ASSOCIATED (sta_set_sinfo in
// net/mac80211/sta_info.c).
func TestStationSkipsTDLSPeers(t *testing.T) {
	withFlags := func(mac []byte, set uint32) stationInfo {
		t.Helper()
		b := enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Bytes(unix.NL80211_ATTR_MAC, mac)
			ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
				flags := make([]byte, 8)
				mask := uint32(1<<unix.NL80211_STA_FLAG_AUTHORIZED | 1<<unix.NL80211_STA_FLAG_AUTHENTICATED |
					1<<unix.NL80211_STA_FLAG_ASSOCIATED | 1<<unix.NL80211_STA_FLAG_TDLS_PEER)
				binary.NativeEndian.PutUint32(flags, mask)
				binary.NativeEndian.PutUint32(flags[4:], set)
				n.Bytes(unix.NL80211_STA_INFO_STA_FLAGS, flags)
				return nil
			})
		})
		si, err := parseStation(b)
		if err != nil {
			t.Fatal(err)
		}
		return si
	}
	const assoc = 1<<unix.NL80211_STA_FLAG_AUTHORIZED | 1<<unix.NL80211_STA_FLAG_AUTHENTICATED | 1<<unix.NL80211_STA_FLAG_ASSOCIATED
	for _, tt := range []struct {
		name string
		si   stationInfo
		isAP bool
	}{
		{"associated AP", withFlags(apA, assoc), true},
		{"TDLS peer", withFlags(apB, assoc|1<<unix.NL80211_STA_FLAG_TDLS_PEER), false},
		{"AP still authenticating", withFlags(apA, 1<<unix.NL80211_STA_FLAG_AUTHENTICATED), false},
		{"driver without flags", func() stationInfo { si, _ := parseStation(stationReply(t)); return si }(), true},
	} {
		if got := tt.si.isAP(); got != tt.isAP {
			t.Errorf("%s: isAP() = %v, want %v (flags mask %#x set %#x)", tt.name, got, tt.isAP, tt.si.flagsMask, tt.si.flagsSet)
		}
	}
}

func FuzzParseEvent(f *testing.F) {
	f.Add(uint8(cmdDisconnect), enc(f, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
		ae.Uint16(unix.NL80211_ATTR_REASON_CODE, 4)
		ae.Flag(unix.NL80211_ATTR_DISCONNECTED_BY_AP, true)
	}))
	f.Add(uint8(cmdNotifyCQM), enc(f, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
		ae.Nested(unix.NL80211_ATTR_CQM, func(n *netlink.AttributeEncoder) error {
			n.Uint32(unix.NL80211_ATTR_CQM_RSSI_THRESHOLD_EVENT, 0)
			n.Int32(unix.NL80211_ATTR_CQM_RSSI_LEVEL, -80)
			return nil
		})
	}))
	f.Add(uint8(cmdDeauthenticate), enc(f, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
		ae.Bytes(unix.NL80211_ATTR_FRAME, make([]byte, 26))
	}))
	f.Add(uint8(cmdGetStation), stationReply(f))
	f.Fuzz(func(t *testing.T, cmd uint8, b []byte) {
		ev, err := parseEvent(cmd, b)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			if ev.cmd != 0 || ev.index != 0 {
				t.Fatalf("both an event %+v and an error", ev)
			}
			return
		}
		if ev.cmd != cmd || (perInterface(cmd) && ev.index <= 0) {
			t.Fatalf("event %+v with the wrong command, or without the ifindex command %d needs", ev, cmd)
		}
		// The other parsers must not panic on the same bytes either.
		_, _ = parseStation(b)
		_, _ = parseInterface(b)
		_, _, _ = parseBSS(b)
	})
}
