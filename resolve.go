package netmon

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"time"
)

// Host name resolution of targets: when Run starts, again with backoff
// (1 s doubling to 30 s) while a name does not resolve, and again each time
// a target's path returns after it was lost.
const (
	resolveTimeout    = 5 * time.Second
	resolveBackoffMin = time.Second
	resolveBackoffMax = 30 * time.Second
)

// defaultResolve resolves a host name with the system's resolver.
func defaultResolve(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// hasHosts reports whether any target is a host name.
func (m *Monitor) hasHosts() bool {
	for _, p := range m.paths {
		if p.t.Host != "" {
			return true
		}
	}
	return false
}

// resolveLoop resolves the targets' host names until ctx ends.
func (m *Monitor) resolveLoop(ctx context.Context) error {
	backoff := resolveBackoffMin
	for {
		m.mu.Lock()
		var todo []*pathState
		for _, p := range m.paths {
			if p.t.Host != "" && (!p.t.Addr.IsValid() || p.resolveAgain) {
				todo = append(todo, p)
			}
		}
		m.mu.Unlock()
		failed := false
		for _, p := range todo {
			rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			addrs, err := m.resolve(rctx, p.t.Host)
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			m.mu.Lock()
			switch {
			case err == nil && len(addrs) == 0:
				err = &net.DNSError{Err: "no addresses", Name: p.t.Host, IsNotFound: true}
				fallthrough
			case err != nil:
				failed = failed || !p.t.Addr.IsValid()
				if !p.saidUnresolved {
					p.saidUnresolved = true
					m.noticeLocked(time.Now(), "targets", "target "+p.t.Spec+" does not resolve: "+err.Error()+"; retrying")
				}
			default:
				p.resolveAgain, p.saidUnresolved = false, false
				var got []netip.Addr
				for _, a := range addrs[:min(len(addrs), maxAddrs)] {
					got = append(got, a.Unmap())
				}
				if !slices.Equal(got, p.addrs) {
					p.addrs, p.t.Addr = got, got[0]
					m.pathsDirty = true
					m.wakeLocked()
				}
			}
			m.mu.Unlock()
		}
		if !failed {
			backoff = resolveBackoffMin
			select {
			case <-ctx.Done():
				return nil
			case <-m.reresolve:
			}
			continue
		}
		t := time.NewTimer(backoff)
		backoff = min(2*backoff, resolveBackoffMax)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-m.reresolve:
		case <-t.C:
		}
		t.Stop()
	}
}

// notePathsLocked asks for a host name to be resolved again when its
// target's path returns after it was lost: the network it returns on may
// answer differently.
func (m *Monitor) notePathsLocked() {
	for _, p := range m.paths {
		if p.t.Host == "" {
			continue
		}
		switch {
		case p.ok && p.lost:
			p.lost, p.resolveAgain = false, true
			select {
			case m.reresolve <- struct{}{}:
			default:
			}
		case !p.ok && p.wasOK:
			p.lost = true
		}
		p.wasOK = p.ok
	}
}
