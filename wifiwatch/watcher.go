package wifiwatch

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mdlayher/genetlink"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// ErrUnavailable is wrapped by the error [Watcher.Run] returns, and carried
// by the [Unavailable] event, when Wi-Fi cannot be watched on this machine.
// The rest of netmon keeps working without it.
var ErrUnavailable = errors.New("Wi-Fi unavailable")

// ErrRunTwice is returned by a second call to [Watcher.Run].
var ErrRunTwice = errors.New("wifiwatch: Run called twice")

// eventBuffer is the capacity of the Events channel: enough for a burst
// (disconnect, reconnect, signal change on two radios) without blocking the
// loop on a consumer that is briefly busy.
const eventBuffer = 32

// Watcher watches the Wi-Fi station interfaces of the machine through
// nl80211. Create it with [New] (or [NewWithDial]), then call [Watcher.Run]
// once and read [Watcher.Events] until it is closed.
type Watcher struct {
	cfg    Config
	log    *zap.Logger
	dial   func() (*genetlink.Conn, error)
	events chan Event
	ran    atomic.Bool

	mu    sync.Mutex // guards state
	state State
}

// State is a snapshot of what the watcher knows.
type State struct {
	// Ready is true once the first complete read succeeded.
	Ready bool
	// Err is non-nil when Wi-Fi is unavailable (it wraps ErrUnavailable) or
	// when Run ended with an error.
	Err error
	// EventsErr is non-nil while the kernel's nl80211 events cannot be
	// received: the event socket failed and is being re-opened with
	// backoff, or could not be opened yet. The watcher then polls only, and
	// disconnects are seen up to one PollInterval late.
	EventsErr error
	// Gaps counts the [Gap] events since Run began: event socket overflows,
	// receive errors (each episode once, however many re-opens it takes)
	// and notifications that could not be decoded.
	Gaps int
	// Links holds every Wi-Fi station interface, ordered by index.
	Links []Link
}

// New returns a Watcher that talks to the kernel's nl80211 family over
// generic netlink. It does no I/O: a machine without Wi-Fi is reported by
// Run.
func New(cfg Config) (*Watcher, error) {
	return NewWithDial(cfg, func() (*genetlink.Conn, error) { return genetlink.Dial(nil) })
}

// NewWithDial is [New] with the generic netlink connections made by dial
// instead of genetlink.Dial. Run calls dial twice: one connection for
// requests and one for multicast events, because a connection that waits
// for events cannot also carry request/reply exchanges. Tests pass a fake
// nl80211, e.g. [github.com/seed-a56be422/netmon/wifiwatch/wifiwatchtest.Fake.Dial].
func NewWithDial(cfg Config, dial func() (*genetlink.Conn, error)) (*Watcher, error) {
	if dial == nil {
		return nil, errors.New("wifiwatch: NewWithDial: dial is nil, want a function")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Watcher{
		cfg:    cfg,
		log:    cfg.Logger.Named("wifiwatch"),
		dial:   dial,
		events: make(chan Event, eventBuffer),
	}, nil
}

// Events returns the channel of events. The first event is a [Baseline] (or
// an [Unavailable]). The channel is closed when Run returns.
func (w *Watcher) Events() <-chan Event { return w.events }

// State returns a snapshot of the current Wi-Fi state. It is safe to call
// concurrently with Run.
func (w *Watcher) State() State {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.state
	s.Links = slices.Clone(s.Links)
	return s
}

// Run watches until ctx ends, then closes Events and returns. It returns
// nil after ctx ended, an error wrapping ErrUnavailable when Wi-Fi cannot
// be watched (after emitting one [Unavailable] event), an error when the
// first read fails otherwise, and ErrRunTwice when called again. Once the
// [Baseline] is sent, nothing the kernel does ends it: event socket
// errors are [Gap]s, an interface that cannot be read is a [ReadFailed],
// and a failed poll is retried. Every goroutine it starts has ended when
// it returns.
func (w *Watcher) Run(ctx context.Context) error {
	if w.ran.Swap(true) {
		return ErrRunTwice
	}
	defer close(w.events)

	s, err := w.open()
	if err != nil {
		return w.unavailable(ctx, err)
	}
	defer s.close()

	l := &loop{w: w, s: s, ifs: map[int]*ifstate{}}
	if err := l.poll(ctx, time.Now(), true); err != nil {
		if ctx.Err() != nil {
			return nil // cancelled while sending the baseline
		}
		if errors.Is(err, os.ErrPermission) {
			return w.unavailable(ctx, err)
		}
		return w.fail(fmt.Errorf("wifiwatch: first read: %w", err))
	}

	g, gctx := errgroup.WithContext(ctx)
	evc := make(chan rxResult)
	// Closing the socket is the only way to interrupt a blocked Receive;
	// closeEvents also stops receive from opening another one.
	stop := context.AfterFunc(gctx, s.closeEvents)
	defer stop()
	g.Go(func() error { return s.receive(gctx, evc) })
	g.Go(func() error { return l.run(gctx, evc) })
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		return w.fail(err)
	}
	return nil
}

