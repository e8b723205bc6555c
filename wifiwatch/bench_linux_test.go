package wifiwatch

import (
	"context"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest"
	"golang.org/x/sys/unix"
)

func BenchmarkParseStation(b *testing.B) {
	msg := stationReply(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseStation(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseEvent(b *testing.B) {
	msg := enc(b, func(ae *netlink.AttributeEncoder) {
		ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
		ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
		ae.Uint16(unix.NL80211_ATTR_REASON_CODE, 4)
		ae.Flag(unix.NL80211_ATTR_DISCONNECTED_BY_AP, true)
	})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := parseEvent(cmdDisconnect, msg); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatcherPoll times one poll of one associated interface
// (GET_INTERFACE + GET_STATION through the fake's encoder and the real
// netlink.Conn code). The idle cost at the default 2 s interval is
// ns/op / 2e9 of one core, plus the kernel's side of two dumps.
func BenchmarkWatcherPoll(b *testing.B) {
	f := wifiwatchtest.New()
	f.SetInterface(wifiwatchtest.Interface{Index: 3, Name: "wlan0"})
	f.Associate(3, "robots", apA, 5180, -60)
	w, err := NewWithDial(Config{}, f.Dial)
	if err != nil {
		b.Fatal(err)
	}
	s, err := w.open()
	if err != nil {
		b.Fatal(err)
	}
	defer s.close()
	l := &loop{w: w, s: s, ifs: map[int]*ifstate{}}
	ctx := context.Background()
	if err := l.poll(ctx, time.Now(), true); err != nil {
		b.Fatal(err)
	}
	<-w.events // the baseline
	b.ReportAllocs()
	for b.Loop() {
		if err := l.poll(ctx, time.Now(), false); err != nil {
			b.Fatal(err)
		}
	}
}
