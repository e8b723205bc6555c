package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/sockwatch"
	"go.uber.org/zap"
)

// stringList is a repeatable flag: --iface eth0 --iface 'wl*'.
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ",") }

func (l *stringList) Set(v string) error {
	if v == "" {
		return errors.New("empty value")
	}
	*l = append(*l, v)
	return nil
}

// prefixList is a repeatable flag of IP prefixes: --sockerr-dst 10.0.0.0/8
// --sockerr-dst 2001:db8::1. A bare address is the prefix of that one host
// (/32 or /128).
type prefixList []netip.Prefix

func (l *prefixList) String() string {
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func (l *prefixList) Set(v string) error {
	const want = "want an IP prefix such as 10.0.0.0/8 or 2001:db8::/32, or an address"
	if strings.Contains(v, "/") {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			return errors.New(want)
		}
		*l = append(*l, p)
		return nil
	}
	a, err := netip.ParseAddr(v)
	if err != nil || a.Zone() != "" {
		return errors.New(want + " (without a zone)")
	}
	*l = append(*l, netip.PrefixFrom(a, a.BitLen()))
	return nil
}

// checkCgroups returns a usageError naming the first --sockerr-cgroup
// that is not a cgroup v2 directory, and why. netmon.New checks the same;
// this message names the flag.
func checkCgroups(paths []string) error {
	for _, p := range paths {
		if _, err := netmon.CgroupID(p); err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return usageError{fmt.Errorf("--sockerr-cgroup %s: %w", p, err)}
		}
	}
	return nil
}

// commList is the repeatable --sockerr-comm flag: each value is checked
// as sockwatch would check it, so a name longer than the kernel's comm
// (15 bytes) fails the flag instead of the tracer's load.
type commList []string

func (l *commList) String() string { return strings.Join(*l, ",") }

func (l *commList) Set(v string) error {
	if err := (sockwatch.Config{Comms: []string{v}}).Validate(); err != nil {
		return fmt.Errorf("want a process name (the kernel's comm) of 1 to 15 bytes, got %d bytes", len(v))
	}
	*l = append(*l, v)
	return nil
}

// choice is a flag whose value must be one of a fixed set, so that
// --wifi=of fails at parse time with the list of valid values.
type choice struct {
	v       string
	allowed []string
}

func (c *choice) String() string { return c.v }

func (c *choice) Set(v string) error {
	if !slices.Contains(c.allowed, v) {
		return fmt.Errorf("want one of %s", strings.Join(c.allowed, ", "))
	}
	c.v = v
	return nil
}

// targetList is the repeatable --target flag. Each value is checked as
// it is given, so a malformed one is a usage error naming it.
type targetList []string

func (l *targetList) String() string { return strings.Join(*l, ",") }

func (l *targetList) Set(v string) error {
	if _, err := netmon.ParseTarget(v); err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), "netmon: "))
	}
	if slices.Contains(*l, v) {
		return fmt.Errorf("target %q given twice", v)
	}
	if len(*l) == netmon.MaxTargets {
		return fmt.Errorf("more than %d targets", netmon.MaxTargets)
	}
	*l = append(*l, v)
	return nil
}

// monitorFlags are the flags every command that runs a Monitor shares.
type monitorFlags struct {
	ifaces    stringList
	exclude   stringList
	targets   targetList
	wifi      choice
	stabilize nonNegativeDuration
}

func (f *monitorFlags) register(fs *flag.FlagSet) {
	f.wifi = choice{v: "auto", allowed: []string{"auto", "off"}}
	fs.Var(&f.ifaces, "iface", "watch only this interface; a glob (`NAME`, 'wl*') is allowed; repeatable (default: every interface but loopback)")
	fs.Var(&f.exclude, "exclude", "ignore interfaces matching this glob (`PATTERN`); repeatable")
	fs.Var(&f.targets, "target", "judge the kernel's path to this destination, `ADDR|HOST[:PORT]` (an on-link one needs no default route); repeatable, at most 64 (default: the internet, by the route to a public address of each family)")
	fs.Var(&f.wifi, "wifi", "Wi-Fi (nl80211) watching: `auto|off`; auto carries on without it on machines without Wi-Fi")
	fs.Var(&f.stabilize, "stabilize", "flap damping, off by default: how long a return must last before the Gate reopens (`DURATION`; doubled for each bounce within 10 s, up to 16 times, decaying while the link holds); 0: the Gate reopens the moment the path returns, the first held send going first as a probe")
}

// nonNegativeDuration is a duration flag that refuses negative values.
type nonNegativeDuration time.Duration

func (d *nonNegativeDuration) String() string { return time.Duration(*d).String() }

