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

// BenchmarkWatcherIdle runs a whole Watcher (Run, its ticker, its event
// goroutine) on the fake, associated and quiet, polling every 5 ms, and
// measures the process's CPU time (getrusage, user and system) per poll.
// It reports that cost as a share of one core at the default 2 s interval
// ("idle-%"). The fake stands in for the kernel, so the kernel's own
// work for the two nl80211 dumps of a poll is not in the figure. The
// sub-benchmarks are a single station, and a machine as wpa_supplicant
// leaves it with P2P enabled: the station, its P2P-Device wdev (skipped
// in every dump) and a second radio in AP mode (not read).
func BenchmarkWatcherIdle(b *testing.B) {
	for _, bc := range []struct {
		name  string
		setup func(f *wifiwatchtest.Fake)
	}{
		{"station", func(*wifiwatchtest.Fake) {}},
		{"station+p2p-device+ap", func(f *wifiwatchtest.Fake) {
			f.SetWdev(wifiwatchtest.Wdev{ID: 2})
			f.SetInterface(wifiwatchtest.Interface{Index: 4, Name: "ap0", Type: unix.NL80211_IFTYPE_AP, Wiphy: 1})
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := wifiwatchtest.New()
			f.SetInterface(wifiwatchtest.Interface{Index: 3, Name: "wlan0"})
			f.Associate(3, "robots", apA, 5180, -60)
			bc.setup(f)
			benchmarkIdle(b, f)
		})
	}
}

func benchmarkIdle(b *testing.B, f *wifiwatchtest.Fake) {
	const interval = 5 * time.Millisecond
	w, err := NewWithDial(Config{PollInterval: interval}, f.Dial)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		for range w.Events() {
		}
	}()
	// Wait for the first poll, with a deadline, before measuring.
	deadline := time.Now().Add(10 * time.Second)
	for f.Requests(cmdGetStation) == 0 {
		if time.Now().After(deadline) {
			b.Fatal("no poll within 10s")
		}
		time.Sleep(interval)
	}
	var before, after unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &before)
	polls0 := f.Requests(cmdGetStation)
	b.ResetTimer()
	for b.Loop() {
		time.Sleep(interval) // one poll's worth of idle time
	}
	b.StopTimer()
	_ = unix.Getrusage(unix.RUSAGE_SELF, &after)
	polls := f.Requests(cmdGetStation) - polls0
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	<-drained
	if polls == 0 {
		b.Fatal("the watcher did not poll")
	}
	if s := w.State(); s.Gaps != 0 || len(s.Links) != 1 {
		b.Fatalf("State %+v, want one link and no gap", s)
	}
	cpu := time.Duration(after.Utime.Nano() - before.Utime.Nano() + after.Stime.Nano() - before.Stime.Nano())
	perPoll := cpu / time.Duration(polls)
	b.ReportMetric(float64(perPoll.Microseconds()), "µs-cpu/poll")
	b.ReportMetric(100*perPoll.Seconds()/2, "idle-%")
}
