package wifiwatch

import (
	"errors"
	"net"
	"testing"
	"testing/synctest"
	"time"

	"github.com/mdlayher/netlink"
	"github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"golang.org/x/sys/unix"
)

// The tests in this file run the watcher on the shapes real kernels send
// and that the first fakes did not (issues 14 and 19).

// p2pDevice is the P2P-Device wdev wpa_supplicant creates on wiphy 0.
var p2pDevice = wifiwatchtest.Wdev{ID: 2, Type: unix.NL80211_IFTYPE_P2P_DEVICE}

// running fails the test if Run has returned.
func (h *harness) running() {
	h.t.Helper()
	synctest.Wait()
	select {
	case err := <-h.done:
		h.t.Fatalf("Run returned %v, want it running until cancelled", err)
	default:
	}
}

// TestP2PDeviceWdev: wpa_supplicant's P2P-Device has no netdev, so the
// kernel sends it without NL80211_ATTR_IFINDEX, in the dump and in its
// NEW/DEL_INTERFACE, and its P2P search sends REMAIN_ON_CHANNEL without one
// too. With it present at start, netmon used to stop at once ("first read:
// ... NL80211_ATTR_IFINDEX missing or 0"); added later, every poll failed
// and a disconnect was never seen.
func TestP2PDeviceWdev(t *testing.T) {
	for _, tt := range []struct {
		name    string
		atStart bool
	}{
		{"present at start", true},
		{"added later", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.Associate(3, "robots", apA, 5180, -55)
				if tt.atStart {
					f.SetWdev(p2pDevice)
				}
				h := start(t, f, Config{})
				b := want[Baseline](t, h.next())
				if len(b.Links) != 1 || b.Links[0].Iface != "wlan0" || !b.Links[0].Associated {
					t.Fatalf("baseline links %+v, want wlan0 associated only", b.Links)
				}
				if !tt.atStart {
					f.AddWdev(p2pDevice)
				}
				f.NotifyWiphy(unix.NL80211_CMD_NEW_WIPHY, 1)
				f.RemainOnChannel(p2pDevice.ID, 2412)
				h.polls(2)
				h.quiet() // no Gap, no event for the wdev
				h.running()

				f.Disconnect(3, 3, true)
				if d := want[Disconnected](t, h.next()); !d.FromEvent || d.Reason != 3 || d.Iface != "wlan0" {
					t.Fatalf("disconnected: %+v", d)
				}
				time.Sleep(time.Minute)
				f.Associate(3, "robots", apA, 5180, -55)
				if a := want[Associated](t, h.next()); a.Link.Iface != "wlan0" || a.Link.SSID != "robots" {
					t.Fatalf("associated: %+v", a.Link)
				}
				f.RemoveWdev(p2pDevice.ID)
				f.NotifyWiphy(unix.NL80211_CMD_DEL_WIPHY, 1)
				h.polls(1)
				h.quiet()
				s := h.w.State()
				if s.Gaps != 0 || s.Err != nil || len(s.Links) != 1 || !s.Links[0].Associated {
					t.Fatalf("State: %+v, want wlan0 associated, no gap, no error", s)
				}
				if err := h.stop(); err != nil {
					t.Fatalf("Run: %v", err)
				}
			})
		})
	}
}

// TestInterfaceTypesWithoutStationTraffic: an AP, a monitor interface and
// a NAN device are not watched, and neither is a station that becomes a
// monitor (NL80211_CMD_SET_INTERFACE).
func TestInterfaceTypesWithoutStationTraffic(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.SetInterface(wifiwatchtest.Interface{Index: 4, Name: "ap0", Type: unix.NL80211_IFTYPE_AP, Wiphy: 1})
		f.SetInterface(wifiwatchtest.Interface{Index: 5, Name: "mon0", Type: unix.NL80211_IFTYPE_MONITOR})
		f.SetWdev(wifiwatchtest.Wdev{ID: 1<<32 | 9, Type: unix.NL80211_IFTYPE_NAN, Wiphy: 1})
		h := start(t, f, Config{})
		b := want[Baseline](t, h.next())
		if len(b.Links) != 1 || b.Links[0].Iface != "wlan0" {
			t.Fatalf("baseline links %+v, want wlan0 only", b.Links)
		}
		h.quiet()
		_ = h.stop()
	})
}

