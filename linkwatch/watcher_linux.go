package linkwatch

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// dumpRetries bounds the re-reads of a dump the kernel flags as
// interrupted; after that the possibly inconsistent result is used and
// later notifications repair it.
const dumpRetries = 5

// rereadBackoff is how long resync waits before each retry of a failed
// full re-read; when the last retry fails too, Run ends with the error
// rather than carry on with a state it knows may be wrong.
var rereadBackoff = []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 200 * time.Millisecond, time.Second, 2 * time.Second}

// run is Run on Linux.
func (w *Watcher) run(ctx context.Context) (err error) {
	defer func() {
		if err == nil && ctx.Err() == nil {
			err = w.fatal // nil unless a re-read kept failing
		}
	}()
	// Subscribe before the first dump, so that no change between the dump
	// and the subscription is missed: changes queued meanwhile are folded
	// in after the baseline, in kernel order, and converge.
	sub, err := openSocket(w.cfg.NetNS, groups, w.cfg.ReceiveBuffer)
	if err != nil {
		return err
	}
	if sub.rcvbuf > 0 && sub.rcvbuf < w.cfg.ReceiveBuffer {
		// Without CAP_NET_ADMIN (SO_RCVBUFFORCE) the kernel caps the
		// buffer at net.core.rmem_max: say so once, with what it granted,
		// because a storm then overflows sooner (and is re-read).
		w.log.Warn(fmt.Sprintf("linkwatch: netlink receive buffer %d KiB, not the %d KiB asked (no CAP_NET_ADMIN: capped at net.core.rmem_max); about %d address changes at once fit before a re-read (a gap)",
			sub.rcvbuf>>10, w.cfg.ReceiveBuffer>>10, sub.rcvbuf/notificationBytes),
			zap.Int("granted_bytes", sub.rcvbuf), zap.Int("asked_bytes", w.cfg.ReceiveBuffer))
	}
	w.joinNexthop(sub)
	dump, err := openSocket(w.cfg.NetNS, 0, 0)
	if err != nil {
		sub.close()
		return err
	}
	// cur is the subscription in use; a receive error other than ENOBUFS
	// replaces it. Closing the sockets is what interrupts a blocked recv
	// when ctx ends.
	cur := sub
	stop := context.AfterFunc(ctx, func() { sub.close(); dump.close() })
	defer func() {
		stop()
		cur.close()
		dump.close()
	}()
	w.subPID.Store(sub.pid)
	w.keepLookupSocket(true)
	defer w.keepLookupSocket(false)

	now := time.Now()
	m, err := w.snapshot(dump, now)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	w.mu.Lock()
	w.model, w.read = m, now
	st := m.state(now)
	w.mu.Unlock()
	if !w.emit(ctx, Baseline{At: now, State: st}) {
		return nil
	}

	var msg message
	evs := make([]Event, 0, 16)
	for {
		// Wake up to re-read the routes when one is about to expire:
		// the kernel extends routes without a message.
		if err := cur.setDeadline(w.model.expiryCheck(time.Now())); err != nil {
			if ctx.Err() != nil {
				return nil // the socket was closed
			}
			return fmt.Errorf("linkwatch: netlink socket deadline: %w", err)
		}
		n, from, err := cur.recv()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			if !w.relistRoutes(ctx, dump) {
				return nil
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			// Draining reads without waiting; a deadline would end it.
			_ = cur.setDeadline(time.Time{})
			if !errors.Is(err, unix.ENOBUFS) && !errors.Is(err, errTruncated) {
				// Any other receive error leaves the socket in an
				// unknown state: replace it, then re-read as after an
				// overflow. Never stop watching unless we cannot.
				w.log.Warn("linkwatch: netlink receive failed, re-subscribing", zap.Error(err))
				stop()
				cur.close()
				next, oerr := openSocket(w.cfg.NetNS, groups, w.cfg.ReceiveBuffer)
				if oerr != nil {
					return fmt.Errorf("linkwatch: re-subscribe after %w: %w", err, oerr)
				}
				cur = next
				w.joinNexthop(cur)
				w.subPID.Store(cur.pid)
				stop = context.AfterFunc(ctx, func() { next.close(); dump.close() })
			}
			if derr := cur.drain(); derr != nil {
				if ctx.Err() != nil {
					return nil
				}
				w.log.Warn("linkwatch: draining the netlink socket failed", zap.Error(derr))
			}
			if !w.resync(ctx, dump, fmt.Errorf("linkwatch: netlink receive: %w", err)) {
				return nil
			}
			continue
		}
		if from != 0 {
			// Only the kernel (port id 0) describes the kernel's state;
			// root processes can unicast forged messages to our port.
			w.ignored.Add(1)
			w.log.Debug("linkwatch: ignored a message not sent by the kernel", zap.Uint32("sender", from))
			continue
		}
		now := time.Now()
		ok := true
		err = splitMessages(cur.buf[:n], func(h header, data []byte) error {
			if perr := parseMessage(h, data, &msg); perr != nil {
				w.log.Warn("linkwatch: ignored a malformed rtnetlink message", zap.Uint16("type", h.typ), zap.Error(perr))
				return nil
			}
			if msg.kind == kindNone {
				return nil
			}
			w.mu.Lock()
			var eff effect
			evs, eff = w.model.apply(&msg, now, evs[:0])
			w.mu.Unlock()
			for _, ev := range evs {
				if !w.emit(ctx, ev) {
					ok = false
					return ctx.Err()
				}
			}
			switch {
			case eff&resync != 0:
				ok = w.resync(ctx, dump, nil)
			case eff&relistRoutes != 0:
				ok = w.relistRoutes(ctx, dump)
			}
			if !ok {
				return ctx.Err()
			}
			return nil
		})
		if !ok {
			return nil
		}
		if err != nil {
			// A broken datagram: what it held is unknown, so treat it
			// like lost messages.
			if !w.resync(ctx, dump, fmt.Errorf("linkwatch: malformed netlink datagram: %w", err)) {
				return nil
			}
		}
	}
}

