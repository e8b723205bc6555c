package netmon

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// TestFlapDamping drives a link that bounces every 300 ms (50 ms down,
// 250 ms up) in a synctest bubble, the Monitor's timer played by advance.
// With a fixed 200 ms window the Gate would reopen 50 ms before every drop
// and release every held sender into it. Each loss within Recent of the
// last doubles the window, so after the first bounce the Gate stays
// closed across them; once the link holds, it opens after the grown
// window; after the link has held long enough the window is back at its
// base.
func TestFlapDamping(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const base = 200 * time.Millisecond
		m := newTestMonitor(t, Options{Stabilize: base, Recent: 10 * time.Second})
		b := baselineUp()
		b.At = time.Now()
		m.apply(b)
		wantStatus(t, m, Up, ReasonNone)

		down := linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
		lose := func() {
			m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged, Link: down, Prev: upLink(2, "wlan0")})
		}
		back := func() {
			m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged, Link: upLink(2, "wlan0"), Prev: down})
		}
		// advance lets d pass, evaluating at each deadline the rule
		// noted, as the Monitor's loop does.
		advance := func(d time.Duration) {
			end := time.Now().Add(d)
			for {
				m.mu.Lock()
				w := m.wakeAt
				m.mu.Unlock()
				if w.IsZero() || w.After(end) {
					break
				}
				time.Sleep(time.Until(w))
				m.mu.Lock()
				m.evaluateLocked(time.Now())
				m.mu.Unlock()
			}
			time.Sleep(time.Until(end))
		}
		window := func() time.Duration {
			m.mu.Lock()
			defer m.mu.Unlock()
			return m.damp.window
		}

		want := base
		for i := range 6 {
			lose()
			if m.gate.State().Open {
				t.Fatalf("bounce %d: gate open after the loss", i)
			}
			if got := window(); got != want {
				t.Fatalf("bounce %d: window %v, want %v", i, got, want)
			}
			want = min(2*want, 16*base)
			advance(50 * time.Millisecond)
			back()
			advance(250 * time.Millisecond)
			if open := m.gate.State().Open; open != (i == 0) {
				t.Fatalf("bounce %d: gate open = %v just before the next drop (window %v); want open only after the first", i, open, window())
			}
		}
		if n := len(m.Flaps()); n != 1 {
			t.Fatalf("%d outages ended while the link bounced, want only the first", n)
		}
		lose()
		// The link comes back and holds: the Gate opens once the grown
		// window (the cap, 3.2 s) has passed since the return.
		grown := window()
		if grown != 16*base {
			t.Fatalf("window after 7 drops = %v, want the cap %v", grown, 16*base)
		}
		advance(50 * time.Millisecond)
		back()
		advance(grown - time.Millisecond)
		if m.gate.State().Open {
			t.Fatal("gate open before the grown window passed")
		}
		advance(time.Millisecond)
		wantStatus(t, m, Up, ReasonNone)
		fl := m.Flaps()
		if len(fl) != 2 || fl[0].Stabilize != base || fl[1].Stabilize != grown {
			t.Fatalf("flaps %+v, want the first stabilised for %v and the last for %v", fl, base, grown)
		}

		// It holds for 40 s: four Recent windows halve 3.2 s back to the
		// base, and the next single drop waits the base window only.
		advance(40 * time.Second)
		lose()
		advance(time.Second)
		back()
		advance(base)
		wantStatus(t, m, Up, ReasonNone)
		if fl := m.Flaps(); len(fl) != 3 || fl[2].Stabilize != base {
			t.Fatalf("flaps %+v, want the third one stabilised for the base %v", fl, base)
		}
	})
}

// TestReturnReleasesBehindAProbe: by default a return opens the Gate at
// once (no stabilisation window: the flap says 0), and the held Do calls
// go behind a probe: the oldest sends first, the others wait for its
// success (or DefaultProbeTimeout), so that a return cut short takes one
// sender into the next drop, not all of them.
func TestReturnReleasesBehindAProbe(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := New(Options{Wifi: "off", DHCP: "off", SockErrors: "off"}) // the defaults
		if err != nil {
			t.Fatal(err)
		}
		m.lookup = m.mainTableLookup
		defer m.gate.Shutdown()
		b := baselineUp()
		b.At = time.Now()
		m.apply(b)
		down := linkwatch.Link{Index: 2, Name: "wlan0", AdminUp: true, Oper: linkwatch.OperDown}
		m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged, Link: down, Prev: upLink(2, "wlan0")})
		wantStatus(t, m, Down, ReasonCarrierLost)

		const n = 3
		started := make(chan int, n)
		reply := make(chan error, n)
		done := make(chan error, n)
		for i := range n {
			go func() {
				done <- m.Gate().Do(context.Background(), func(context.Context) error {
					started <- i
					return <-reply
				})
			}()
			synctest.Wait()
		}
		time.Sleep(time.Second) // the outage lasts a second
		m.apply(linkwatch.LinkEvent{At: time.Now(), Op: linkwatch.LinkChanged, Link: upLink(2, "wlan0"), Prev: down})
		wantStatus(t, m, Up, ReasonNone)
		if fl := m.Flaps(); len(fl) != 1 || fl[0].Stabilize != 0 || fl[0].Duration != time.Second {
			t.Fatalf("flaps %+v, want one of 1s that waited no stabilisation window", fl)
		}
		synctest.Wait()
		if k := len(started); k != 1 || <-started != 0 {
			t.Fatalf("%d sends began at the return, want only the oldest call's", k)
		}
		time.Sleep(DefaultProbeTimeout - time.Millisecond)
		synctest.Wait()
		if len(started) != 0 {
			t.Fatal("the other calls went before the probe's success or its timeout")
		}
		for range n {
			reply <- nil
		}
		synctest.Wait()
		if len(started) != n-1 {
			t.Fatalf("%d more sends after the probe's success, want %d", len(started), n-1)
		}
		for range n {
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	})
}