// TestStationErrorIsThatRadios: a fullmac radio that answers GET_STATION
// with EOPNOTSUPP (nl80211_dump_station without a dump_station operation)
// next to a working one. The working radio is read and reported as usual;
// the failing one is reported once, keeps its state, and recovers.
func TestStationErrorIsThatRadios(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.SetInterface(wifiwatchtest.Interface{Index: 7, Name: "wlan1", Wiphy: 1, StationErr: unix.EOPNOTSUPP})
		f.Associate(3, "robots", apA, 5180, -55)
		f.Associate(7, "robots", apB, 2437, -60)
		h := start(t, f, Config{})
		b := want[Baseline](t, h.next())
		if len(b.Links) != 2 || !b.Links[0].Associated || b.Links[0].Err != nil || b.Links[1].Err == nil {
			t.Fatalf("baseline: %+v, want wlan0 associated, wlan1 with an error", b.Links)
		}
		r := want[ReadFailed](t, h.next())
		if r.Iface != "wlan1" || !errors.Is(r.Err, unix.EOPNOTSUPP) {
			t.Fatalf("read failed: %+v, want wlan1 and EOPNOTSUPP", r)
		}
		// The working radio goes on; the failing one is not reported again.
		f.SetSignal(3, -80)
		h.polls(3)
		if s := want[SignalChanged](t, h.next()); s.Iface != "wlan0" || s.To != BandWeak {
			t.Fatalf("signal: %+v", s)
		}
		f.Disconnect(3, 8, false)
		if d := want[Disconnected](t, h.next()); d.Iface != "wlan0" {
			t.Fatalf("disconnected: %+v", d)
		}
		h.quiet()
		if s := h.w.State(); !errors.Is(s.Links[1].Err, unix.EOPNOTSUPP) || s.Err != nil {
			t.Fatalf("State: %+v", s)
		}
		// The driver answers again (firmware restarted): wlan1 is read.
		f.Update(7, func(i *wifiwatchtest.Interface) { i.StationErr = 0 })
		h.polls(1)
		if a := want[Associated](t, h.next()); a.Link.Iface != "wlan1" || a.Link.Err != nil {
			t.Fatalf("associated: %+v", a.Link)
		}
		if s := h.w.State(); s.Links[1].Err != nil {
			t.Fatalf("State.Links[1].Err = %v after a good read, want nil", s.Links[1].Err)
		}
		h.running()
		_ = h.stop()
	})
}

