package dhcpwatch

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// Address flags the tracker reads (IFA_F_* in linux/if_addr.h).
const (
	ifaFTemporary = 0x01
	ifaFPermanent = 0x80
)

// Defaults for the zero [Config].
const (
	DefaultBlipWindow = 10 * time.Second
	DefaultSlack      = 3 * time.Second
)

// Config configures a [Tracker]. The zero value tracks IPv4 leases with the
// defaults below.
type Config struct {
	// BlipWindow is how long a leased address or a default route may be
	// gone and still count as one renewal [Blip] rather than an expiry.
	// Zero means [DefaultBlipWindow]; negative values are invalid.
	BlipWindow time.Duration
	// Slack is the tolerance when comparing times from different sources:
	// the kernel reports lifetimes in whole seconds and clients write
	// files a moment after they configure the address. Zero means
	// [DefaultSlack].
	Slack time.Duration
	// IPv6 also tracks global, non-temporary IPv6 addresses with finite
	// lifetimes (SLAAC, DHCPv6) the same way. False (the zero value)
	// tracks IPv4 only: router advertisements refresh SLAAC lifetimes
	// every few minutes, which would read as a stream of renewals.
	IPv6 bool
}

// Validate reports the first field that holds an invalid value.
func (c Config) Validate() error {
	if c.BlipWindow < 0 {
		return fmt.Errorf("dhcpwatch: Config.BlipWindow %v: want >= 0", c.BlipWindow)
	}
	if c.Slack < 0 {
		return fmt.Errorf("dhcpwatch: Config.Slack %v: want >= 0", c.Slack)
	}
	return nil
}

// key identifies one tracked lease: an interface and an address family.
type key struct {
	index int
	v6    bool
}

// entry is the tracker's record of one lease.
type entry struct {
	key
	iface string

	// The kernel's address, valid when hasAddr. kStart and kLen are when
	// its lifetime was last set and to what; kPref is the preferred
	// lifetime then. When kGuess is set, the tracker started during the
	// lease and they are instead its first sight of the address and the
	// lifetimes left then: not the lease's start and length, but what T1
	// and T2 are estimated from (see viewAt).
	addr          linkwatch.Addr
	hasAddr       bool
	kStart        time.Time
	kLen, kPref   time.Duration
	kGuess        bool
	phase         Phase
	file          Lease // a file-only lease (source), valid when fromFile
	fromFile      bool
	episode       time.Time                  // start of a blip episode; zero when none
	addrGone      time.Time                  // when the address vanished in this episode
	addrBack      time.Time                  // when it returned
	routesGone    map[netip.Prefix]time.Time // default routes missing now
	routeWentAway bool                       // a route vanished during this episode
	// reconnect is set while the address is gone because it was removed
	// while the link was disconnected (no carrier, or Wi-Fi not
	// associated): clients flush addresses on a disconnect and add them
	// again on the reconnect, which is no DHCP blip. addrGone says since
	// when; the lease then ends only at its expiry.
	reconnect bool
	// spare holds the other finite addresses on the same key: when the
	// lease's address goes, the freshest of them is the new lease
	// (systemd-networkd adds a new address before it removes the old one).
	spare map[netip.Prefix]spareAddr
}

// spareAddr is a finite address beside the lease's own. guess is set when
// it was first seen in a full read, whose lifetimes are those left then
// (see kGuess), not when it was added.
type spareAddr struct {
	a     linkwatch.Addr
	guess bool
}

// live reports whether the lease is in force.
func (e *entry) live() bool {
	return e.phase == PhaseBound || e.phase == PhaseRenewing || e.phase == PhaseRebinding
}

