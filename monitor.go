package netmon

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/genetlink"
	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/internal/dropq"
	"github.com/seed-a56be422/netmon/internal/neighprobe"
	"github.com/seed-a56be422/netmon/linkwatch"
	"github.com/seed-a56be422/netmon/sockwatch"
	"github.com/vishvananda/netns"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"
)

// ErrClosed is returned by [Monitor.Run] when it is called a second time:
// a Monitor runs once. Once Run has returned, the Gate is shut down and its
// waiters get errors wrapping [gate.ErrShutdown].
var ErrClosed = errors.New("netmon: monitor closed")

// Monitor folds the watchers' events and the send errors senders report
// into one [Status], drives the [gate.Gate] from it, keeps the flap
// journal and hands out Snapshots. Create it with [New] and start it with
// [Monitor.Run].
type Monitor struct {
	opts Options
	log  *zap.Logger
	lw   *linkwatch.Watcher
	gate *gate.Gate
	// leaseFiles watches DHCP clients' lease files; nil when DHCP is off.
	leaseFiles *dhcpwatch.LeaseFiles
	// wifiDial, when set (tests), replaces the nl80211 connection.
	wifiDial func() (*genetlink.Conn, error)
	// newSock loads the eBPF tracer (sockwatch.New; tests wrap it).
	newSock func(sockwatch.Config) (*sockwatch.Watcher, error)

	events chan Event    // closed when Run returns
	kick   chan struct{} // wakes the loop to re-evaluate
	// queue holds the events for the subscriber, at most EventQueueSize;
	// Run's deliver goroutine takes them from it and alone waits for the
	// subscriber. It is held (hands out nothing) until the baseline,
	// which goes in front of the events queued before it.
	queue *dropq.Queue[Event]

	// stallWord holds stallActive() in stallBit, so that ReportSuccess
	// costs one atomic load when the data-stall detector holds nothing
	// and takes the lock only when it does (stall.go keeps it in step).
	stallWord atomic.Uint64
	// lastSucc is the last success with a destination reported while the
	// detector held nothing (stall.go's markSuccess), read under mu.
	lastSucc atomic.Pointer[succMark]

	mu         sync.Mutex  // guards every field below
	subscribed atomic.Bool // Events was called: queue events for it
	running    bool
	done       bool
	baseline   bool // the first full read has been applied
	ifaces     map[int]*iface
	status     Status
	statusIdx  int           // ifindex the status concerns (0: none)
	uplink     int           // last ifindex that carried traffic
	uplinkName string        // and its name, kept when the link is removed
	upAt       time.Time     // when a return has lasted its stabilisation window
	upWindow   time.Duration // that window
	damp       damping       // flap damping (damp.go)
	evalAt     time.Time     // the time of the last evaluation (evaluateLocked's now)
	outage     *outage
	lastUpAt   time.Time // when the last outage ended
	journal    journal
	queueOpen  bool   // the baseline is queued: the queue is released
	netnsIno   uint64 // inode of the watched network namespace, 0 if unknown
	rebind     chan struct{}
	lastRebind Rebind
	stall      stall     // the data-stall detector (stall.go)
	wakeAt     time.Time // the rule's next deadline (clock.next of the last evaluation)
	stats      Stats
	dhcp       *dhcpwatch.Tracker // nil when DHCP is off
	wifiInfo   map[int]*WifiInfo  // by ifindex, from wifiwatch
	dhcpInfo   map[int]*DHCPInfo  // by ifindex, from dhcpwatch
	sock       *sockwatch.Watcher // nil unless eBPF runs
	sockCgroup []uint64           // Options.SockCgroups resolved to cgroup IDs
	sockProcs  sockProcs          // eBPF-observed failures by comm and cause
	noRoute    noRoutes           // the kernel's no-route counters (noroute.go)
	seen       seenSends          // failures reported and traced, paired (dedup.go)
	wifiNote   string             // "on", "off", "starting", or why Wi-Fi is not watched
	sockNote   string             // "loading", "on", "off", or why socket errors are not watched
	dhcpNote   string             // "on" or "off": lease tracking from address lifetimes
	filesNote  string             // "on", "off", "starting", or why lease files are not read
	// awaiting holds the watchers whose baseline the baseline event waits
	// for ("wifi", "lease files"), until baselineDue at the latest;
	// baselineOut is set once the baseline event went out (or would have,
	// without a subscriber). See baselineEventLocked.
	awaiting    map[string]bool
	baselineDue time.Time
	baselineOut bool
	baselineC   chan struct{} // closed when baselineOut is set

	// lookup asks the kernel for a path (linkwatch's Lookup; tests
	// replace it).
	lookup func(dst netip.Addr, mark uint32) (linkwatch.Path, error)
	// resolve resolves a target's host name (tests replace it).
	resolve   func(ctx context.Context, host string) ([]netip.Addr, error)
	reresolve chan struct{} // asks resolveLoop to resolve again
	// paths are the targets' paths: Options.Targets in order, or the
	// implicit internet ones (IPv4, IPv6).
	paths       []*pathState
	pathsDirty  bool             // a kernel change may have moved a path
	refreshedAt time.Time        // when the paths were last looked up
	batching    bool             // more linkwatch events are queued: look paths up after them
	rules       []linkwatch.Rule // the policy rules, as linkwatch reported them
	routeCache  routeCache       // eBPF destinations' interfaces (watchers.go)
	had         families         // the families the uplink hadIdx carried since it came up
	hadIdx      int
	// pathFacts and pathVerdicts are the rule's buffers for the paths'
	// facts and verdicts (factsLocked), kept so that an evaluation
	// allocates nothing.
	pathFacts    []pathFacts
	pathVerdicts []pathVerdict
	prober       *neighprobe.Prober // gateway probes at a return (neighprobe.go); nil when unavailable
	// openProber opens it (neighprobe.Open when nil; tests replace it).
	openProber func(netns.NsHandle) (*neighprobe.Prober, error)
}