// observed returns a logger that records every entry.
func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// TestReceiveErrorIsAGap: an event socket that fails with an error other
// than ENOBUFS is re-opened, re-subscribed with backoff while subscribing
// fails, and the state is re-read; the watcher keeps running, and says so
// once (one Gap, one warning) however many attempts it takes.
func TestReceiveErrorIsAGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := observed()
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{PollInterval: time.Hour, Logger: log})
		want[Baseline](t, h.next())
		synctest.Wait()
		joins := f.Joins()

		// The socket breaks, and the next three subscriptions fail.
		f.FailJoin(unix.ENOMEM, 3)
		f.BreakEvents(unix.EIO)
		g := want[Gap](t, h.next())
		if !errors.Is(g.Err, unix.EIO) {
			t.Fatalf("gap: %v, want EIO", g.Err)
		}
		synctest.Wait()
		if s := h.w.State(); s.EventsErr == nil || s.Gaps != 1 {
			t.Fatalf("State while broken: EventsErr %v, Gaps %d; want an error and 1", s.EventsErr, s.Gaps)
		}
		// Meanwhile the interface disconnects silently; the re-read after the
		// new subscription finds it.
		f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID, i.FreqMHz = "", nil, 0 })
		time.Sleep(maxBackoff)
		if d := want[Disconnected](t, h.next()); d.FromEvent {
			t.Fatalf("disconnected: %+v, want one found by the re-read", d)
		}
		if n := f.Joins() - joins; n != 2 {
			t.Fatalf("%d groups joined after the failure, want 2 (one new subscription)", n)
		}
		// Events flow again on the new socket.
		f.Associate(3, "robots", apA, 5180, -55)
		want[Associated](t, h.next())
		f.Disconnect(3, 4, true)
		if d := want[Disconnected](t, h.next()); !d.FromEvent || d.Reason != 4 {
			t.Fatalf("disconnected: %+v, want it from the event", d)
		}
		h.quiet()
		h.running()
		if s := h.w.State(); s.EventsErr != nil || s.Gaps != 1 {
			t.Fatalf("State after recovery: EventsErr %v, Gaps %d; want nil and 1", s.EventsErr, s.Gaps)
		}
		if n := logs.FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
			t.Fatalf("%d warnings, want 1:\n%v", n, logs.All())
		}
		if n := logs.FilterMessageSnippet("subscribed again").Len(); n != 1 {
			t.Fatalf("%d recovery messages, want 1", n)
		}

		// A one-off receive error: one more gap, and on it goes.
		f.FailReceive(unix.EBADMSG)
		if g := want[Gap](t, h.next()); !errors.Is(g.Err, unix.EBADMSG) {
			t.Fatalf("gap: %v, want EBADMSG", g.Err)
		}
		time.Sleep(maxBackoff)
		h.quiet()
		h.running()
		if err := h.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if n := f.Sockets(); n != 0 {
			t.Fatalf("%d sockets open after Run returned, want 0", n)
		}
	})
}

// TestTDLSPeerIsNotTheAP: GET_STATION on a station interface lists TDLS
// peers beside the AP. Whatever the order, a peer is never taken for the
// AP: no roam to it, and no association to it once the AP is gone.
func TestTDLSPeerIsNotTheAP(t *testing.T) {
	peer := net.HardwareAddr{0x02, 0, 0, 0, 0x7d, 0x15}
	for _, first := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake()
			f.Associate(3, "robots", apA, 5180, -55)
			h := start(t, f, Config{})
			want[Baseline](t, h.next())
			f.Update(3, func(i *wifiwatchtest.Interface) { i.TDLSPeers, i.TDLSPeersFirst = []net.HardwareAddr{peer}, first })
			h.polls(3)
			h.quiet()
			if l := h.w.State().Links[0]; l.BSSID.String() != apA.String() || l.SignalDBm != -55 {
				t.Fatalf("peers first %v: link %+v, want the AP %v at -55 dBm", first, l, apA)
			}
			// The AP leaves silently; the peer entry is still listed.
			f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID, i.FreqMHz = "", nil, 0 })
			h.polls(1)
			if d := want[Disconnected](t, h.next()); d.BSSID.String() != apA.String() {
				t.Fatalf("disconnected: %+v", d)
			}
			h.polls(3)
			h.quiet()
			_ = h.stop()
		})
	}
}