// snapshot reads links, addresses, routes and neighbours in full into a
// new model, retrying dumps the kernel flags as interrupted.
func (w *Watcher) snapshot(d *sock, now time.Time) (*model, error) {
	for attempt := 1; ; attempt++ {
		m := newModel(w.include, w.kindHint())
		var (
			msg     message
			scratch []Event
			intr    bool
		)
		// Nexthop objects before the routes that use them.
		for _, typ := range []uint16{unix.RTM_GETLINK, unix.RTM_GETADDR, unix.RTM_GETNEXTHOP, unix.RTM_GETROUTE, unix.RTM_GETNEIGH, unix.RTM_GETRULE} {
			err := w.dump(d, typ, func(h header, data []byte) error {
				if err := parseMessage(h, data, &msg); err != nil {
					w.log.Warn("linkwatch: ignored a malformed rtnetlink message", zap.Uint16("type", h.typ), zap.Error(err))
					return nil
				}
				scratch, _ = m.apply(&msg, now, scratch[:0])
				return nil
			})
			switch {
			case errors.Is(err, errDumpInterrupted):
				intr = true
			case err != nil:
				return nil, err
			}
		}
		if !intr {
			return m, nil
		}
		if attempt == dumpRetries {
			w.log.Warn("linkwatch: dumps kept being interrupted; using the last one", zap.Int("attempts", attempt))
			return m, nil
		}
	}
}

// resync re-reads the whole state, emits what changed and, when cause is
// not nil (lost messages), a GapEvent. It reports false when ctx ended.
func (w *Watcher) resync(ctx context.Context, d *sock, cause error) bool {
	now := time.Now()
	if cause != nil {
		w.gaps.Add(1)
		w.log.Warn("linkwatch: kernel messages lost, state re-read", zap.Error(cause))
	}
	next, err := w.snapshot(d, now)
	for i := 0; err != nil; i++ {
		if ctx.Err() != nil {
			return false
		}
		if i == len(rereadBackoff) {
			// The state may be wrong and nothing will correct it: stop,
			// so that the caller knows, rather than serve it.
			w.fatal = fmt.Errorf("linkwatch: re-reading the kernel's state failed %d times: %w", i+1, err)
			return false
		}
		w.log.Warn("linkwatch: re-read failed; retrying", zap.Error(err), zap.Duration("in", rereadBackoff[i]))
		t := time.NewTimer(rereadBackoff[i])
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
		now = time.Now()
		next, err = w.snapshot(d, now)
	}
	w.mu.Lock()
	evs := w.model.diff(next, now, nil)
	w.model = next
	if cause != nil {
		w.read = now
	}
	st := next.state(w.read)
	w.mu.Unlock()
	for _, ev := range evs {
		if !w.emit(ctx, ev) {
			return false
		}
	}
	if cause != nil {
		return w.emit(ctx, GapEvent{At: now, Err: cause, State: st})
	}
	return true
}