// outage is the outage in progress.
type outage struct {
	start  time.Time
	cause  Reason
	iface  string
	detail string
	signal int
	bssid  string
}

// Stats are the Monitor's counters.
type Stats struct {
	// Reports counts send errors by class and cause: those reported
	// ([Monitor.Report], ReportFailure) and those the eBPF tracer
	// observed. A failure both reported and traced (same process, errno
	// and destination within a second) counts once.
	Reports [classCount][causeCount]uint64
	// Successes counts the [Monitor.ReportSuccess] calls that found the
	// data-stall detector holding something (a count of failures, or a
	// closed Gate) and ended it. Other successes are not counted, so that
	// a successful send writes nothing shared, as gate.Stats does not
	// count them either.
	Successes uint64
	// Gaps counts the times kernel messages were lost (a netlink
	// overflow) or a read of the routes failed, after which the state
	// was re-read.
	Gaps uint64
	// Flaps counts outages, and DownTime adds up their durations.
	Flaps    uint64
	DownTime time.Duration
	// SockErrors counts failed socket operations observed with eBPF and
	// reported; SockErrorsIgnored those in other network namespaces or
	// towards loopback.
	SockErrors, SockErrorsIgnored uint64
	// SockErrorsDropped counts failed socket operations the kernel could
	// not queue because the eBPF ring buffer was full: a flood lost this
	// many, and the counts above are short by as much.
	SockErrorsDropped uint64
	// SockErrorsFiltered counts failed socket operations eBPF observed
	// and the cgroup or destination filter (Options.SockCgroups,
	// Options.SockDestinations) left out; they are in no count above.
	SockErrorsFiltered uint64
	// NoRouteSends counts the sends that found no route (the kernel's
	// OutNoRoutes and Ip6OutNoRoutes in the watched network namespace)
	// while the state was up or degraded and no syscall tracing named
	// them: failures of processes unknown (see [Options].NoRoutePoll).
	NoRouteSends uint64
	// PathLookups counts the times the targets' paths were looked up
	// again (once per batch of kernel changes), and RouteLookups the
	// route lookups they made (one per target, one more per mark for a
	// path into an overlay).
	PathLookups, RouteLookups uint64
	// NeighProbes counts the ARP requests and Neighbor Solicitations sent
	// for gateways whose neighbour entry was unresolved (INCOMPLETE or
	// FAILED) at a return of their link, or went so while it was up.
	NeighProbes uint64
	// EventsDropped counts the events the subscriber ([Monitor.Events])
	// lost because it fell behind by more than EventQueueSize events.
	EventsDropped uint64
}

