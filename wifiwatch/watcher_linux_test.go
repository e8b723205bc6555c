package wifiwatch

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest"
	"golang.org/x/sys/unix"
)

var (
	apA = net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x0a}
	apB = net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x0b}
)

// harness runs a Watcher on a fake inside a synctest bubble.
type harness struct {
	t      *testing.T
	f      *wifiwatchtest.Fake
	w      *Watcher
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, f *wifiwatchtest.Fake, cfg Config) *harness {
	t.Helper()
	w, err := NewWithDial(cfg, f.Dial)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	h := &harness{t: t, f: f, w: w, cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- w.Run(ctx) }()
	return h
}

// next waits for the next event, with one deadline of a fake minute.
func (h *harness) next() Event {
	h.t.Helper()
	select {
	case ev, ok := <-h.w.Events():
		if !ok {
			h.t.Fatal("Events closed, want an event")
		}
		return ev
	case <-time.After(time.Minute):
		h.t.Fatal("no event within a minute")
	}
	return nil
}

// quiet asserts that no event is pending once every goroutine is idle.
func (h *harness) quiet() {
	h.t.Helper()
	synctest.Wait()
	select {
	case ev := <-h.w.Events():
		h.t.Fatalf("unexpected event %s: %+v", ev.Kind(), ev)
	default:
	}
}

// polls lets n poll intervals pass.
func (h *harness) polls(n int) {
	time.Sleep(time.Duration(n) * h.w.cfg.PollInterval)
	synctest.Wait()
}

func (h *harness) stop() error {
	h.cancel()
	err := <-h.done
	for range h.w.Events() {
	}
	return err
}

func want[E Event](t *testing.T, ev Event) E {
	t.Helper()
	e, ok := ev.(E)
	if !ok {
		var zero E
		t.Fatalf("got %T %+v, want %T", ev, ev, zero)
	}
	return e
}

func newFake() *wifiwatchtest.Fake {
	f := wifiwatchtest.New()
	f.SetInterface(wifiwatchtest.Interface{Index: 3, Name: "wlan0"})
	return f
}

func TestWalkAwayAndBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, newFake(), Config{})
		b := want[Baseline](t, h.next())
		if len(b.Links) != 1 || b.Links[0].Associated || b.Links[0].Iface != "wlan0" {
			t.Fatalf("baseline: %+v, want wlan0 not associated", b.Links)
		}

		h.f.Associate(3, "robots", apA, 5180, -50)
		a := want[Associated](t, h.next())
		if a.Link.SSID != "robots" || a.Link.BSSID.String() != apA.String() || a.Link.Band != BandGood ||
			a.Link.FreqMHz != 5180 || a.Link.TxBitrate != 866_700_000 || a.Link.RxBitrate != 650_000_000 {
			t.Fatalf("associated: %+v", a.Link)
		}

		// Walk away: -50 -> -72 (fair) -> -80 (weak) -> -88 (critical),
		// each past the 4 dB deadband.
		var got []Band
		for _, dbm := range []int{-60, -72, -80, -88} {
			h.f.SetSignal(3, dbm)
			h.polls(1)
			for len(h.w.Events()) > 0 {
				got = append(got, want[SignalChanged](t, h.next()).To)
			}
		}
		if d := cmp.Diff([]Band{BandFair, BandWeak, BandCritical}, got); d != "" {
			t.Fatalf("bands walking away (-want +got):\n%s", d)
		}

		h.f.Disconnect(3, 4, true)
		d := want[Disconnected](t, h.next())
		if !d.FromEvent || d.Reason != 4 || !d.ByAP || d.SSID != "robots" || d.SignalDBm != -88 {
			t.Fatalf("disconnected: %+v", d)
		}
		if s := h.w.State(); s.Links[0].Associated {
			t.Fatalf("State after disconnect: %+v", s.Links[0])
		}

		// Back after a long outage: a new association, not a roam.
		time.Sleep(time.Minute)
		h.f.Associate(3, "robots", apA, 5180, -55)
		a = want[Associated](t, h.next())
		if a.Link.Band != BandGood || a.Link.SignalDBm != -55 {
			t.Fatalf("re-associated: %+v", a.Link)
		}
		h.quiet()
		if err := h.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
	})
}