// fail records a fatal error in State and returns it.
func (w *Watcher) fail(err error) error {
	w.mu.Lock()
	w.state.Err = err
	w.mu.Unlock()
	w.log.Error("stopped", zap.Error(err))
	return err
}

// unavailable reports that Wi-Fi cannot be watched, once, and returns the
// error Run returns.
func (w *Watcher) unavailable(ctx context.Context, cause error) error {
	reason := unavailableReason(cause)
	err := fmt.Errorf("wifiwatch: %w: %s: %w", ErrUnavailable, reason, cause)
	w.mu.Lock()
	w.state.Err = err
	w.mu.Unlock()
	w.log.Info("Wi-Fi unavailable: "+reason, zap.Error(cause))
	select {
	case w.events <- Unavailable{Time: time.Now(), Reason: reason, Err: err}:
	case <-ctx.Done():
	}
	return err
}

// unavailableReason says in a few words why Wi-Fi cannot be watched.
func unavailableReason(err error) string {
	switch {
	case errors.Is(err, errNoFamily):
		return "no nl80211 family (kernel without cfg80211, or no Wi-Fi driver loaded)"
	case errors.Is(err, os.ErrPermission):
		return "permission denied: this kernel requires CAP_NET_ADMIN for nl80211 station reads"
	case errors.Is(err, errNoGenetlink):
		return "generic netlink not available"
	}
	return "nl80211 not usable"
}

// privilegeHint names the missing capability for a permission error.
func privilegeHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return " (needs CAP_NET_ADMIN)"
	}
	return ""
}

var (
	errNoFamily    = errors.New("no nl80211 generic netlink family")
	errNoGenetlink = errors.New("cannot open a generic netlink socket")
)

// Backoff between attempts to re-open the event socket after a receive
// error: doubled after each failed attempt, from minBackoff up to
// maxBackoff. A socket that stayed healthy for healthyAfter ends an
// episode, so that the next failure is reported again.
const (
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 30 * time.Second
	healthyAfter = time.Minute
)

// session holds the connections of one Run: the request connection, used
// only by the loop's goroutine, and the event connection, owned by the
// receive goroutine, which replaces it after a receive error.
type session struct {
	w   *Watcher
	r   reader
	log *zap.Logger

	mu     sync.Mutex      // guards ev and closed
	ev     *genetlink.Conn // nil while events are unavailable
	closed bool            // closeEvents was called: open no other
}

// open dials, looks up nl80211 and joins its multicast groups. A failure to
// receive events is not fatal: the watcher then polls only, says so in
// State.EventsErr, and the receive goroutine keeps trying to subscribe.
func (w *Watcher) open() (*session, error) {
	c, err := w.dial()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoGenetlink, err)
	}
	fam, err := c.GetFamily(familyName)
	if err != nil {
		_ = c.Close()
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: %w", errNoFamily, err)
		}
		return nil, fmt.Errorf("wifiwatch: looking up the nl80211 family: %w", err)
	}
	s := &session{w: w, r: reader{c: c, fam: fam}, log: w.log}
	ev, err := w.subscribe(fam)
	if err != nil {
		w.log.Warn("nl80211 events unavailable, polling only; retrying in the background", zap.Error(err))
		w.setEventsErr(err)
	}
	s.ev = ev
	return s, nil
}