// EventQueueSize is how many events wait for a subscriber that falls
// behind, at most: beyond it, events are dropped (see [Monitor.Events]).
// 4096 covers a burst of a few thousand kernel changes (a VPN installing
// its routes, an interface with many addresses going away) at about
// 1 MiB when full.
const EventQueueSize = 4096

const (
	classCount = int(classify.Rejected) + 1
	causeCount = int(numCauses)
)

// Rebind describes a change after which connections should be redialled:
// their local address went away, or the default route moved to another
// interface. Writes on such connections can keep succeeding into a stall
// until TCP gives up minutes later.
type Rebind struct {
	At    time.Time
	Iface string
	// Addr is the address that went away (invalid when the route moved).
	Addr netip.Prefix
	// Reason is "address-removed" or "uplink-changed".
	Reason string
}

// New returns a Monitor for o. It checks the options and that the
// interfaces named without globs exist, but starts nothing.
func New(o Options) (*Monitor, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	lw, err := linkwatch.New(linkwatch.Config{
		NetNS:      o.NetNS,
		Include:    o.Interfaces,
		AwaitNamed: o.AwaitInterfaces,
		Exclude:    o.Exclude,
		Logger:     o.Logger.Named("linkwatch"),
	})
	if err != nil {
		return nil, fmt.Errorf("netmon: %w", err)
	}
	m := &Monitor{
		opts:      o,
		log:       o.Logger,
		lw:        lw,
		events:    make(chan Event),
		queue:     dropq.New(EventQueueSize, func(ev Event) int { return ev.Kind.Rank() }),
		kick:      make(chan struct{}, 1),
		ifaces:    map[int]*iface{},
		status:    Status{State: Unknown, Reason: ReasonStarting, Since: time.Now()},
		journal:   newJournal(o.Journal),
		rebind:    make(chan struct{}),
		wifiInfo:  map[int]*WifiInfo{},
		dhcpInfo:  map[int]*DHCPInfo{},
		baselineC: make(chan struct{}),
	}
	m.queue.Hold() // until the baseline
	m.netnsIno = netnsInode(o.NetNS)
	m.lookup = lw.Lookup
	m.newSock = sockwatch.New
	m.resolve, m.reresolve = defaultResolve, make(chan struct{}, 1)
	for _, p := range o.SockCgroups {
		id, err := CgroupID(p)
		if err != nil {
			return nil, fmt.Errorf("netmon: Options.SockCgroups: %w", err)
		}
		m.sockCgroup = append(m.sockCgroup, id)
	}
	if o.SockErrors != "off" {
		if err := m.sockConfig().Validate(); err != nil {
			return nil, fmt.Errorf("netmon: Options.SockComms or SockDestinations: %w", err)
		}
	}
	m.wifiNote, m.sockNote = watcherNote(o.Wifi), watcherNote(o.SockErrors)
	if o.SockErrors != "off" {
		m.sockNote = "loading" // from the baseline on; see loadSockwatch
	}
	m.dhcpNote, m.filesNote = watcherNote(o.DHCP), watcherNote(o.DHCP)
	m.awaiting = map[string]bool{}
	if o.DHCP != "off" {
		m.dhcpNote = "on" // the tracker runs in the loop: nothing to start
		m.dhcp = dhcpwatch.NewTracker(o.DHCPTracker)
		if o.NetNS == 0 {
			// Lease files describe this namespace's clients only.
			if m.leaseFiles, err = dhcpwatch.NewLeaseFiles(dhcpwatch.FilesConfig{Patterns: o.LeaseFiles, Logger: o.Logger.Named("dhcpwatch")}); err != nil {
				return nil, fmt.Errorf("netmon: %w", err)
			}
		} else {
			m.filesNote = "unavailable: lease files are only read in netmon's own network namespace"
		}
	}
	gc := o.Gate
	gc.StartClosed = gate.Reason{Code: string(ReasonStarting)}
	if gc.ClockSynced == nil {
		gc.ClockSynced = clockSynced
	}
	userErr, userOK := gc.OnError, gc.OnSuccess
	gc.OnError = func(a gate.Attempt) {
		m.report(time.Now(), a.Class, a.Err, a.Dst)
		if userErr != nil {
			userErr(a)
		}
	}
	gc.OnSuccess = func(a gate.Attempt) {
		m.ReportSuccessTo(a.Dst)
		if userOK != nil {
			userOK(a)
		}
	}
	if m.gate, err = gate.New(gc); err != nil {
		return nil, fmt.Errorf("netmon: Options.Gate: %w", err)
	}
	if err := m.initTargets(gc, userOK); err != nil {
		return nil, err
	}
	return m, nil
}