func (d *nonNegativeDuration) Set(v string) error {
	x, err := time.ParseDuration(v)
	if err != nil {
		return errors.New("want a duration such as 200ms, or 0")
	}
	if x < 0 {
		return errors.New("want a duration >= 0")
	}
	*d = nonNegativeDuration(x)
	return nil
}

// options returns the Monitor's options for these flags.
func (f *monitorFlags) options(log *zap.Logger) netmon.Options {
	return netmon.Options{Logger: log, Interfaces: f.ifaces, Exclude: f.exclude, Targets: f.targets, Wifi: f.wifi.v,
		Stabilize: time.Duration(f.stabilize)}
}

// allTargetsReachable reports whether every target of the snapshot can be
// reached (without --target: whether traffic can flow at all).
func allTargetsReachable(s netmon.Snapshot, explicit bool) bool {
	if !s.State.CanSend() {
		return false
	}
	if !explicit {
		return true
	}
	for _, t := range s.Targets {
		if !t.Reachable {
			return false
		}
	}
	return true
}

// checkIfaces returns a usageError for a malformed --iface glob, and one
// naming every --iface without glob characters that does not exist, with
// the list of interfaces that do (unless the Monitor awaits them).
// netmon.New checks the same, but this message is written for a person at
// a shell rather than for a program.
func checkIfaces(names []string, await bool) error {
	for _, n := range names {
		if _, err := path.Match(n, ""); err != nil {
			return usageError{fmt.Errorf("--iface %q: malformed glob: %w", n, err)}
		}
	}
	if await {
		return nil
	}
	missing, have, err := missingIfaces(names)
	if err != nil {
		return err
	}
	if len(missing) > 0 {
		return usageError{fmt.Errorf("--iface %q: no such interface; interfaces here: %s", missing[0], strings.Join(have, ", "))}
	}
	return nil
}

// missingIfaces returns the names without glob characters that no
// interface has, and the sorted names of the interfaces there are.
func missingIfaces(names []string) (missing, have []string, err error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, nil, fmt.Errorf("list interfaces: %w", err)
	}
	for _, i := range ifs {
		have = append(have, i.Name)
	}
	slices.Sort(have)
	for _, n := range names {
		if !strings.ContainsAny(n, `*?[\`) && !slices.Contains(have, n) {
			missing = append(missing, n)
		}
	}
	return missing, have, nil
}

// newMonitor checks the interfaces and creates the Monitor; a missing
// interface is a usage error.
func newMonitor(o netmon.Options) (*netmon.Monitor, error) {
	if err := checkIfaces(o.Interfaces, o.AwaitInterfaces); err != nil {
		return nil, err
	}
	m, err := netmon.New(o)
	if errors.Is(err, os.ErrNotExist) {
		// The interface vanished between the check and New.
		return nil, usageError{err}
	}
	return m, err
}

// running is a Monitor whose Run is in progress on its own goroutine.
type running struct {
	m      *netmon.Monitor
	events <-chan netmon.Event
	cancel context.CancelFunc
	done   chan error // receives Run's result once
}

// start subscribes to m's events and runs it until ctx ends or stop is
// called.
func start(ctx context.Context, m *netmon.Monitor) *running {
	ctx, cancel := context.WithCancel(ctx)
	r := &running{m: m, events: m.Events(), cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- m.Run(ctx) }()
	return r
}

// stop cancels the Monitor, drains its events (Run blocks on an unread
// channel) and returns Run's error, nil when it ended because of the
// cancellation.
func (r *running) stop() error {
	r.cancel()
	for range r.events {
	}
	err := <-r.done
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// untilBaseline reads events until the baseline. It returns false when
// the Monitor stopped first (ctx ended or Run failed).
func (r *running) untilBaseline() bool {
	for ev := range r.events {
		if ev.Kind == netmon.EventBaseline {
			return r.untilResolved()
		}
	}
	return false
}

// resolveWait bounds how long a one-shot command waits for its targets'
// host names to be tried once (the Monitor's resolver gives each 5 s).
const resolveWait = 6 * time.Second

// untilResolved waits until every host name target has resolved or been
// said not to resolve (a notice), so that a one-shot snapshot does not
// call a name unresolved only because it asked too early. It reports false
// when the Monitor stopped.
func (r *running) untilResolved() bool {
	unresolved := func() int {
		n := 0
		for _, t := range r.m.Snapshot().Targets {
			// Unresolved until the name resolved and the path of its
			// address was judged.
			if t.Reason == netmon.ReasonUnresolved {
				n++
			}
		}
		return n
	}
	deadline := time.NewTimer(resolveWait)
	defer deadline.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for said := 0; unresolved() > said; {
		select {
		case ev, ok := <-r.events:
			if !ok {
				return false
			}
			if ev.Kind == netmon.EventNotice && strings.HasPrefix(ev.Msg, "target ") {
				said++
			}
		case <-tick.C:
		case <-deadline.C:
			return true
		}
	}
	return true
}