// setEventsErr records in State whether events can be received.
func (w *Watcher) setEventsErr(err error) {
	w.mu.Lock()
	w.state.EventsErr = err
	w.mu.Unlock()
}

// subscribe opens the event connection and joins the mlme and config groups.
// Joining needs no privilege: nl80211's groups carry no GENL_MCAST_CAP flag.
func (w *Watcher) subscribe(fam genetlink.Family) (*genetlink.Conn, error) {
	ev, err := w.dial()
	if err != nil {
		return nil, fmt.Errorf("wifiwatch: opening the event socket: %w", err)
	}
	joined := 0
	for _, g := range fam.Groups {
		if g.Name != groupMLME && g.Name != groupCfg {
			continue
		}
		if err := ev.JoinGroup(g.ID); err != nil {
			_ = ev.Close()
			return nil, fmt.Errorf("wifiwatch: joining nl80211 group %q: %w%s", g.Name, err, privilegeHint(err))
		}
		joined++
	}
	if joined == 0 {
		_ = ev.Close()
		return nil, fmt.Errorf("wifiwatch: nl80211 has no %q multicast group", groupMLME)
	}
	// A larger buffer makes ENOBUFS during a burst of events less likely; a
	// failure only means the default size stays.
	if err := ev.SetReadBuffer(1 << 20); err != nil {
		w.log.Debug("cannot enlarge the event socket buffer", zap.Error(err))
	}
	return ev, nil
}

// events returns the current event connection, nil if there is none.
func (s *session) events() *genetlink.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ev
}

// setEvents installs a new event connection, or drops the current one when
// c is nil (closing it). It returns false, closing c, once closeEvents was
// called.
func (s *session) setEvents(c *genetlink.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ev != nil && s.ev != c {
		_ = s.ev.Close()
	}
	if s.closed {
		if c != nil {
			_ = c.Close()
		}
		s.ev = nil
		return false
	}
	s.ev = c
	return true
}

// closeEvents closes the event connection, which interrupts a blocked
// Receive, and makes setEvents refuse any other. It is idempotent.
func (s *session) closeEvents() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.ev != nil {
		_ = s.ev.Close()
		s.ev = nil
	}
}

func (s *session) close() {
	_ = s.r.c.Close()
	s.closeEvents()
}

// rxResult is what the receive goroutine hands to the loop: decoded events,
// and whether events were lost before them. lost is the error to report in
// a Gap; resync without lost asks for a re-read that is not a new gap (a
// re-open within an episode already reported).
type rxResult struct {
	events []event
	lost   error
	resync bool
}