// Tracker infers lease state from linkwatch events and lease files. It is
// not safe for concurrent use: one goroutine (the Monitor's event loop)
// owns it. It never reads the clock; every method takes the time.
type Tracker struct {
	cfg     Config
	now     time.Time
	links   map[int]string
	entries map[key]*entry
	// noCarrier and noAssoc hold the interfaces without carrier (from
	// linkwatch) and those [Tracker.SetConnected] said are disconnected:
	// an address removed on them is a reconnect, not a blip.
	noCarrier, noAssoc map[int]bool
	// onLink holds every address on each interface, finite or not: a
	// lease file is believed only for an address the kernel shows.
	onLink map[int]map[netip.Addr]bool
	// files holds the latest lease per (file, interface) from
	// [Tracker.ApplyLease].
	files map[fileKey]Lease
}

type fileKey struct {
	source string
	iface  string
	index  int
}

// NewTracker returns a tracker with no state. Invalid fields of cfg are
// replaced by their defaults; call [Config.Validate] first to reject them.
func NewTracker(cfg Config) *Tracker {
	if cfg.BlipWindow <= 0 {
		cfg.BlipWindow = DefaultBlipWindow
	}
	if cfg.Slack <= 0 {
		cfg.Slack = DefaultSlack
	}
	return &Tracker{
		cfg:       cfg,
		links:     map[int]string{},
		entries:   map[key]*entry{},
		files:     map[fileKey]Lease{},
		noCarrier: map[int]bool{},
		noAssoc:   map[int]bool{},
		onLink:    map[int]map[netip.Addr]bool{},
	}
}

// SetConnected records whether the interface index is connected above
// its carrier: the Monitor passes Wi-Fi association here (false after a
// disconnect, true once associated again). While it is not, or the link
// has no carrier, an address that goes away is counted as a reconnect
// (clients flush addresses on a disconnect) rather than a renewal [Blip],
// and routes that come and go are not blips either. It causes no events.
func (t *Tracker) SetConnected(index int, connected bool) {
	if connected {
		delete(t.noAssoc, index)
	} else {
		t.noAssoc[index] = true
	}
}

// noteOnLink records that the kernel shows a.
func (t *Tracker) noteOnLink(a linkwatch.Addr) {
	m := t.onLink[a.Index]
	if m == nil {
		m = map[netip.Addr]bool{}
		t.onLink[a.Index] = m
	}
	m[a.Prefix.Addr()] = true
}

// disconnected reports whether the interface is without carrier or not
// associated.
func (t *Tracker) disconnected(index int) bool { return t.noCarrier[index] || t.noAssoc[index] }

// setLink records a link's name and carrier.
func (t *Tracker) setLink(l linkwatch.Link) {
	t.links[l.Index] = l.Name
	if l.Carrier {
		delete(t.noCarrier, l.Index)
	} else {
		t.noCarrier[l.Index] = true
	}
}

// Apply folds one linkwatch event into the state and returns the lease
// events it causes, after those that time passing up to now causes (see
// [Tracker.Advance]). A [linkwatch.Baseline] sets the state silently: the
// first state is never reported as an edge.
func (t *Tracker) Apply(now time.Time, ev linkwatch.Event) []Event {
	at := ev.Time()
	if at.IsZero() || at.After(now) {
		at = now
	}
	// Deadlines that passed before the event are reported before it, and
	// those that passed since, after it, so that a late-read renewal
	// is not preceded by a "renewing" it made untrue.
	out := t.Advance(at)
	switch ev := ev.(type) {
	case linkwatch.Baseline:
		t.reset(ev.State)
	case linkwatch.GapEvent:
		out = append(out, t.resync(at, ev.State)...)
	case linkwatch.LinkEvent:
		if ev.Op == linkwatch.LinkRemoved {
			delete(t.links, ev.Link.Index)
			delete(t.noCarrier, ev.Link.Index)
			delete(t.noAssoc, ev.Link.Index)
			delete(t.onLink, ev.Link.Index)
			for k := range t.entries {
				if k.index == ev.Link.Index {
					delete(t.entries, k)
				}
			}
			break
		}
		t.setLink(ev.Link)
		for _, e := range t.entries {
			if e.index == ev.Link.Index {
				e.iface = ev.Link.Name
			}
		}
		// A link that appears may be the one a file lease waits for.
		out = append(out, t.adoptFiles(at)...)
	case linkwatch.AddrEvent:
		if ev.Op == linkwatch.AddrRemoved {
			delete(t.onLink[ev.Addr.Index], ev.Addr.Prefix.Addr())
			out = append(out, t.addrRemoved(at, ev.Addr)...)
		} else {
			t.noteOnLink(ev.Addr)
			out = append(out, t.addrPresent(at, ev.Addr)...)
			// The address a file lease names may have arrived.
			out = append(out, t.adoptFiles(at)...)
		}
	case linkwatch.RouteEvent:
		out = append(out, t.route(at, ev)...)
	}
	return append(out, t.Advance(now)...)
}