// TestStaleDisconnectIsIgnored: a poll sees the new association (a
// different BSS) before the event socket delivers the DISCONNECT of the
// old one. That DISCONNECT must not end the new association; a real one
// later must.
func TestStaleDisconnectIsIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())

		// The kernel disconnected from A and associated to B; the poll
		// reads B first.
		f.Update(3, func(i *wifiwatchtest.Interface) { i.BSSID, i.FreqMHz = apB, 2437 })
		h.polls(1)
		if r := want[Roamed](t, h.next()); r.To.String() != apB.String() {
			t.Fatalf("roamed: %+v", r)
		}
		// Then the queued notifications arrive: DISCONNECT (of A), CONNECT
		// (to B).
		disconnect := enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Uint16(unix.NL80211_ATTR_REASON_CODE, 3)
		})
		f.Send(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_DISCONNECT, disconnect)
		f.Send(unix.NL80211_MULTICAST_GROUP_MLME, unix.NL80211_CMD_CONNECT, enc(t, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_WIPHY, 0)
			ae.Uint32(unix.NL80211_ATTR_IFINDEX, 3)
			ae.Bytes(unix.NL80211_ATTR_MAC, apB)
			ae.Uint16(unix.NL80211_ATTR_STATUS_CODE, 0)
		}))
		h.polls(1)
		h.quiet()
		if l := h.w.State().Links[0]; !l.Associated || l.BSSID.String() != apB.String() {
			t.Fatalf("link after the stale DISCONNECT: %+v, want associated to %v", l, apB)
		}
		// Once the CONNECT arrived, a DISCONNECT is current: reported at
		// once, from the event.
		f.Disconnect(3, 4, true)
		if d := want[Disconnected](t, h.next()); !d.FromEvent || d.Reason != 4 || !d.ByAP || d.BSSID.String() != apB.String() {
			t.Fatalf("disconnected: %+v", d)
		}
		h.quiet()
		_ = h.stop()
	})
}

// TestDisconnectRightAfterBaselineIsReported: at the baseline the event
// socket may hold notifications older than the first read, so a DISCONNECT
// is confirmed by a re-read first; a current one is still reported with
// its reason, from the event.
func TestDisconnectRightAfterBaselineIsReported(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.Disconnect(3, 15, false)
		if d := want[Disconnected](t, h.next()); !d.FromEvent || d.Reason != 15 || d.ByAP {
			t.Fatalf("disconnected: %+v", d)
		}
		h.quiet()
		_ = h.stop()
	})
}

// TestSignalAverageWins: mac80211 sends SIGNAL (the last frame) and
// SIGNAL_AVG apart. The band follows the average: a last frame far off
// does not change it.
func TestSignalAverageWins(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		for _, last := range []int{-90, -50, -85, -60} {
			f.SetSignals(3, last, -56)
			h.polls(1)
		}
		h.quiet()
		l := h.w.State().Links[0]
		if l.Band != BandGood || l.SignalDBm != -60 || l.SignalAvgDBm != -56 {
			t.Fatalf("link %+v, want good from the -56 dBm average", l)
		}
		_ = h.stop()
	})
}

// TestJitterWithoutSignalAverage: a driver without SIGNAL_AVG, parked on
// the good/fair edge, its last-frame signal jittering by ±3 dB: the
// deadband keeps the band (the storm issue 14 saw).
func TestJitterWithoutSignalAverage(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -66)
		f.SetSignals(3, -66, 0)
		h := start(t, f, Config{})
		if b := want[Baseline](t, h.next()); b.Links[0].Band != BandGood {
			t.Fatalf("baseline band %v, want good", b.Links[0].Band)
		}
		parked, _ := jitteryTrace()
		for _, dbm := range parked[:300] {
			f.SetSignals(3, dbm, 0)
			h.polls(1)
		}
		h.quiet()
		if n := f.Requests(unix.NL80211_CMD_GET_STATION); n < 300 {
			t.Fatalf("GET_STATION requests %d, want >= 300 (the polls must have run)", n)
		}
		_ = h.stop()
	})
}

