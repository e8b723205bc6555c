package wifiwatch

import (
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
		{"GET_INTERFACE", cmdGetInterface, unix.NL80211_CMD_GET_INTERFACE},
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
		{"interface without ifindex", func(b []byte) error { _, err := parseInterface(b); return err }, nil},
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
		{"event without ifindex", func(b []byte) error { _, err := parseEvent(cmdDisconnect, b); return err }, nil},
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

// TestMdlayherWifiPanicsOnTruncatedSignal documents why the package has its
// own parsers: the library indexes attribute payloads without checking
// their length. If this test starts failing, the library got safer.
func TestMdlayherWifiPanicsOnTruncatedSignal(t *testing.T) {
	b := enc(t, func(ae *netlink.AttributeEncoder) {
		ae.Bytes(unix.NL80211_ATTR_MAC, apA)
		ae.Nested(unix.NL80211_ATTR_STA_INFO, func(n *netlink.AttributeEncoder) error {
			n.Bytes(unix.NL80211_STA_INFO_SIGNAL, nil)
			return nil
		})
	})
	defer func() {
		if recover() == nil {
			t.Fatal("wifi.ParseStationInfo did not panic on an empty signal attribute")
		}
	}()
	_, _ = wifi.ParseStationInfo(b)
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
		if ev.index <= 0 || ev.cmd != cmd {
			t.Fatalf("event %+v without ifindex or with the wrong command", ev)
		}
		// The other parsers must not panic on the same bytes either.
		_, _ = parseStation(b)
		_, _ = parseInterface(b)
		_, _, _ = parseBSS(b)
	})
}