// ApplyLease folds a lease read from a file into the state and returns the
// events it causes, after those of [Tracker.Advance] up to now. A file
// lease enriches a kernel lease with the same address; it drives the phases
// itself only where the kernel shows no address with a finite lifetime.
//
// A removal ([Lease.Removed]: the file was deleted or renamed away, as
// dhcpcd and systemd-networkd do on release) forgets every lease of that
// file: a kernel lease loses the server and router it gave, and a lease
// the file alone drove ends with an [Expired] event.
func (t *Tracker) ApplyLease(now time.Time, l Lease) []Event {
	out := t.Advance(now)
	if l.Removed() {
		for k := range t.files {
			if k.source == l.Source {
				delete(t.files, k)
			}
		}
		for _, e := range t.sorted() {
			if e.fromFile && !e.hasAddr && e.file.Source == l.Source {
				if e.live() {
					out = append(out, t.expire(now, e)...)
				}
				e.fromFile = false
			}
		}
		return out
	}
	t.files[fileKey{l.Source, l.Iface, l.Index}] = l
	return append(out, t.adoptFiles(now)...)
}

// Advance returns the events due to time passing up to now: T1 and T2 that
// passed without a renewal, file-only leases that ran out, and blip windows
// that closed with the address still gone (an expiry). Times earlier than
// the latest call are treated as that time.
func (t *Tracker) Advance(now time.Time) []Event {
	if now.Before(t.now) {
		now = t.now
	}
	var out []Event
	for _, e := range t.sorted() {
		out = append(out, t.step(e, now)...)
	}
	t.now = now
	slices.SortStableFunc(out, func(a, b Event) int { return a.At.Compare(b.At) })
	return out
}

// NextDeadline returns when [Tracker.Advance] next has something to do,
// and false when nothing is pending.
func (t *Tracker) NextDeadline() (time.Time, bool) {
	var best time.Time
	for _, e := range t.entries {
		if d, _, ok := t.due(e); ok && (best.IsZero() || d.Before(best)) {
			best = d
		}
	}
	return best, !best.IsZero()
}

// State returns every tracked lease, sorted by ifindex with IPv4 first.
// TimeLeft is computed at the time of the latest call.
func (t *Tracker) State() []LeaseState {
	var out []LeaseState
	for _, e := range t.sorted() {
		out = append(out, t.view(e))
	}
	return out
}

func (t *Tracker) sorted() []*entry {
	es := make([]*entry, 0, len(t.entries))
	for _, e := range t.entries {
		es = append(es, e)
	}
	slices.SortFunc(es, func(a, b *entry) int {
		if c := cmp.Compare(a.index, b.index); c != 0 {
			return c
		}
		if a.v6 == b.v6 {
			return 0
		}
		if a.v6 {
			return 1
		}
		return -1
	})
	return es
}

// tracked reports whether a is an address whose lifetime tells of a lease.
func (t *Tracker) tracked(a linkwatch.Addr) bool {
	if !a.Prefix.IsValid() || a.Flags&ifaFPermanent != 0 || a.Valid == linkwatch.Forever || a.Valid <= 0 {
		return false
	}
	if a.Prefix.Addr().Is4() {
		return true
	}
	return t.cfg.IPv6 && a.Scope == 0 && a.Flags&ifaFTemporary == 0 && !a.Prefix.Addr().IsLinkLocalUnicast()
}

func keyOf(index int, a netip.Addr) key { return key{index: index, v6: !a.Is4()} }