// Gate returns the sender's view of the Gate the Monitor drives: open
// exactly while the state is up or degraded. Senders wait and send through
// it ([gate.Sender.Wait], [gate.Sender.Do]); only the Monitor opens,
// closes and shuts down the Gate, so no sender can hold the others.
func (m *Monitor) Gate() *gate.Sender { return m.gate.Sender() }

// Events returns the channel of events, starting with a baseline. Events
// are queued only for a subscriber that exists, so call it before
// [Monitor.Run] to see everything from the first read; called later, its
// baseline is the state at that moment. The channel is closed when Run
// returns; events still queued then are not delivered.
//
// The subscriber never slows the Monitor: the state, the Gate, Report and
// Snapshot never wait for it. Events wait for it in a queue of at most
// EventQueueSize events; when a slow subscriber lets the queue fill, each
// new event drops one, counted in Stats.EventsDropped: the oldest queued
// event of the lowest [EventKind.Rank] (link, addr, route, neigh, wifi,
// dhcp, sockerr, rebind, gap, notice), or, when only state and flap events
// are queued, the new event itself if it ranks lower, else the oldest
// state or flap event. The baseline is never dropped. The next event the
// subscriber receives after a loss is an EventDropped whose Dropped says
// how many it missed.
func (m *Monitor) Events() <-chan Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.subscribed.Swap(true) && m.baselineOut && !m.done {
		// Subscribed late: the baseline is the state now.
		now := time.Now()
		m.emitLocked(Event{Kind: EventBaseline, At: now, Iface: m.status.Iface, Msg: "baseline", Status: m.status,
			Fields: m.snapshotFieldsLocked(now)})
	}
	return m.events
}

// Status returns the current state, reason, interface and since when.
func (m *Monitor) Status() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.status
}

// RebindC returns a channel that is closed at the next rebind (see
// [Rebind]); call it again afterwards for the one after. [Monitor.LastRebind]
// says what happened.
func (m *Monitor) RebindC() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.rebind
}

// LastRebind returns the most recent rebind, zero if none happened.
func (m *Monitor) LastRebind() Rebind {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.lastRebind
}

// Flaps returns the outages kept in the journal, oldest first.
func (m *Monitor) Flaps() []Flap {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.journal.list()
}

// Stats returns a copy of the Monitor's counters.
func (m *Monitor) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	st := m.stats
	_, _, st.EventsDropped = m.queue.Stats()
	if m.sock != nil {
		ss := m.sock.Stats()
		st.SockErrorsDropped, st.SockErrorsFiltered = ss.Dropped, ss.Filtered
	}
	return st
}