func TestRoam(t *testing.T) {
	tests := []struct {
		name     string
		roam     func(f *wifiwatchtest.Fake)
		downtime time.Duration
	}{
		{
			name:     "seamless NL80211_CMD_ROAM",
			roam:     func(f *wifiwatchtest.Fake) { f.Roam(3, apB, 2437, -60) },
			downtime: 0,
		},
		{
			name: "brief disconnect within the roam window",
			roam: func(f *wifiwatchtest.Fake) {
				f.Disconnect(3, 3, false)
				time.Sleep(800 * time.Millisecond)
				f.Associate(3, "robots", apB, 2437, -60)
			},
			downtime: 800 * time.Millisecond,
		},
		{
			name: "silent BSSID change seen by a poll",
			roam: func(f *wifiwatchtest.Fake) {
				f.Update(3, func(i *wifiwatchtest.Interface) { i.BSSID, i.FreqMHz = apB, 2437 })
			},
			downtime: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := newFake()
				f.Associate(3, "robots", apA, 5180, -60)
				h := start(t, f, Config{})
				if b := want[Baseline](t, h.next()); !b.Links[0].Associated {
					t.Fatalf("baseline: %+v", b.Links)
				}
				tt.roam(f)
				ev := h.next()
				if _, ok := ev.(Disconnected); ok && tt.downtime > 0 {
					ev = h.next()
				}
				r := want[Roamed](t, ev)
				if r.From.String() != apA.String() || r.To.String() != apB.String() || r.SSID != "robots" ||
					r.Downtime != tt.downtime || r.Link.FreqMHz != 2437 || r.Link.LastRoam.IsZero() {
					t.Fatalf("roamed: %+v", r)
				}
				h.quiet()
				if err := h.stop(); err != nil {
					t.Fatal(err)
				}
			})
		})
	}
}

func TestReassociationToAnotherSSIDIsNotARoam(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.Disconnect(3, 3, false)
		want[Disconnected](t, h.next())
		f.Associate(3, "guests", apB, 2437, -60)
		if a := want[Associated](t, h.next()); a.Link.SSID != "guests" {
			t.Fatalf("associated: %+v", a.Link)
		}
		_ = h.stop()
	})
}

func TestFlappingSignalOnBoundaryDoesNotStorm(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -66)
		h := start(t, f, Config{})
		if b := want[Baseline](t, h.next()); b.Links[0].Band != BandGood {
			t.Fatalf("baseline band %v, want good", b.Links[0].Band)
		}
		for i := range 50 {
			f.SetSignal(3, []int{-67, -68, -66, -69}[i%4])
			h.polls(1)
		}
		h.quiet()
		if got := f.Requests(unix.NL80211_CMD_GET_STATION); got < 50 {
			t.Fatalf("GET_STATION requests %d, want >= 50 (the polls must have run)", got)
		}
		// A real drop past the hysteresis is still reported, once.
		f.SetSignal(3, -71)
		h.polls(3)
		if s := want[SignalChanged](t, h.next()); s.From != BandGood || s.To != BandFair || s.SignalDBm != -71 {
			t.Fatalf("signal: %+v", s)
		}
		h.quiet()
		_ = h.stop()
	})
}

func TestDriverOmitsFields(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := wifiwatchtest.New()
		f.SetInterface(wifiwatchtest.Interface{Index: 5, Name: "wlx0", HideSSID: true,
			SSID: "robots", BSSID: apA})
		// No signal, no bitrate, no connected time, no frequency, no SSID in
		// GET_INTERFACE: the SSID must come from GET_SCAN.
		h := start(t, f, Config{})
		b := want[Baseline](t, h.next())
		l := b.Links[0]
		if !l.Associated || l.SSID != "robots" || l.Band != BandUnknown || l.SignalDBm != 0 || l.TxBitrate != 0 {
			t.Fatalf("link: %+v", l)
		}
		if f.Requests(unix.NL80211_CMD_GET_SCAN) != 1 {
			t.Fatalf("GET_SCAN requests %d, want 1", f.Requests(unix.NL80211_CMD_GET_SCAN))
		}
		h.polls(3)
		if n := f.Requests(unix.NL80211_CMD_GET_SCAN); n != 1 {
			t.Fatalf("GET_SCAN requests after polls %d, want 1 (only on BSSID change)", n)
		}
		h.quiet()
		_ = h.stop()
	})
}