func (t *Tracker) entry(k key) *entry {
	e := t.entries[k]
	if e == nil {
		e = &entry{key: k, iface: t.links[k.index]}
		t.entries[k] = e
	}
	return e
}

// readLinks takes the links' names and carriers, and every address, from
// a full read.
func (t *Tracker) readLinks(s linkwatch.State) {
	clear(t.noCarrier)
	clear(t.onLink)
	for _, l := range s.Links {
		t.setLink(l)
	}
	for _, a := range s.Addrs {
		t.noteOnLink(a)
	}
}

// reset replaces the state with a baseline, without events.
func (t *Tracker) reset(s linkwatch.State) {
	clear(t.entries)
	clear(t.links)
	t.readLinks(s)
	for _, a := range s.Addrs {
		if !t.tracked(a) {
			continue
		}
		e := t.entry(keyOf(a.Index, a.Prefix.Addr()))
		if e.hasAddr {
			e.addSpare(a, true) // the first finite address is the lease
			continue
		}
		e.addr, e.hasAddr = a, true
		if a.Iface != "" {
			e.iface = a.Iface
		}
		e.kStart, e.kLen, e.kPref, e.kGuess = a.Observed, a.Valid, a.Preferred, true
		e.phase = PhaseBound
	}
	t.adoptFiles(t.now)
	for _, e := range t.entries {
		// Phases due at baseline are taken silently, like the rest.
		for {
			d, kind, ok := t.due(e)
			if !ok || d.After(t.now) || kind == Expired {
				break
			}
			e.phase = phaseOf(kind)
		}
	}
}

// resync compares a full re-read after lost messages with the state.
func (t *Tracker) resync(at time.Time, s linkwatch.State) []Event {
	t.readLinks(s)
	// The spares are what the re-read shows beside each lease's address,
	// so that a lease that went meanwhile adopts one that is still there.
	for _, e := range t.entries {
		e.spare = nil
	}
	for _, a := range s.Addrs {
		if e := t.entries[keyOf(a.Index, a.Prefix.Addr())]; t.tracked(a) && e != nil && e.hasAddr && e.addr.Prefix != a.Prefix {
			e.addSpare(a, true)
		}
	}
	present := map[key]linkwatch.Addr{}
	for _, a := range s.Addrs {
		if t.tracked(a) {
			k := keyOf(a.Index, a.Prefix.Addr())
			if e := t.entries[k]; e != nil && e.hasAddr && e.addr.Prefix == a.Prefix {
				present[k] = a
			} else if _, ok := present[k]; !ok {
				present[k] = a
			}
		}
	}
	var out []Event
	for _, e := range t.sorted() {
		if a, ok := present[e.key]; e.hasAddr && e.addrGone.IsZero() && (!ok || a.Prefix != e.addr.Prefix) {
			out = append(out, t.addrRemoved(at, e.addr)...)
		}
	}
	for _, a := range present {
		out = append(out, t.addrPresent(at, a)...)
	}
	return out
}