// Run watches until ctx ends, then shuts the Gate down (waiters get an
// error wrapping [gate.ErrShutdown]), sets the status to down with reason
// shutdown, closes the Events channel and returns context.Cause(ctx). A
// watcher that fails fatally ends Run with its error; a watcher that is
// merely unavailable (no Wi-Fi, no eBPF permission) is reported once as a
// notice event and Run carries on. The eBPF tracer, when the options ask
// for it, loads after the baseline; with Options.SockErrors "on", a failed
// load ends Run with that error.
func (m *Monitor) Run(ctx context.Context) (err error) {
	m.mu.Lock()
	if m.running || m.done {
		m.mu.Unlock()
		return fmt.Errorf("netmon: Run called twice: %w", ErrClosed)
	}
	m.running = true
	m.mu.Unlock()

	stop, delivered := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(delivered)
		m.deliver(stop)
	}()
	defer func() {
		m.mu.Lock()
		m.endLocked(time.Now())
		m.mu.Unlock()
		m.gate.Shutdown()
		for _, p := range m.paths {
			if p.gate != nil {
				p.gate.Shutdown()
			}
		}
		close(stop)
		<-delivered
		close(m.events)
	}()

	m.openNeighProbe()
	defer m.closeNeighProbe()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return m.lw.Run(gctx) })
	src, err := m.startWatchers(gctx, g)
	if err != nil {
		// Stop what started, then report why Run could not.
		g.Go(func() error { return err })
		_ = g.Wait()
		return err
	}
	if m.hasHosts() {
		g.Go(func() error { return m.resolveLoop(gctx) })
	}
	g.Go(func() error { return m.loop(gctx, src) })
	err = g.Wait()
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

// loop is the Monitor's single event loop: it applies watcher events and
// re-evaluates on timers. It never waits for the subscriber: the events it
// makes are queued for deliver.
func (m *Monitor) loop(ctx context.Context, src sources) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	lwEvents := m.lw.Events()
	for {
		m.mu.Lock()
		wake := m.nextWakeLocked(time.Now())
		m.mu.Unlock()
		timer.Reset(wake)
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-lwEvents:
			if !ok {
				// ctx ended, or linkwatch stopped with an error, which
				// errgroup reports; returning one here could win the
				// race and hide it.
				return nil
			}
			m.mu.Lock()
			// While more kernel changes are queued, the paths are
			// looked up after the last of them, not after each.
			m.batching = len(lwEvents) > 0
			m.applyLinkLocked(ev)
			m.batching = false
			m.mu.Unlock()
		case ev, ok := <-src.wifi:
			if !ok {
				src.wifi = nil
				m.mu.Lock()
				m.watcherReadyLocked(time.Now(), "wifi") // it ended: nothing to wait for
				m.mu.Unlock()
				continue
			}
			m.mu.Lock()
			m.applyWifiLocked(ev)
			m.mu.Unlock()
		case l, ok := <-src.leases:
			if !ok {
				src.leases = nil
				continue
			}
			m.mu.Lock()
			m.applyLeaseLocked(time.Now(), l)
			m.mu.Unlock()
		case <-src.filesReady:
			src.filesReady = nil
			m.mu.Lock()
			// The files present at start were all sent before Ready:
			// what is not read yet waits in the channel's buffer.
			for n := len(src.leases); n > 0; n-- {
				if l, ok := <-src.leases; ok {
					m.applyLeaseLocked(time.Now(), l)
				}
			}
			if m.filesNote == "starting" {
				m.filesNote = "on"
			}
			m.watcherReadyLocked(time.Now(), "lease files")
			m.mu.Unlock()
		case sw := <-src.sockReady:
			src.sockReady, src.sock = nil, sw.Events()
		case ev, ok := <-src.sock:
			if !ok {
				src.sock = nil
				continue
			}
			m.mu.Lock()
			m.applySockLocked(ev)
			m.mu.Unlock()
		case <-timer.C:
			m.mu.Lock()
			now := time.Now()
			if m.dhcp != nil {
				m.applyDHCPLocked(m.dhcp.Advance(now))
			}
			if m.pathsDirty && m.baseline && !m.refreshDeferredLocked() {
				m.refreshPathsLocked()
			}
			m.evaluateLocked(now)
			m.baselineEventLocked(now)
			m.mu.Unlock()
		case <-m.kick:
			m.mu.Lock()
			if m.pathsDirty && m.baseline && !m.refreshDeferredLocked() {
				// A host name resolved to a new address.
				m.refreshPathsLocked()
				m.evaluateLocked(time.Now())
			}
			m.mu.Unlock()
		}
	}
}