func TestPollsOnlyAssociatedInterfaces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		base := f.Requests(unix.NL80211_CMD_GET_STATION) // the baseline reads every station once
		h.polls(10)
		if n := f.Requests(unix.NL80211_CMD_GET_STATION) - base; n != 0 {
			t.Fatalf("GET_STATION on an idle interface: %d requests after the baseline, want 0", n)
		}
		if n := f.Requests(unix.NL80211_CMD_GET_INTERFACE); n < 10 {
			t.Fatalf("GET_INTERFACE requests %d, want >= 10", n)
		}
		_ = h.stop()
	})
}

func TestDeauthenticationFrames(t *testing.T) {
	for _, fromAP := range []bool{true, false} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake()
			f.Associate(3, "robots", apA, 5180, -60)
			h := start(t, f, Config{})
			want[Baseline](t, h.next())
			f.Deauthenticate(3, 7, fromAP)
			f.Disconnect(3, 7, fromAP) // cfg80211 follows with DISCONNECT
			d := want[Disconnected](t, h.next())
			if d.Reason != 7 || d.ByAP != fromAP || !d.FromEvent {
				t.Fatalf("fromAP %v: disconnected %+v", fromAP, d)
			}
			h.quiet() // the DISCONNECT after the deauth is folded
			_ = h.stop()
		})
	}
}

func TestConnectFailedAndCQM(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.ConnectFailed(3, apB, 17, false)
		if c := want[ConnectFailed](t, h.next()); c.Status != 17 || c.Iface != "wlan0" || c.BSSID.String() != apB.String() {
			t.Fatalf("connect failed: %+v", c)
		}
		f.NotifyCQM(3, func(ae *netlink.AttributeEncoder) { ae.Uint32(unix.NL80211_ATTR_CQM_PKT_LOSS_EVENT, 50) })
		if q := want[Quality](t, h.next()); q.Type != QualityPacketLoss || q.Packets != 50 {
			t.Fatalf("quality: %+v", q)
		}
		f.SetSignal(3, -80)
		f.NotifyCQM(3, func(ae *netlink.AttributeEncoder) {
			ae.Uint32(unix.NL80211_ATTR_CQM_RSSI_THRESHOLD_EVENT, unix.NL80211_CQM_RSSI_THRESHOLD_EVENT_LOW)
			ae.Int32(unix.NL80211_ATTR_CQM_RSSI_LEVEL, -80)
		})
		if q := want[Quality](t, h.next()); q.Type != QualityRSSILow || q.LevelDBm != -80 {
			t.Fatalf("quality: %+v", q)
		}
		// RSSI-low re-reads the station at once, before the next poll.
		if s := want[SignalChanged](t, h.next()); s.To != BandWeak {
			t.Fatalf("signal after CQM: %+v", s)
		}
		_ = h.stop()
	})
}

func TestArmCQM(t *testing.T) {
	for _, arm := range []bool{false, true} {
		synctest.Test(t, func(t *testing.T) {
			f := newFake()
			h := start(t, f, Config{ArmCQM: arm})
			want[Baseline](t, h.next())
			f.Associate(3, "robots", apA, 5180, -60)
			want[Associated](t, h.next())
			got := f.CQM()
			var wantReq []wifiwatchtest.CQMRequest
			if arm {
				wantReq = []wifiwatchtest.CQMRequest{{Index: 3, ThresholdDBm: -82, HysteresisDB: DefaultHysteresis}}
			}
			if d := cmp.Diff(wantReq, got); d != "" {
				t.Fatalf("ArmCQM %v: SET_CQM requests (-want +got):\n%s", arm, d)
			}
			_ = h.stop()
		})
	}
}

func TestOverflowEmitsGapAndResyncs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		h := start(t, f, Config{PollInterval: time.Hour})
		want[Baseline](t, h.next())
		synctest.Wait()
		// The disconnect notification is lost in the overflow.
		f.Update(3, func(i *wifiwatchtest.Interface) { i.SSID, i.BSSID = "", nil })
		f.Overflow()
		g := want[Gap](t, h.next())
		if !errors.Is(g.Err, unix.ENOBUFS) {
			t.Fatalf("gap error %v, want ENOBUFS", g.Err)
		}
		if d := want[Disconnected](t, h.next()); d.FromEvent {
			t.Fatalf("disconnect after resync: %+v, want FromEvent false", d)
		}
		_ = h.stop()
	})
}