// addrPresent handles an address that was added or whose lifetimes or
// flags changed.
func (t *Tracker) addrPresent(at time.Time, a linkwatch.Addr) []Event {
	if !t.tracked(a) {
		return nil
	}
	k := keyOf(a.Index, a.Prefix.Addr())
	e := t.entry(k)
	if a.Iface != "" {
		e.iface = a.Iface
	}
	if e.hasAddr && e.addr.Prefix != a.Prefix && e.addrGone.IsZero() {
		// A second finite address: the first one is the lease, and this
		// one its successor if the first goes.
		e.addSpare(a, false)
		return nil
	}
	if e.hasAddr && e.addr.Prefix == a.Prefix && !e.addrGone.IsZero() {
		e.addr = a
		e.kStart, e.kLen, e.kPref, e.kGuess = a.Observed, a.Valid, a.Preferred, false
		e.phase = PhaseBound
		if e.reconnect {
			// Back after the link reconnected: the client confirmed
			// its lease (INIT-REBOOT), no renewal went wrong.
			ev := t.event(at, Reconnected, e)
			ev.Duration = at.Sub(e.addrGone)
			e.reconnect, e.addrGone = false, time.Time{}
			return []Event{ev}
		}
		// The address is back within the blip window: one renewal.
		e.addrBack = at
		return t.closeEpisode(at, e)
	}
	if e.hasAddr && e.addr.Prefix == a.Prefix {
		old := e.addr.Observed.Add(e.addr.Valid)
		e.addr = a
		if a.Observed.Add(a.Valid).After(old.Add(t.cfg.Slack)) {
			e.kStart, e.kLen, e.kPref, e.kGuess = a.Observed, a.Valid, a.Preferred, false
			e.phase = PhaseBound
			return []Event{t.event(at, Renewed, e)}
		}
		return nil
	}
	// A new lease: no address before, an expired one, or a different
	// address replacing one that vanished.
	wasLive := e.fromFile && e.live() && e.file.Addr.Addr() == a.Prefix.Addr()
	spare := e.spare
	delete(spare, a.Prefix)
	*e = entry{key: k, iface: e.iface, addr: a, hasAddr: true, kStart: a.Observed, kLen: a.Valid, kPref: a.Preferred,
		phase: PhaseBound, spare: spare}
	if wasLive {
		return nil // the file reported this lease first; the kernel now drives it
	}
	return []Event{t.event(at, Acquired, e)}
}

// addrRemoved handles an address that went away: at the end of its lease
// that is the expiry; earlier it may be a blip, settled when the address
// returns or the window closes.
//
// When another finite address on the interface (of the same family) is
// there, the lease goes on with it, whenever the old one goes: that is
// systemd-networkd on a lease that changed address, which adds the new
// address before it removes the old. An address removed while the link is
// disconnected is a reconnect: no blip, and no expiry before the lease's
// own end.
func (t *Tracker) addrRemoved(at time.Time, a linkwatch.Addr) []Event {
	e := t.entries[keyOf(a.Index, a.Prefix.Addr())]
	if e != nil {
		delete(e.spare, a.Prefix)
	}
	if e == nil || !e.hasAddr || e.addr.Prefix != a.Prefix || !e.addrGone.IsZero() {
		return nil
	}
	if s, ok := e.freshestSpare(); ok {
		return t.adopt(at, e, s)
	}
	if t.disconnected(a.Index) {
		e.endEpisode()
		e.addrGone, e.reconnect = at, true
		return nil
	}
	expiry := e.addr.Observed.Add(e.addr.Valid)
	if expiry.Sub(at) <= t.cfg.Slack {
		return t.expire(at, e)
	}
	if e.episode.IsZero() {
		e.episode = at
	}
	e.addrGone = at
	e.addrBack = time.Time{}
	return nil
}

// addSpare records a as a finite address beside e's lease.
func (e *entry) addSpare(a linkwatch.Addr, guess bool) {
	if e.spare == nil {
		e.spare = map[netip.Prefix]spareAddr{}
	}
	if old, ok := e.spare[a.Prefix]; ok && old.guess {
		guess = true // still only the lifetime left when first seen
	}
	e.spare[a.Prefix] = spareAddr{a: a, guess: guess}
}

// freshestSpare returns the spare address that expires last.
func (e *entry) freshestSpare() (spareAddr, bool) {
	var best spareAddr
	found := false
	for _, s := range e.spare {
		exp := s.a.Observed.Add(s.a.Valid)
		if !found || exp.After(best.a.Observed.Add(best.a.Valid)) ||
			exp.Equal(best.a.Observed.Add(best.a.Valid)) && s.a.Prefix.Addr().Less(best.a.Prefix.Addr()) {
			best, found = s, true
		}
	}
	return best, found
}

// adopt makes the spare address s e's lease, the old one having gone at
// at: a new lease ([Acquired]), with the lifetimes s had when it was added.
func (t *Tracker) adopt(at time.Time, e *entry, s spareAddr) []Event {
	spare := e.spare
	delete(spare, s.a.Prefix)
	*e = entry{key: e.key, iface: e.iface, addr: s.a, hasAddr: true, kStart: s.a.Observed, kLen: s.a.Valid,
		kPref: s.a.Preferred, kGuess: s.guess, phase: PhaseBound, spare: spare}
	return []Event{t.event(at, Acquired, e)}
}