// receive reads nl80211 notifications until ctx ends, and never ends
// because of the socket. An overflow (ENOBUFS) leaves the socket usable: it
// is a gap and reading goes on. Any other receive error, and a failure to
// subscribe at all, closes the socket and opens a new one, with backoff;
// the loop re-reads every interface after each new subscription, because
// what happened in between was not seen. An episode of failures, however
// many retries it takes, is one Gap and one warning; the recovery is
// logged once too.
func (s *session) receive(ctx context.Context, out chan<- rxResult) error {
	send := func(res rxResult) bool {
		select {
		case out <- res:
			return true
		case <-ctx.Done():
			return false
		}
	}
	var (
		backoff  = minBackoff
		failing  bool      // in an episode: the last receive or subscribe failed
		openedAt time.Time // when the current socket was subscribed
		retries  int       // re-open attempts in this episode
	)
	fail := func(err error) rxResult {
		res := rxResult{resync: true}
		if failing {
			retries++
			s.log.Debug("nl80211 event socket still failing", zap.Int("retries", retries), zap.Error(err))
		} else {
			failing, retries = true, 0
			res.lost = err
			s.log.Warn("nl80211 events lost; re-opening the event socket with backoff (polling meanwhile)", zap.Error(err))
		}
		s.w.setEventsErr(err)
		return res
	}
	if s.events() == nil {
		failing = true // open already warned
	}
	for {
		c := s.events()
		if c == nil {
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, maxBackoff)
			fam := s.r.fam
			nc, err := s.w.subscribe(fam)
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				res := fail(fmt.Errorf("wifiwatch: re-subscribing to nl80211 events: %w", err))
				if res.lost != nil && !send(rxResult{lost: res.lost}) {
					return nil
				}
				continue
			}
			if !s.setEvents(nc) {
				return nil
			}
			openedAt = time.Now()
			s.w.setEventsErr(nil)
			s.log.Info("nl80211 events subscribed again; re-reading the Wi-Fi state", zap.Int("retries", retries))
			// The state is re-read after the new subscription, so that
			// nothing between the failure and now is missed.
			if !send(rxResult{resync: true}) {
				return nil
			}
			c = nc
		}
		msgs, _, err := c.Receive()
		if ctx.Err() != nil {
			return nil
		}
		var res rxResult
		switch {
		case err == nil:
			failing, backoff = false, minBackoff
		case errors.Is(err, syscall.ENOBUFS):
			res.lost = fmt.Errorf("wifiwatch: nl80211 event socket overflowed: %w", err)
		default:
			if failing && time.Since(openedAt) >= healthyAfter {
				failing, backoff = false, minBackoff // a new episode
			}
			res = fail(fmt.Errorf("wifiwatch: receiving nl80211 events: %w", err))
			res.resync = false // the re-read follows the new subscription
			s.setEvents(nil)
			if res.lost == nil {
				continue
			}
		}
		for _, m := range msgs {
			// The socket is only a member of nl80211 groups, so every message
			// is an nl80211 notification; the header type is not checked.
			ev, err := parseEvent(m.Header.Command, m.Data)
			if err != nil {
				// A message we cannot decode is dropped, and the loop
				// re-reads the state so that nothing it said is missed.
				s.log.Warn("dropping nl80211 event", zap.Error(err))
				res.lost = err
				continue
			}
			res.events = append(res.events, ev)
		}
		if len(res.events) == 0 && res.lost == nil {
			continue
		}
		if !send(res) {
			return nil
		}
	}
}

// sleep waits for d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// ifstate is the loop's record of one interface.
type ifstate struct {
	link  Link
	probe bool // a CONNECT or ROAM was seen: read the station even without SSID
	seen  bool // listed by the last interface dump
	// The network lost at the last disconnect, to recognise a roam through a
	// brief disconnect.
	lostAt    time.Time
	lostSSID  string
	lostBSSID net.HardwareAddr
	// goneAt is when a read first found the association gone with no
	// notification saying so. cfg80211 clears what GET_INTERFACE and
	// GET_STATION report just before it sends the DISCONNECT
	// (__cfg80211_disconnected in net/wireless/sme.c), so a read can win
	// that race; the notification, with its reason code, is then waited
	// for until the next read, which reports the loss without a reason.
	// The Wi-Fi lab saw a beacon loss reported with reason 0 this way.
	goneAt time.Time
	// pollAhead is set when a read found the current association before
	// any CONNECT or ROAM notification announced it (at the baseline, or a
	// change polling saw first). Until that notification arrives, the event
	// socket may still hold notifications older than the association,
	// such as the DISCONNECT of the previous one.
	pollAhead bool
	// pending is a disconnect notification received while pollAhead: it is
	// applied only if a re-read confirms it (see loop.handle).
	pending *pendingLoss
	errKey  string // the error of the last failed read of this interface, "" if none
}

// pendingLoss is a disconnect notification waiting for its confirmation.
type pendingLoss struct {
	reason uint16
	byAP   bool
}