// deliver sends the queued events to the subscriber, in order, until stop
// is closed: the only goroutine that waits for the subscriber. After a
// loss it first sends an EventDropped with the count, never before the
// baseline.
func (m *Monitor) deliver(stop <-chan struct{}) {
	var missed uint64
	send := func(ev Event) bool {
		select {
		case m.events <- ev:
			return true
		case <-stop:
			return false
		}
	}
	for {
		ev, n, ok := m.queue.Next(stop)
		if !ok {
			return
		}
		missed += n
		if missed > 0 && ev.Kind != EventBaseline {
			d := Event{Kind: EventDropped, At: time.Now(), Dropped: missed,
				Msg: fmt.Sprintf("%d events dropped: the subscriber fell behind", missed)}
			if !send(d) {
				return
			}
			missed = 0
		}
		if !send(ev) {
			return
		}
	}
}

// endLocked marks the Monitor as stopped: the status says down for
// shutdown from now on, and nothing more is queued or evaluated.
func (m *Monitor) endLocked(now time.Time) {
	m.done = true
	m.status = Status{State: Down, Reason: ReasonShutdown, Iface: m.status.Iface, Since: now}
	m.queue.Clear()
}

// baselineEventLocked emits the baseline event once the first full read of
// the kernel is applied and every other watcher that runs has given its
// baseline (Wi-Fi associations, the lease files present at start), or
// Options.BaselineWait after that read at the latest: so that the
// baseline, and a snapshot taken at it, carries the Wi-Fi and lease state
// rather than learning it from later events. Until then, state changes
// are not events of their own: the baseline reports the state it arrives
// at.
func (m *Monitor) baselineEventLocked(now time.Time) {
	if !m.baseline || m.baselineOut || m.done {
		return
	}
	if len(m.awaiting) > 0 && now.Before(m.baselineDue) {
		return
	}
	for _, w := range slices.Sorted(maps.Keys(m.awaiting)) {
		m.noticeLocked(now, w, fmt.Sprintf("%s: no baseline within %v; the baseline goes without it", w, m.opts.BaselineWait))
	}
	m.baselineOut = true
	close(m.baselineC)
	m.emitLocked(Event{Kind: EventBaseline, At: now, Iface: m.status.Iface, Msg: "baseline", Status: m.status,
		Fields: m.snapshotFieldsLocked(now)})
}

// watcherReadyLocked notes that watcher w gave its baseline.
func (m *Monitor) watcherReadyLocked(now time.Time, w string) {
	if !m.awaiting[w] {
		return
	}
	delete(m.awaiting, w)
	m.baselineEventLocked(now)
}

// watcherNote is a watcher's initial note: "off" when the options turn it
// off, else "starting" until Run knows more.
func watcherNote(mode string) string {
	if mode == "off" {
		return "off"
	}
	return "starting"
}

// emitLocked queues ev for the subscriber, if there is one; it never
// waits. Until the baseline has been queued, other events (a watcher's
// notice) wait behind it: the first event is always the baseline.
func (m *Monitor) emitLocked(ev Event) {
	if !m.subscribed.Load() || m.done {
		return // nobody reads, or the channel is closed
	}
	if ev.Kind == EventBaseline && !m.queueOpen {
		m.queueOpen = true
		m.queue.PushFront(ev)
		m.queue.Release()
		return
	}
	m.queue.Push(ev)
}

// wakeLocked asks the loop to re-evaluate soon.
func (m *Monitor) wakeLocked() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// nextWakeLocked returns how long the loop may sleep before something
// time-based can change the state: the rule's own next deadline (noted by
// its clock at the last evaluation), the DHCP tracker's next phase, and a
// path lookup deferred by a storm of changes. A deadline that has passed
// is due at once.
func (m *Monitor) nextWakeLocked(now time.Time) time.Duration {
	next := now.Add(time.Minute)
	earlier := func(t time.Time) {
		if !t.IsZero() && t.Before(next) {
			next = t
		}
	}
	earlier(m.wakeAt)
	if m.dhcp != nil {
		if t, ok := m.dhcp.NextDeadline(); ok {
			earlier(t)
		}
	}
	if m.pathsDirty && m.baseline {
		earlier(m.refreshedAt.Add(pathRefreshGap))
	}
	if m.baseline && !m.baselineOut {
		earlier(m.baselineDue)
	}
	return max(next.Sub(now), time.Millisecond)
}