// route watches default routes of leased interfaces for blips. While the
// link is disconnected, routes come and go with the reconnect: no blip.
func (t *Tracker) route(at time.Time, ev linkwatch.RouteEvent) []Event {
	r := ev.Route
	if r.Dst.Bits() != 0 || !r.Dst.IsValid() || t.disconnected(r.Index) {
		return nil
	}
	e := t.entries[keyOf(r.Index, r.Dst.Addr())]
	if e == nil || !e.live() && e.addrGone.IsZero() {
		return nil
	}
	switch ev.Op {
	case linkwatch.RouteRemoved:
		if e.routesGone == nil {
			e.routesGone = map[netip.Prefix]time.Time{}
		}
		e.routesGone[r.Dst] = at
		e.routeWentAway = true
		if e.episode.IsZero() {
			e.episode = at
		}
	case linkwatch.RouteAdded:
		if _, ok := e.routesGone[r.Dst]; ok {
			delete(e.routesGone, r.Dst)
			if e.addrGone.IsZero() || !e.addrBack.IsZero() {
				return t.closeEpisode(at, e)
			}
		}
	}
	return nil
}

// closeEpisode ends e's blip episode with a Blip event if nothing is
// missing any more.
func (t *Tracker) closeEpisode(at time.Time, e *entry) []Event {
	if e.episode.IsZero() || len(e.routesGone) > 0 || (!e.addrGone.IsZero() && e.addrBack.IsZero()) {
		return nil
	}
	ev := t.event(at, Blip, e)
	ev.Duration = at.Sub(e.episode)
	ev.What = e.what()
	e.endEpisode()
	return []Event{ev}
}

func (e *entry) what() string {
	switch {
	case !e.addrGone.IsZero() && e.routeWentAway:
		return "address+route"
	case !e.addrGone.IsZero():
		return "address"
	}
	return "route"
}

func (e *entry) endEpisode() {
	e.episode, e.addrGone, e.addrBack = time.Time{}, time.Time{}, time.Time{}
	e.routesGone = nil
	e.routeWentAway = false
	e.reconnect = false
}

// expire ends e's lease at at.
func (t *Tracker) expire(at time.Time, e *entry) []Event {
	e.phase = PhaseExpired
	ev := t.event(at, Expired, e)
	e.hasAddr = false
	e.endEpisode()
	return []Event{ev}
}

// due returns when the next thing that time will make happen to e is due,
// and what it is. Renewing and rebinding are due Slack after T1 and T2: a
// client renews right at T1, and without the grace every ordinary renewal
// would first be reported as late.
func (t *Tracker) due(e *entry) (time.Time, EventKind, bool) {
	if e.reconnect {
		// Gone with a disconnect: the lease ends at its own end, unless
		// the address is back first.
		return e.addr.Observed.Add(e.addr.Valid), Expired, true
	}
	if !e.episode.IsZero() {
		return e.episode.Add(t.cfg.BlipWindow), Blip, true
	}
	if !e.live() {
		return time.Time{}, 0, false
	}
	v := t.view(e)
	switch {
	case e.phase == PhaseBound && !v.T1.IsZero():
		return v.T1.Add(t.cfg.Slack), Renewing, true
	case e.phase != PhaseRebinding && !v.T2.IsZero():
		return v.T2.Add(t.cfg.Slack), Rebinding, true
	case !e.hasAddr && !v.Expiry.IsZero():
		// Only a file-only lease expires by time: a kernel address is
		// removed by the kernel, and that removal is the expiry.
		return v.Expiry, Expired, true
	}
	return time.Time{}, 0, false
}

func phaseOf(k EventKind) Phase {
	switch k {
	case Renewing:
		return PhaseRenewing
	case Rebinding:
		return PhaseRebinding
	case Expired:
		return PhaseExpired
	}
	return PhaseBound
}