// loop owns the interface state; only its goroutine touches ifs.
type loop struct {
	w   *Watcher
	s   *session
	ifs map[int]*ifstate
	out []Event // events of the current step, sent after the step
	// failedPolls counts consecutive polls that failed as a whole (the
	// interface dump); the request connection is re-opened after a few.
	failedPolls int
	// resync is set during the read after lost notifications (see
	// ifstate.goneAt).
	resync bool
}

// reopenAfter is how many consecutive failed polls make the loop re-open its
// request connection, in case the connection itself is broken (a reply
// left in it by an interrupted dump, for example).
const reopenAfter = 3

// run polls every PollInterval and handles events until ctx ends.
func (l *loop) run(ctx context.Context, evc <-chan rxResult) error {
	t := time.NewTicker(l.w.cfg.PollInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			if err := l.repoll(ctx, now, "poll failed"); err != nil {
				return err
			}
		case rx := <-evc:
			now := time.Now()
			repoll := rx.resync
			for _, ev := range rx.events {
				repoll = l.handle(now, ev) || repoll
			}
			if rx.lost != nil {
				l.out = append(l.out, Gap{Time: now, Err: rx.lost})
				l.w.mu.Lock()
				l.w.state.Gaps++
				l.w.mu.Unlock()
				repoll = true
			}
			if err := l.flush(ctx); err != nil {
				return nil
			}
			if repoll {
				// After lost notifications a loss the read finds is
				// reported at once: no notification is on its way.
				l.resync = rx.lost != nil || rx.resync
				err := l.repoll(ctx, now, "poll after event failed")
				l.resync = false
				if err != nil {
					return err
				}
			}
		}
	}
}

// repoll polls outside the baseline. A failed poll is retried at the next
// tick, and the state is left as it was rather than guessed: once the
// baseline was read, no error of the kernel ends the watcher (the
// baseline's permission error is what says Wi-Fi is unavailable).
func (l *loop) repoll(ctx context.Context, now time.Time, what string) error {
	err := l.poll(ctx, now, false)
	switch {
	case err == nil:
		if l.failedPolls > 0 {
			l.w.log.Info("polls work again", zap.Int("failed", l.failedPolls))
			l.failedPolls = 0
		}
		return nil
	case ctx.Err() != nil:
		return nil
	}
	l.failedPolls++
	if l.failedPolls == 1 {
		l.w.log.Warn(what, zap.Error(err))
	} else {
		l.w.log.Debug(what, zap.Int("consecutive", l.failedPolls), zap.Error(err))
	}
	if l.failedPolls%reopenAfter == 0 {
		l.reopenReader()
	}
	return nil
}

// reopenReader replaces the request connection with a new one. On failure
// the old one stays, and the next failed polls try again.
func (l *loop) reopenReader() {
	c, err := l.w.dial()
	if err != nil {
		l.w.log.Debug("re-opening the nl80211 request socket failed", zap.Error(err))
		return
	}
	fam, err := c.GetFamily(familyName)
	if err != nil {
		_ = c.Close()
		l.w.log.Debug("re-opening the nl80211 request socket failed", zap.Error(err))
		return
	}
	_ = l.s.r.c.Close()
	l.s.r = reader{c: c, fam: fam}
}

// flush publishes the state and sends the pending events in order.
func (l *loop) flush(ctx context.Context) error {
	l.publish()
	for _, ev := range l.out {
		l.w.log.Debug("event", zap.String("event", ev.Kind()), zap.Any("detail", ev))
		select {
		case l.w.events <- ev:
		case <-ctx.Done():
			l.out = l.out[:0]
			return ctx.Err()
		}
	}
	l.out = l.out[:0]
	return nil
}

// publish copies the interface records into the watcher's State.
func (l *loop) publish() {
	links := make([]Link, 0, len(l.ifs))
	for _, st := range l.ifs {
		links = append(links, st.link)
	}
	slices.SortFunc(links, func(a, b Link) int { return a.Index - b.Index })
	l.w.mu.Lock()
	l.w.state.Ready = true
	l.w.state.Links = links
	l.w.mu.Unlock()
}

