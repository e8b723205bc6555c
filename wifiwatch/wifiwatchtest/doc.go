// Package wifiwatchtest provides a fake nl80211 for tests of code that runs
// a [github.com/seed-a56be422/netmon/wifiwatch.Watcher] on machines without
// Wi-Fi hardware.
//
// A [Fake] models the kernel side: wireless interfaces with their
// association state, answers to NL80211_CMD_GET_INTERFACE, GET_STATION and
// GET_SCAN dumps encoded from that state, SET_CQM requests, and multicast
// notifications (CONNECT, DISCONNECT, ROAM, NOTIFY_CQM, ...) delivered only
// to sockets that joined the group, as the kernel does. Messages are built
// from the x/sys/unix NL80211_* constants, independently of wifiwatch's
// parser. Family lookups are answered by genltest.ServeFamily.
//
// The fake sends the shapes real kernels send, each citing the kernel
// function that builds it (net/wireless/nl80211.c unless said otherwise):
// wireless devices without a netdev ([Wdev]: a P2P-Device, NAN) in the
// interface dump and in NEW/DEL_INTERFACE without NL80211_ATTR_IFINDEX;
// NEW/DEL_WIPHY and REMAIN_ON_CHANNEL notifications; SIGNAL_AVG apart from
// SIGNAL ([Fake.SetSignals]); STA_FLAGS as mac80211 fills them, with TDLS
// peers beside the AP; radios whose GET_STATION fails
// (Interface.StationErr, e.g. EOPNOTSUPP); and receive errors on the event
// sockets ([Fake.Overflow], [Fake.FailReceive], [Fake.BreakEvents]) and
// failed subscriptions ([Fake.FailJoin]).
//
// Unlike a bare genltest connection, the fake's sockets support JoinGroup,
// carry the family ID in the netlink header, block in Receive until a
// notification arrives, and are interrupted by Close, so a Watcher runs on
// them unchanged:
//
//	f := wifiwatchtest.New()
//	f.SetInterface(wifiwatchtest.Interface{Index: 3, Name: "wlan0"})
//	w, _ := wifiwatch.NewWithDial(cfg, f.Dial)
//	go w.Run(ctx)
//	f.Associate(3, "robots", bssid, 5180, -55)
//
// The package is Linux-only; elsewhere it is empty.
package wifiwatchtest
