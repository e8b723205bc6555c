package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
)

// quietLogger is the Monitor's diagnostics logger for the one-shot
// commands: warnings and errors only, one line each, on stderr.
func quietLogger(stderr io.Writer) *zap.Logger {
	log, _ := newLogger("console", zap.WarnLevel, stderr)
	return log
}

func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf monitorFlags
	mf.register(fs)
	asJSON := fs.Bool("json", false, "print the snapshot as one JSON object")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: netmon status [flags]")
		fmt.Fprintln(fs.Output(), "\nPrints one snapshot of the connectivity state. Exit status: 0 when traffic")
		fmt.Fprintln(fs.Output(), "can flow (up or degraded; with --target, to every target), 1 when it cannot")
		fmt.Fprintln(fs.Output(), "(or when interrupted), 2 on a usage error, 3 when the network's state could not")
		fmt.Fprintln(fs.Output(), "be read (as systemctl is-active says 3 for a state it cannot tell).")
		fmt.Fprintln(fs.Output(), "\nThe snapshot is taken once the kernel has been read and every watcher that")
		fmt.Fprintln(fs.Output(), "runs has given its baseline (Wi-Fi associations, DHCP leases, lease files),")
		fmt.Fprintf(fs.Output(), "waiting at most %v for the latter. Each watcher is reported as on, off, or\n", netmon.DefaultBaselineWait)
		fmt.Fprintln(fs.Output(), "unavailable with the reason.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	o := mf.options(quietLogger(stderr))
	o.SockErrors = "off" // a snapshot needs no tracer, and loading one takes a while
	// A snapshot says what is true now: the window that keeps a Gate
	// from reopening into a bouncing link has no sender to protect here.
	o.Stabilize = -1
	m, err := newMonitor(o)
	if err != nil {
		if code := fail(stderr, "status", err); code == exitUsage {
			return code
		}
		return exitUnreadable
	}
	r := start(ctx, m)
	ok := r.untilBaseline()
	snap := m.Snapshot()
	if err := r.stop(); err != nil || !ok {
		if err == nil {
			err = context.Cause(ctx)
		}
		fail(stderr, "status", fmt.Errorf("no snapshot: %w", err))
		if ctx.Err() != nil {
			return exitFail // interrupted
		}
		return exitUnreadable
	}
	if *asJSON {
		b, err := json.Marshal(snap)
		if err != nil {
			return fail(stderr, "status", err)
		}
		fmt.Fprintf(stdout, "%s\n", b)
	} else {
		writeSnapshot(stdout, snap)
	}
	if allTargetsReachable(snap, len(o.Targets) > 0) {
		return exitOK
	}
	return exitFail
}