// handle applies one kernel event and reports whether the state must be
// re-read now (the event says something changed but not everything).
func (l *loop) handle(now time.Time, ev event) bool {
	st := l.ifs[ev.index]
	switch ev.cmd {
	case cmdDisconnect, cmdDeauthenticate, cmdDisassociate:
		if st == nil || !st.link.Associated {
			// Unknown interface, or the second of a deauth + disconnect
			// pair: the first one already reported the loss.
			return st == nil
		}
		if ev.frameBSSID != nil && st.link.BSSID != nil && string(ev.frameBSSID) != string(st.link.BSSID) {
			return false // a frame about another AP (e.g. during a roam attempt)
		}
		if st.pollAhead {
			// A read saw this association before its CONNECT arrived, so
			// this notification may be older than it: the DISCONNECT of the
			// association before, queued while the poll ran. Notifications
			// carry no sequence and DISCONNECT no BSSID, so re-read: cfg80211
			// clears the SSID it reports in GET_INTERFACE before it sends a
			// DISCONNECT (__cfg80211_disconnected in net/wireless/sme.c), so
			// the re-read confirms a current disconnect. The first of a
			// deauth + disconnect pair keeps its frame's details.
			if st.pending == nil {
				st.pending = &pendingLoss{reason: ev.reason, byAP: ev.byAP}
			}
			return true
		}
		l.disconnect(now, st, ev.reason, ev.byAP, true)
		return false
	case cmdConnect:
		if ev.status != 0 || ev.timedOut {
			cf := ConnectFailed{Time: now, Index: ev.index, BSSID: ev.mac, Status: ev.status, TimedOut: ev.timedOut}
			if st != nil {
				cf.Iface = st.link.Iface
			}
			l.out = append(l.out, cf)
			return false
		}
		if st != nil {
			st.probe, st.pollAhead = true, false
		}
		return true
	case cmdNotifyCQM:
		if ev.quality == 0 {
			return false
		}
		q := Quality{Time: now, Index: ev.index, Type: ev.quality, LevelDBm: ev.levelDBm, Packets: ev.lostPkts}
		if st != nil {
			q.Iface = st.link.Iface
		}
		l.out = append(l.out, q)
		return ev.quality == QualityRSSILow || ev.quality == QualityRSSIHigh
	case cmdRoam:
		if st != nil {
			st.probe, st.pollAhead = true, false
		}
		return true
	case cmdPortAuthorized, cmdChSwitchNotify:
		return st != nil
	case cmdNewWiphy, cmdDelWiphy, cmdNewInterface, cmdDelInterface, cmdSetInterface:
		// A radio or interface came, went or changed type (in the config
		// group). The re-read sorts out which interfaces are stations;
		// those of a wdev without a netdev are skipped there.
		return true
	}
	return false
}

// disconnect marks st as no longer associated and queues a Disconnected.
func (l *loop) disconnect(now time.Time, st *ifstate, reason uint16, byAP, fromEvent bool) {
	old := st.link
	l.out = append(l.out, Disconnected{
		Time: now, Index: old.Index, Iface: old.Iface, SSID: old.SSID, BSSID: old.BSSID,
		Reason: reason, ByAP: byAP, FromEvent: fromEvent, SignalDBm: signalOf(old),
	})
	st.lostAt, st.lostSSID, st.lostBSSID = now, old.SSID, old.BSSID
	st.probe, st.pollAhead, st.pending, st.goneAt = false, false, nil, time.Time{}
	st.link = Link{Index: old.Index, Iface: old.Iface, MAC: old.MAC, Since: now, LastRoam: old.LastRoam, Err: old.Err}
}

// signalOf is the signal a band is computed from: the average when the
// driver reports one, which smooths single frames.
func signalOf(l Link) int {
	if l.SignalAvgDBm != 0 {
		return l.SignalAvgDBm
	}
	return l.SignalDBm
}

