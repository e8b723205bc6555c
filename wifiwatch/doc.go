// Package wifiwatch watches the Wi-Fi side of a robot's connectivity through
// the kernel's nl80211 interface: which network each station interface is
// associated with (SSID, BSSID, frequency), how strong the signal is, the
// bitrates, and every disconnect, roam and reconnect.
//
// A [Watcher] combines two sources over two generic netlink sockets:
//
//   - Polling, every [Config].PollInterval (2 s by default): one
//     NL80211_CMD_GET_INTERFACE dump, plus GET_STATION for each interface
//     that is associated (an idle or down interface costs nothing more).
//     GET_SCAN is read only when the SSID is not in the interface dump and
//     the BSSID changed.
//   - Events: the socket joins nl80211's "mlme" and "config" multicast
//     groups and handles CONNECT, DISCONNECT (reason code, by AP or locally
//     generated), DEAUTHENTICATE and DISASSOCIATE, ROAM, NOTIFY_CQM (RSSI
//     low/high, packet loss, beacon loss) and interface and radio changes
//     (NEW/DEL/SET_INTERFACE, NEW/DEL_WIPHY: a re-read) at once.
//     A disconnect notification is sent by cfg80211 synchronously, while
//     the kernel's linkwatch may delay the carrier loss of a physical wlan0
//     by up to about a second (its rate limit), so [Disconnected] is
//     usually the earliest loss signal netmon has.
//
// The signal is classified into [Band]s with a symmetric deadband
// ([Bands.Classify]), and [SignalChanged] is emitted only when the band
// changes. A roam (same SSID, new BSSID, seamless or through a disconnect
// shorter than [Config].RoamWindow) is a [Roamed] event, not an outage.
//
// # Which interfaces
//
// Station and P2P client interfaces: those that are a client of an access
// point. A wireless device without a network interface (the P2P-Device
// wpa_supplicant creates, a NAN device) is skipped: the kernel reports it
// without NL80211_ATTR_IFINDEX, and it carries no traffic. So are AP, P2P
// GO, AP_VLAN, IBSS, mesh, OCB, WDS and monitor interfaces, which serve
// clients, have peers but no access point, or only capture. In a station's
// GET_STATION dump, TDLS peers (NL80211_STA_FLAG_TDLS_PEER) are never taken
// for the access point.
//
// # When things go wrong
//
// Once it has read the baseline, the watcher ends only when its context
// ends (before, it ends when Wi-Fi is unavailable: no nl80211, or a kernel
// that wants CAP_NET_ADMIN for GET_STATION). Every receive error on the event socket is a [Gap]:
// after ENOBUFS the socket is kept; after any other error it is closed and
// a new one subscribed, with backoff from 250 ms to 30 s while that fails
// (polling goes on meanwhile), and every interface is re-read after each
// new subscription. One episode of failures is one Gap and one warning,
// however many attempts it takes; State.EventsErr is set while it lasts
// and State.Gaps counts the gaps. An interface whose read fails (a fullmac
// driver answering GET_STATION with EOPNOTSUPP) is reported once with
// [ReadFailed] and keeps its last state, and the other interfaces are read
// as usual. A poll that fails as a whole is retried at the next tick, and
// the request connection is re-opened after a few failures in a row.
//
// A DISCONNECT carries no BSSID and no sequence, so one that was queued on
// the event socket while a poll already read the next association would
// end that association. When a read saw an association before its CONNECT
// or ROAM notification arrived, a disconnect notification is therefore
// confirmed by an immediate re-read (cfg80211 clears the SSID it reports
// before it sends DISCONNECT) and ignored if the association is still
// there.
//
// # Privileges
//
// None on current kernels: the GET dumps and the multicast groups are open
// to every user. Very old kernels restricted GET_STATION to CAP_NET_ADMIN;
// the watcher then reports Wi-Fi unavailable and names the capability.
// [Config].ArmCQM (off by default) sends NL80211_CMD_SET_CQM, which needs
// CAP_NET_ADMIN and replaces the supplicant's own CQM configuration (the
// kernel keeps one per interface), so leave it off where wpa_supplicant or
// iwd manage roaming.
//
// # Without Wi-Fi
//
// On a machine without the nl80211 family (a kernel without cfg80211, as on
// the development VMs) or without generic netlink, [Watcher.Run] emits one
// [Unavailable] event, records the reason in [Watcher.State] and returns an
// error wrapping [ErrUnavailable]; the rest of netmon carries on. No
// wireless interface at all is not an error: the [Baseline] is empty and a
// USB adapter plugged in later is picked up.
//
// # What it never does
//
// It never scans, connects or disconnects, and never arms CQM unless asked.
// It does not check who sent a notification: root can spoof generic netlink
// multicast, and mdlayher/netlink exposes no sender address.
//
// # Testing
//
// [NewWithDial] takes the function that opens the generic netlink
// connections; [github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest]
// provides a fake nl80211 for it.
//
// # Why not github.com/mdlayher/wifi
//
// wifiwatch builds its nl80211 requests and decodes the replies itself, over
// [github.com/mdlayher/genetlink], instead of reading through
// github.com/mdlayher/wifi (v0.10.0 in go.mod; only the tests import it, as
// a reference parser). In that version wifi.New always dials its own socket
// (genetlink.Dial(nil)) and no constructor accepts a connection, so a
// wifi.Client cannot run on an injected one such as the fake above. Its
// parsers (ParseStationInfo, ParseInterfaces and those behind Client) read
// fixed-size attributes without checking their length, so a truncated
// attribute, such as an empty NL80211_STA_INFO_SIGNAL, panics with an index
// out of range instead of returning an error. Nor does it offer a way to
// receive the mlme notifications (disconnect, roam, CQM) the watcher needs.
package wifiwatch