// writeSnapshot prints snap for a person: the state, then one line per
// interface.
func writeSnapshot(w io.Writer, s netmon.Snapshot) {
	fmt.Fprintf(w, "%s\n", s.String())
	for _, is := range s.Interfaces {
		var b strings.Builder
		fmt.Fprintf(&b, "  %-10s %s", is.Name, is.Oper)
		if is.Carrier {
			b.WriteString(" carrier")
		} else {
			b.WriteString(" no-carrier")
		}
		if is.Usable {
			b.WriteString(" usable")
		} else if is.Down != "" {
			fmt.Fprintf(&b, " unusable(%s)", is.Down)
		}
		for _, a := range is.Addrs {
			fmt.Fprintf(&b, " %s", a.Addr)
		}
		for _, rt := range is.Routes {
			if rt.Gateway != "" {
				fmt.Fprintf(&b, " default via %s", rt.Gateway)
			} else {
				b.WriteString(" default on-link")
			}
		}
		if wi := is.Wifi; wi != nil && wi.Associated {
			fmt.Fprintf(&b, " ssid=%q bssid=%s signal=%ddBm", wi.SSID, wi.BSSID, wi.SignalDBm)
		}
		if d := is.DHCP; d != nil && d.Phase != "" {
			fmt.Fprintf(&b, " dhcp=%s", d.Phase)
			if d.LeftSec > 0 {
				fmt.Fprintf(&b, "(%v left)", (time.Duration(d.LeftSec) * time.Second).Round(time.Second))
			}
			if d.Server != "" {
				fmt.Fprintf(&b, " server=%s", d.Server)
			}
		}
		fmt.Fprintln(w, b.String())
	}
	for _, t := range s.Targets {
		var b strings.Builder
		fmt.Fprintf(&b, "  target %s", t.Target)
		if t.Addr != "" && t.Addr != t.Target {
			fmt.Fprintf(&b, " (%s)", t.Addr)
		}
		if t.Reachable {
			b.WriteString(" reachable")
		} else {
			fmt.Fprintf(&b, " unreachable(%s)", t.Reason)
		}
		if t.Via != "" {
			fmt.Fprintf(&b, " via %s over %s", t.Via, t.Iface)
		} else if t.Iface != "" {
			fmt.Fprintf(&b, " dev %s", t.Iface)
		}
		if t.Gateway != "" {
			fmt.Fprintf(&b, " gateway %s", t.Gateway)
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintf(w, "  watchers: wifi %s; dhcp %s; lease files %s; socket errors %s\n", s.Wifi, s.DHCP, s.LeaseFiles, s.SockErrors)
}

func runWaitOnline(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("wait-online", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var mf monitorFlags
	mf.register(fs)
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long (0: wait forever)")
	quiet := fs.Bool("q", false, "print nothing when online")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: netmon wait-online [flags]")
		fmt.Fprintln(fs.Output(), "\nReturns as soon as traffic can flow (state up or degraded; with --target, to")
		fmt.Fprintln(fs.Output(), "every target): exit 0, or 1 on timeout. Like nm-online and")
		fmt.Fprintln(fs.Output(), "systemd-networkd-wait-online, but usable at any time, not only at boot. An")
		fmt.Fprintln(fs.Output(), "--iface that does not exist yet is waited for.\n\nFlags:")
		fs.PrintDefaults()
	}
	if code := parse(fs, args); code >= 0 {
		return code
	}
	if *timeout < 0 {
		fmt.Fprintf(stderr, "netmon wait-online: --timeout %v: want a duration >= 0\n", *timeout)
		return exitUsage
	}
	o := mf.options(quietLogger(stderr))
	o.SockErrors = "off"
	// An --iface that does not exist yet is waited for, as
	// systemd-networkd-wait-online --interface does: at boot a USB
	// adapter may still be enumerating.
	o.AwaitInterfaces = true
	m, err := newMonitor(o)
	if err != nil {
		return fail(stderr, "wait-online", err)
	}
	if *timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, *timeout, errTimeout)
		defer cancel()
	}
	r := start(ctx, m)
	online := false
	var last netmon.Status // the last state seen; after Run, m.Status() says shutdown
	for ev := range r.events {
		if ev.Kind != netmon.EventBaseline && ev.Kind != netmon.EventState {
			continue
		}
		last = ev.Status
		if snap := m.Snapshot(); allTargetsReachable(snap, len(o.Targets) > 0) {
			// Say what was judged online: the state may have changed
			// since the event (a down baseline, then up at once).
			last = netmon.Status{State: snap.State, Reason: snap.Reason, Iface: snap.Iface, Target: snap.Target, Since: snap.Since}
			online = true
			break
		}
	}
	err = r.stop()
	switch {
	case online:
		if !*quiet {
			fmt.Fprintf(stdout, "online: %s via %s\n", last.State, last.Iface)
		}
		return exitOK
	case errors.Is(context.Cause(ctx), errTimeout):
		why := describe(last)
		if missing, _, err := missingIfaces(o.Interfaces); err == nil && len(missing) > 0 {
			why += fmt.Sprintf("; no interface %s appeared", strings.Join(missing, ", "))
		}
		fmt.Fprintf(stderr, "netmon wait-online: not online after %v: %s\n", *timeout, why)
		return exitFail
	case err != nil:
		return fail(stderr, "wait-online", err)
	default: // a signal
		fmt.Fprintf(stderr, "netmon wait-online: interrupted while %s\n", describe(last))
		return exitFail
	}
}

// errTimeout is the cause of wait-online's context when --timeout ends it.
var errTimeout = errors.New("timeout")

// describe says a status in a few words: "down (carrier-lost on va)".
func describe(s netmon.Status) string {
	out := s.State.String()
	switch {
	case s.Reason != "" && s.Iface != "":
		out += fmt.Sprintf(" (%s on %s", s.Reason, s.Iface)
	case s.Reason != "":
		out += fmt.Sprintf(" (%s", s.Reason)
	default:
		return out
	}
	if s.Target != "" {
		out += ", target " + s.Target
	}
	return out + ")"
}