// poll re-reads every interface and queues the events its changes imply.
// With baseline set it queues a Baseline instead of edges. An error
// reading one interface is that interface's (see readFailed); poll fails
// only when the interface dump fails, or on a permission error at the
// baseline.
func (l *loop) poll(ctx context.Context, now time.Time, baseline bool) error {
	ifis, err := l.s.r.interfaces()
	if err != nil {
		return err
	}
	for _, st := range l.ifs {
		st.seen = false
	}
	for _, ifi := range ifis {
		st := l.ifs[ifi.index]
		if st == nil {
			st = &ifstate{link: Link{Index: ifi.index, Since: now}}
			l.ifs[ifi.index] = st
		}
		st.seen = true
		st.link.Iface, st.link.MAC = ifi.name, ifi.mac
		if err := l.pollStation(now, st, ifi, baseline); err != nil {
			if baseline && errors.Is(err, os.ErrPermission) {
				return err // Wi-Fi unavailable: a kernel that wants CAP_NET_ADMIN
			}
			l.readFailed(now, st, err)
			continue
		}
		if st.errKey != "" {
			l.w.log.Info("reading the interface works again", zap.String("iface", st.link.Iface))
			st.errKey, st.link.Err = "", nil
		}
	}
	for idx, st := range l.ifs {
		if !st.seen {
			if st.link.Associated {
				l.disconnect(now, st, 0, false, false)
			}
			delete(l.ifs, idx)
		}
	}
	if baseline {
		l.out = slices.DeleteFunc(l.out, func(ev Event) bool { _, ok := ev.(ReadFailed); return !ok })
		l.publish()
		l.out = slices.Insert(l.out, 0, Event(Baseline{Time: now, Links: l.w.State().Links}))
	}
	return l.flush(ctx)
}

// readFailed records that reading one interface failed. The interface keeps
// the state it had (rather than a guess), the other interfaces are read as
// usual, and a [ReadFailed] is queued once per distinct error, not at every
// poll: a fullmac driver without GET_STATION support fails the same way
// forever.
func (l *loop) readFailed(now time.Time, st *ifstate, err error) {
	if p := st.pending; p != nil && st.link.Associated {
		// The read that was to confirm a disconnect notification failed:
		// the notification is the best knowledge there is.
		l.disconnect(now, st, p.reason, p.byAP, true)
	}
	st.link.Err = err
	st.probe, st.pending = false, nil
	if key := err.Error(); key != st.errKey {
		st.errKey = key
		l.w.log.Warn("reading a Wi-Fi interface failed; the others are still read", zap.String("iface", st.link.Iface), zap.Error(err))
		l.out = append(l.out, ReadFailed{Time: now, Index: st.link.Index, Iface: st.link.Iface, Err: err})
	}
}