// relistRoutes re-reads the routes after a link changed state or lost an
// IPv4 address: the kernel removes IPv4 routes of a link set down, or of
// one whose last IPv4 address went, without RTM_DELROUTE, and sets or
// clears their linkdown flag on carrier changes without any message.
func (w *Watcher) relistRoutes(ctx context.Context, d *sock) bool {
	now := time.Now()
	// Only this goroutine writes the model, so reading its links without
	// the lock is safe; the lock is for readers of State.
	tmp := &model{include: w.include, links: w.model.links, routes: make(map[routeKey]Route),
		nexthops: make(map[uint32]nexthop), nhRoutes: make(map[routeHead]Route)}
	var msg message
	fold := func(h header, data []byte) error {
		if err := parseMessage(h, data, &msg); err != nil {
			return nil
		}
		switch msg.kind {
		case kindNexthop:
			tmp.applyNexthop(&msg, now, nil)
		case kindRoute:
			tmp.applyRoute(&msg, now, nil)
		}
		return nil
	}
	// The kernel deletes nexthop objects without a message too: read
	// them again first.
	err := w.dump(d, unix.RTM_GETNEXTHOP, fold)
	if err == nil {
		err = d.dump(unix.RTM_GETROUTE, fold)
	}
	if errors.Is(err, errDumpInterrupted) {
		return w.resync(ctx, d, nil)
	}
	if err != nil {
		if ctx.Err() != nil {
			return false
		}
		// The routes are unknown now: re-read everything (with retries),
		// and say that messages' effects were lost meanwhile.
		return w.resync(ctx, d, fmt.Errorf("linkwatch: re-reading routes: %w", err))
	}
	w.mu.Lock()
	evs := w.model.diffRoutes(tmp, now, nil)
	w.model.routes, w.model.nexthops, w.model.nhRoutes = tmp.routes, tmp.nexthops, tmp.nhRoutes
	w.mu.Unlock()
	for _, ev := range evs {
		if !w.emit(ctx, ev) {
			return false
		}
	}
	return true
}

// joinNexthop joins the nexthop objects' group (RTNLGRP_NEXTHOP). A
// kernel that refuses (older than 5.3, without nexthop objects) is logged
// once; everything else is watched as before.
func (w *Watcher) joinNexthop(s *sock) {
	if err := s.join(unix.RTNLGRP_NEXTHOP); err != nil && !w.nhJoinWarned.Swap(true) {
		w.log.Warn("linkwatch: cannot join RTNLGRP_NEXTHOP: changes of nexthop objects (ip nexthop) are seen only at the next re-read", zap.Error(err))
	}
}

// dump is d.dump, except that a kernel without nexthop objects, which
// answers RTM_GETNEXTHOP with EOPNOTSUPP or EINVAL, gives an empty dump
// (logged once): without the objects no route can use one.
func (w *Watcher) dump(d *sock, typ uint16, fn func(h header, data []byte) error) error {
	var err error
	if w.failDump != nil {
		err = w.failDump(typ)
	}
	if err == nil {
		err = d.dump(typ, fn)
	}
	if typ == unix.RTM_GETRULE && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EAFNOSUPPORT)) {
		// A kernel without CONFIG_IP_MULTIPLE_TABLES has no rules: every
		// lookup uses the main table.
		if !w.noRules.Swap(true) {
			w.log.Warn("linkwatch: the kernel has no policy routing rules (RTM_GETRULE); lookups use the main table only", zap.Error(err))
		}
		return nil
	}
	if typ == unix.RTM_GETNEXTHOP && (errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EINVAL)) {
		if !w.nhDumpWarned.Swap(true) {
			w.log.Warn("linkwatch: the kernel cannot list nexthop objects (RTM_GETNEXTHOP); routes are read without them", zap.Error(err))
		}
		return nil
	}
	return err
}

// kindHint returns a function that recognises wireless interfaces through
// sysfs, which only describes the current network namespace; when
// watching another one it returns nil (kind unknown).
func (w *Watcher) kindHint() func(string) string {
	if w.cfg.NetNS != 0 {
		return nil
	}
	return func(name string) string {
		if _, err := os.Stat("/sys/class/net/" + name + "/wireless"); err == nil {
			return "wireless"
		}
		if _, err := os.Stat("/sys/class/net/" + name + "/phy80211"); err == nil {
			return "wireless"
		}
		return ""
	}
}

// linkNames lists the interface names in the watched namespace.
func (w *Watcher) linkNames() ([]string, error) {
	d, err := openSocket(w.cfg.NetNS, 0, 0)
	if err != nil {
		return nil, err
	}
	defer d.close()
	var (
		names []string
		msg   message
	)
	err = d.dump(unix.RTM_GETLINK, func(h header, data []byte) error {
		if err := parseMessage(h, data, &msg); err == nil && msg.kind == kindLink {
			names = append(names, string(msg.name))
		}
		return nil
	})
	if err != nil && !errors.Is(err, errDumpInterrupted) {
		return nil, err
	}
	return names, nil
}