// TestFailingPollsReopenTheRequestSocket: when the interface dump keeps
// failing, the watcher keeps running, warns once, re-opens its request
// connection every few failures (in case the connection itself is broken),
// and reads the state again once the kernel answers.
func TestFailingPollsReopenTheRequestSocket(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		log, logs := observed()
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{Logger: log})
		want[Baseline](t, h.next())
		synctest.Wait()
		dials, socks := f.Dials(), f.Sockets()
		f.FailInterfaces(unix.EBUSY)
		h.polls(2 * reopenAfter)
		if n := f.Dials() - dials; n != 2 {
			t.Fatalf("%d new connections after %d failed polls, want 2", n, 2*reopenAfter)
		}
		if n := f.Sockets(); n != socks {
			t.Fatalf("%d sockets open, want %d (each replaced connection closed)", n, socks)
		}
		if n := logs.FilterMessage("poll failed").FilterLevelExact(zapcore.WarnLevel).Len(); n != 1 {
			t.Fatalf("%d poll warnings, want 1", n)
		}
		h.running()
		f.FailInterfaces(0)
		f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID, i.FreqMHz = "", nil, 0 })
		h.polls(1)
		want[Disconnected](t, h.next())
		_ = h.stop()
	})
}

// TestPermissionErrorAfterBaselineIsARead: a permission error at the
// baseline means Wi-Fi is unavailable (TestPermissionDeniedNamesCapability);
// after it, it is one interface's failed read and the watcher goes on.
func TestPermissionErrorAfterBaselineIsARead(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.FailStation(unix.EPERM)
		h.polls(3)
		if r := want[ReadFailed](t, h.next()); !errors.Is(r.Err, unix.EPERM) {
			t.Fatalf("read failed: %v, want EPERM", r.Err)
		}
		h.quiet()
		h.running()
		if err := h.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

// TestDisconnectStandsWhenItsConfirmationFails: a disconnect notification
// that waits for a confirming read is applied when that read fails.
func TestDisconnectStandsWhenItsConfirmationFails(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -55)
		h := start(t, f, Config{})
		want[Baseline](t, h.next()) // the baseline read ahead of the events
		f.Update(3, func(i *wifiwatchtest.Interface) { i.StationErr = unix.EIO })
		f.Disconnect(3, 6, true)
		if d := want[Disconnected](t, h.next()); !d.FromEvent || d.Reason != 6 {
			t.Fatalf("disconnected: %+v", d)
		}
		if r := want[ReadFailed](t, h.next()); !errors.Is(r.Err, unix.EIO) {
			t.Fatalf("read failed: %+v", r)
		}
		_ = h.stop()
	})
}

// TestPollBeforeDisconnectKeepsTheReason: cfg80211 clears the association
// GET_INTERFACE and GET_STATION report just before it sends the DISCONNECT
// (__cfg80211_disconnected), so a poll can see the loss first. The Wi-Fi
// lab saw a beacon loss reported with reason 0 that way. The poll waits
// for the notification until the next poll, and the loss carries its
// reason.
func TestPollBeforeDisconnectKeepsTheReason(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -80)
		h := start(t, f, Config{PollInterval: 2 * time.Second})
		want[Baseline](t, h.next())
		f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID, i.FreqMHz = "", nil, 0 })
		h.polls(1)
		h.quiet()
		f.Disconnect(3, 4, false)
		d := want[Disconnected](t, h.next())
		if d.Reason != 4 || d.ByAP || !d.FromEvent {
			t.Fatalf("disconnected %+v, want reason 4 from the notification", d)
		}
		h.polls(2)
		h.quiet()
		_ = h.stop()
	})
}

// TestSilentDisconnectFoundByTwoPolls: a loss no notification reports (a
// driver that sends none) is reported by the second poll that finds it.
func TestSilentDisconnectFoundByTwoPolls(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		h := start(t, f, Config{PollInterval: 2 * time.Second})
		want[Baseline](t, h.next())
		f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID, i.FreqMHz = "", nil, 0 })
		h.polls(1)
		h.quiet()
		h.polls(1)
		d := want[Disconnected](t, h.next())
		if d.Reason != 0 || d.FromEvent {
			t.Fatalf("disconnected %+v, want one found by polling", d)
		}
		_ = h.stop()
	})
}