// step applies everything due for e up to now.
func (t *Tracker) step(e *entry, now time.Time) []Event {
	var out []Event
	for {
		d, kind, ok := t.due(e)
		if !ok || d.After(now) {
			return out
		}
		switch kind {
		case Blip: // the window closed
			switch {
			case !e.addrGone.IsZero() && e.addrBack.IsZero():
				out = append(out, t.expire(d, e)...)
			case !e.addrGone.IsZero():
				// The address came back but a route did not: report
				// the address's absence as the blip.
				ev := t.event(d, Blip, e)
				ev.Duration = e.addrBack.Sub(e.addrGone)
				ev.What = "address"
				e.endEpisode()
				out = append(out, ev)
			default:
				e.endEpisode() // a route stayed away: not a renewal
			}
		case Expired:
			out = append(out, t.expire(d, e)...)
		default:
			e.phase = phaseOf(kind)
			out = append(out, t.event(d, kind, e))
		}
	}
}

// event reports k for e at at, or at the latest time already reported if
// at is earlier, so that event times never decrease.
func (t *Tracker) event(at time.Time, k EventKind, e *entry) Event {
	if at.Before(t.now) {
		at = t.now
	}
	return Event{At: at, Kind: k, Lease: t.viewAt(e, at)}
}

// fileFor returns the newest file lease for the kernel lease e, among the
// files that agree with the kernel: same address, the same interface for
// files that name one (by index or name), and a lease that has not ended.
func (t *Tracker) fileFor(e *entry) (Lease, bool) {
	var best Lease
	found := false
	for _, l := range t.files {
		if l.Addr.Addr() != e.addr.Prefix.Addr() {
			continue
		}
		if l.Index != 0 && l.Index != e.index {
			continue
		}
		if l.Index == 0 && l.Iface != "" && t.indexOf(l.Iface) != e.index {
			continue // the file names another interface
		}
		if exp := l.Expiry(); !exp.IsZero() && exp.Add(t.cfg.Slack).Before(t.now) {
			continue // a lease that ended: an old file, not this lease's
		}
		if !found || l.Start.After(best.Start) {
			best, found = l, true
		}
	}
	return best, found
}

// adoptFiles starts file-only leases for interfaces where the kernel shows
// no finite address but the file's address (a client that installs it
// without a lifetime), and returns their Acquired events.
func (t *Tracker) adoptFiles(now time.Time) []Event {
	var out []Event
	for _, l := range t.files {
		exp := l.Expiry()
		if exp.IsZero() || !exp.After(now) || !l.Addr.Addr().Is4() {
			continue // no length (NetworkManager), or a stale lease
		}
		idx := l.Index
		if idx == 0 {
			idx = t.indexOf(l.Iface)
		}
		if idx == 0 || !t.onLink[idx][l.Addr.Addr()] {
			continue // its interface or address is not there (yet): the file does not agree
		}
		e := t.entries[key{index: idx}]
		if e != nil && (e.hasAddr || !e.episode.IsZero()) {
			continue // the kernel drives this interface
		}
		if e != nil && e.fromFile && e.live() && e.file.Addr == l.Addr && !l.Start.After(e.file.Start.Add(t.cfg.Slack)) {
			continue // nothing new
		}
		kind := Acquired
		if e != nil && e.fromFile && e.live() && e.file.Addr == l.Addr {
			kind = Renewed
		}
		if e == nil {
			e = t.entry(key{index: idx})
		}
		if e.iface == "" {
			e.iface = l.Iface
		}
		e.file, e.fromFile, e.phase = l, true, PhaseBound
		out = append(out, t.event(now, kind, e))
		// A file read late may already be past T1 or T2.
		out = append(out, t.step(e, now)...)
	}
	return out
}

