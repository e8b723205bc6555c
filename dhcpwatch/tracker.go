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
		cfg:     cfg,
		links:   map[int]string{},
		entries: map[key]*entry{},
		files:   map[fileKey]Lease{},
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
			for k := range t.entries {
				if k.index == ev.Link.Index {
					delete(t.entries, k)
				}
			}
			break
		}
		t.links[ev.Link.Index] = ev.Link.Name
		for _, e := range t.entries {
			if e.index == ev.Link.Index {
				e.iface = ev.Link.Name
			}
		}
		// A link that appears may be the one a file lease waits for.
		out = append(out, t.adoptFiles(at)...)
	case linkwatch.AddrEvent:
		if ev.Op == linkwatch.AddrRemoved {
			out = append(out, t.addrRemoved(at, ev.Addr)...)
		} else {
			out = append(out, t.addrPresent(at, ev.Addr)...)
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
func (t *Tracker) ApplyLease(now time.Time, l Lease) []Event {
	out := t.Advance(now)
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

// reset replaces the state with a baseline, without events.
func (t *Tracker) reset(s linkwatch.State) {
	clear(t.entries)
	clear(t.links)
	for i, l := range s.Links {
		t.links[i] = l.Name
	}
	for _, a := range s.Addrs {
		if !t.tracked(a) {
			continue
		}
		e := t.entry(keyOf(a.Index, a.Prefix.Addr()))
		if e.hasAddr {
			continue // the first finite address is the lease
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
	for i, l := range s.Links {
		t.links[i] = l.Name
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
		return nil // a second finite address; the first one is the lease
	}
	if e.hasAddr && e.addr.Prefix == a.Prefix && !e.addrGone.IsZero() {
		// The address is back within the blip window: one renewal.
		e.addr = a
		e.kStart, e.kLen, e.kPref, e.kGuess = a.Observed, a.Valid, a.Preferred, false
		e.phase = PhaseBound
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
	*e = entry{key: k, iface: e.iface, addr: a, hasAddr: true, kStart: a.Observed, kLen: a.Valid, kPref: a.Preferred, phase: PhaseBound}
	if wasLive {
		return nil // the file reported this lease first; the kernel now drives it
	}
	return []Event{t.event(at, Acquired, e)}
}

// addrRemoved handles an address that went away: at the end of its lease
// that is the expiry; earlier it may be a blip, settled when the address
// returns or the window closes.
func (t *Tracker) addrRemoved(at time.Time, a linkwatch.Addr) []Event {
	e := t.entries[keyOf(a.Index, a.Prefix.Addr())]
	if e == nil || !e.hasAddr || e.addr.Prefix != a.Prefix || !e.addrGone.IsZero() {
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

// route watches default routes of leased interfaces for blips.
func (t *Tracker) route(at time.Time, ev linkwatch.RouteEvent) []Event {
	r := ev.Route
	if r.Dst.Bits() != 0 || !r.Dst.IsValid() {
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

// fileFor returns the newest file lease for the kernel lease e: same
// address, and for files that name an interface, the same interface.
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
		if !found || l.Start.After(best.Start) {
			best, found = l, true
		}
	}
	return best, found
}

// adoptFiles starts file-only leases for interfaces where the kernel shows
// no finite address, and returns their Acquired events.
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
		if idx == 0 {
			continue // its interface is not known (yet)
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