func TestMalformedEventIsDroppedWithGap(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.Send("mlme", unix.NL80211_CMD_DISCONNECT, []byte{8, 0, 3}) // truncated attribute
		g := want[Gap](t, h.next())
		if !errors.Is(g.Err, errMalformed) {
			t.Fatalf("gap error %v, want errMalformed", g.Err)
		}
		// The watcher keeps going.
		f.Associate(3, "robots", apA, 5180, -60)
		want[Associated](t, h.next())
		_ = h.stop()
	})
}

func TestNoNL80211Family(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		h := start(t, wifiwatchtest.NewWithoutNL80211(), Config{})
		u := want[Unavailable](t, h.next())
		if !errors.Is(u.Err, ErrUnavailable) || u.Reason == "" {
			t.Fatalf("unavailable: %+v", u)
		}
		if _, ok := <-h.w.Events(); ok {
			t.Fatal("Events not closed after Unavailable")
		}
		err := <-h.done
		if !errors.Is(err, ErrUnavailable) || !errors.Is(err, errNoFamily) {
			t.Fatalf("Run: %v, want ErrUnavailable and errNoFamily", err)
		}
		if s := h.w.State(); !errors.Is(s.Err, ErrUnavailable) {
			t.Fatalf("State.Err: %v", s.Err)
		}
		h.cancel()
	})
}

func TestPermissionDeniedNamesCapability(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		f.FailStation(unix.EPERM)
		h := start(t, f, Config{})
		u := want[Unavailable](t, h.next())
		if !errors.Is(u.Err, unix.EPERM) || !strings.Contains(u.Err.Error(), "CAP_NET_ADMIN") {
			t.Fatalf("unavailable: %v", u.Err)
		}
		<-h.done
		h.cancel()
	})
}

func TestInterfaceRemovedWhileAssociated(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFake()
		f.Associate(3, "robots", apA, 5180, -60)
		h := start(t, f, Config{})
		want[Baseline](t, h.next())
		f.RemoveInterface(3)
		if d := want[Disconnected](t, h.next()); d.FromEvent || d.Iface != "wlan0" {
			t.Fatalf("disconnected: %+v", d)
		}
		synctest.Wait()
		if s := h.w.State(); len(s.Links) != 0 {
			t.Fatalf("State links %+v, want none", s.Links)
		}
		_ = h.stop()
	})
}

func TestWatcherLifecycle(t *testing.T) {
	t.Run("StartCancel", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, newFake(), Config{})
			want[Baseline](t, h.next())
			if err := h.stop(); err != nil {
				t.Fatalf("Run after cancel: %v, want nil", err)
			}
		})
	})
	t.Run("CancelBeforeRun", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			w, err := NewWithDial(Config{}, newFake().Dial)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			cancel()
			if err := w.Run(ctx); err != nil {
				t.Fatalf("Run: %v", err)
			}
			for range w.Events() {
			}
		})
	})
	t.Run("RunTwice", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			h := start(t, newFake(), Config{})
			want[Baseline](t, h.next())
			if err := h.w.Run(t.Context()); !errors.Is(err, ErrRunTwice) {
				t.Fatalf("second Run: %v, want ErrRunTwice", err)
			}
			_ = h.stop()
		})
	})
	t.Run("ConsumerStopsReading", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			f := newFake()
			h := start(t, f, Config{})
			for i := range 3 * eventBuffer {
				if i%2 == 0 {
					f.Associate(3, "robots", apA, 5180, -60)
				} else {
					f.Disconnect(3, 3, false)
				}
				synctest.Wait()
			}
			// Run is blocked sending; cancelling must still end it.
			if err := h.stop(); err != nil {
				t.Fatal(err)
			}
		})
	})
}

// TestRealKernelReportsUnavailable runs the real constructor on this
// machine. On the development VMs (no cfg80211) it must report Wi-Fi
// unavailable cleanly; on a machine with Wi-Fi it must produce a Baseline.
func TestRealKernelReportsUnavailable(t *testing.T) {
	w, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	ev := <-w.Events()
	switch ev := ev.(type) {
	case Unavailable:
		t.Logf("Wi-Fi unavailable: %s (%v)", ev.Reason, ev.Err)
		if err := <-done; !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Run: %v, want ErrUnavailable", err)
		}
	case Baseline:
		t.Logf("this machine has nl80211: %d station interfaces", len(ev.Links))
		cancel()
		for range w.Events() {
		}
		if err := <-done; err != nil {
			t.Fatalf("Run: %v", err)
		}
	default:
		t.Fatalf("first event %T, want Unavailable or Baseline", ev)
	}
}