// indexOf finds an interface by name. dhcpcd names Wi-Fi lease files
// IFACE-SSID, so a name that is not a link is tried up to each dash.
func (t *Tracker) indexOf(name string) int {
	if name == "" {
		return 0
	}
	for i, n := range t.links {
		if n == name {
			return i
		}
	}
	best, bestLen := 0, 0
	for i, n := range t.links {
		if len(name) > len(n) && name[len(n)] == '-' && name[:len(n)] == n && len(n) > bestLen {
			best, bestLen = i, len(n)
		}
	}
	return best
}

// view computes the externally visible state of e at the latest time.
func (t *Tracker) view(e *entry) LeaseState { return t.viewAt(e, t.now) }

// viewAt computes the externally visible state of e, with the time left at
// now.
func (t *Tracker) viewAt(e *entry, now time.Time) LeaseState {
	v := LeaseState{Index: e.index, Iface: e.iface, Phase: e.phase}
	if e.fromFile && !e.hasAddr {
		l := e.file
		v.Addr, v.Source = l.Addr, l.Source
		v.Start, v.Length, v.Expiry = l.Start, l.Length, l.Expiry()
		v.Server, v.Router = l.Server, l.Router
		v.T1, v.T2 = times(l.Start, l.Length, l.T1, l.T2, 0)
	} else {
		v.Addr, v.Source = e.addr.Prefix, SourceKernel
		v.Expiry = e.addr.Observed.Add(e.addr.Valid)
		if !e.kGuess {
			v.Start, v.Length = e.kStart, e.kLen
		}
		l, ok := t.fileFor(e)
		// The file and the kernel agree when they end the lease at the
		// same time; otherwise the kernel wins and the file only names
		// the server and router.
		agree := ok && !l.Expiry().IsZero() && absDur(l.Expiry().Sub(v.Expiry)) <= t.cfg.Slack
		if ok {
			v.LeaseFile, v.Server, v.Router = l.Source, l.Server, l.Router
		}
		switch {
		case agree && v.Start.IsZero():
			v.Start, v.Length = l.Start, l.Length
			v.T1, v.T2 = times(l.Start, l.Length, l.T1, l.T2, 0)
		case agree:
			v.T1, v.T2 = times(v.Start, v.Length, l.T1, l.T2, 0)
		case !e.kStart.IsZero():
			pref := time.Duration(0)
			if e.kPref > 0 && e.kPref < e.kLen {
				// dhcpcd sets the preferred lifetime to T2, so the
				// address is deprecated exactly when it rebinds.
				pref = e.kPref
			}
			// With kGuess (the tracker started during the lease, and no
			// file says when it began) this computes T1 and T2 as if the
			// lease had been granted when the tracker first saw it, for
			// the lifetime left then. A lease that had run for d already
			// has its real T1 d/2 earlier and its real T2 d/8 earlier
			// (3d/7 and 0 with a preferred lifetime at T2), so these are
			// the latest T1 and T2 can be: renewing and rebinding may be
			// reported late, never early. The first renewal seen sets
			// the real start and length.
			v.T1, v.T2 = times(e.kStart, e.kLen, 0, 0, pref)
		}
	}
	if e.phase == PhaseExpired || e.phase == PhaseNone {
		return v
	}
	if left := v.Expiry.Sub(now); left > 0 && !v.Expiry.IsZero() {
		v.TimeLeft = left
	}
	return v
}

// times returns absolute T1 and T2 from a lease's start and length: the
// given t1 and t2 when known, else T2 from the preferred lifetime when
// given, else RFC 2131's defaults of 50% and 87.5%, and T1 at 4/7 of T2.
func times(start time.Time, length, t1, t2, pref time.Duration) (time.Time, time.Time) {
	if start.IsZero() || length <= 0 {
		return time.Time{}, time.Time{}
	}
	if t2 <= 0 || t2 > length {
		t2 = length * 7 / 8
		if pref > 0 {
			t2 = pref
		}
	}
	if t1 <= 0 || t1 > t2 {
		// Keep RFC 2131's ratio of T1 to T2 (0.5 to 0.875): for a T2
		// at 87.5% this is 50% of the lease.
		t1 = t2 * 4 / 7
	}
	return start.Add(t1), start.Add(t2)
}

func absDur(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}