// pollStation reads the station of one interface when it may be associated.
// After the baseline, an interface that the dump shows without SSID and
// channel, and that had no CONNECT or ROAM since, is not associated (it is
// down, or idle): it costs no further request. The baseline reads every
// station once, because kernels before NL80211_ATTR_SSID in GET_INTERFACE
// would otherwise hide an existing association.
func (l *loop) pollStation(now time.Time, st *ifstate, ifi ifaceInfo, baseline bool) error {
	if ifi.ssid == "" && ifi.freq == 0 && !st.link.Associated && !st.probe && !baseline && st.pending == nil {
		return nil
	}
	si, ok, err := l.s.r.station(ifi.index)
	if err != nil {
		if errors.Is(err, syscall.ENETDOWN) || errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENOLINK) {
			ok = false // the interface went down between the two requests
		} else {
			return err
		}
	}
	if p := st.pending; p != nil {
		st.pending = nil
		// A disconnect notification that arrived while the poll was ahead:
		// applied when this read confirms it (no SSID any more, or no
		// access point), ignored when the association it would end is
		// still there.
		if st.link.Associated && (!ok || ifi.ssid == "") {
			l.disconnect(now, st, p.reason, p.byAP, true)
			return nil
		}
		if ok {
			l.w.log.Debug("ignoring a disconnect notification older than the association", zap.String("iface", st.link.Iface))
		}
	}
	if !ok {
		switch {
		case st.link.Associated && st.goneAt.IsZero() && !baseline && !l.resync:
			st.goneAt = now // the notification may be on its way
		case st.link.Associated:
			l.disconnect(now, st, 0, false, false)
		}
		st.probe = false
		return nil
	}
	st.goneAt = time.Time{}
	announced := st.probe
	st.probe = false
	old := st.link
	nl := old
	nl.Err = nil
	nl.BSSID = si.bssid
	nl.SSID, nl.FreqMHz = ifi.ssid, ifi.freq
	if nl.SSID == "" && string(old.BSSID) == string(si.bssid) {
		nl.SSID = old.SSID // a dump without SSID: keep what GET_SCAN said
	}
	if nl.SSID == "" || (nl.FreqMHz == 0 && string(old.BSSID) != string(si.bssid)) {
		// Older kernels omit the SSID from GET_INTERFACE; the scan entry of
		// the BSS has it. Read it only when the BSSID changed.
		b, found, err := l.s.r.bss(ifi.index, si.bssid)
		if err != nil {
			l.w.log.Debug("reading the BSS failed", zap.Int("ifindex", ifi.index), zap.Error(err))
		} else if found {
			nl.SSID = b.ssid
			if nl.FreqMHz == 0 {
				nl.FreqMHz = b.freq
			}
		}
	}
	nl.Associated = true
	nl.SignalDBm, nl.SignalAvgDBm = si.signal, si.signalAvg
	nl.TxBitrate, nl.RxBitrate = si.txBitrate, si.rxBitrate
	nl.Connected = si.connected
	nl.BeaconLoss, nl.TxRetries, nl.TxFailed = si.beaconLoss, si.txRetries, si.txFailed
	if sig := signalOf(nl); sig != 0 {
		nl.Band = l.w.cfg.Bands.Classify(sig, old.Band, l.w.cfg.Hysteresis)
	} else {
		nl.Band = BandUnknown
	}

	switch {
	case !old.Associated:
		nl.Since = now
		roam := !st.lostAt.IsZero() && now.Sub(st.lostAt) <= l.w.cfg.RoamWindow &&
			st.lostSSID == nl.SSID && nl.SSID != "" && string(st.lostBSSID) != string(nl.BSSID)
		if roam {
			nl.LastRoam = now
		}
		st.link = nl
		st.pollAhead = baseline || !announced
		if baseline {
			break
		}
		if roam {
			l.out = append(l.out, Roamed{Time: now, Index: nl.Index, Iface: nl.Iface, SSID: nl.SSID,
				From: st.lostBSSID, To: nl.BSSID, Downtime: now.Sub(st.lostAt), Link: nl})
		} else {
			l.out = append(l.out, Associated{Time: now, Link: nl})
		}
		st.lostAt = time.Time{}
		if l.w.cfg.ArmCQM {
			l.armCQM(nl)
		}
	case string(old.BSSID) != string(nl.BSSID):
		nl.LastRoam = now
		st.link = nl
		st.pollAhead = !announced
		l.out = append(l.out, Roamed{Time: now, Index: nl.Index, Iface: nl.Iface, SSID: nl.SSID,
			From: old.BSSID, To: nl.BSSID, Link: nl})
	default:
		st.link = nl
		if nl.Band != old.Band && nl.Band != BandUnknown {
			l.out = append(l.out, SignalChanged{Time: now, Index: nl.Index, Iface: nl.Iface,
				From: old.Band, To: nl.Band, SignalDBm: signalOf(nl)})
		}
	}
	return nil
}

// armCQM configures the kernel's RSSI threshold at the weak edge. Failure
// is logged, not fatal: polling still sees the signal.
func (l *loop) armCQM(lk Link) {
	err := l.s.r.setCQM(lk.Index, l.w.cfg.Bands.Weak, l.w.cfg.Hysteresis)
	if err != nil {
		l.w.log.Warn("arming CQM failed", zap.String("iface", lk.Iface), zap.Error(err))
	}
}
