package linkwatch

import "fmt"

// Flag values of IFA_F_* and NUD_* that have names below and are not
// already named in state.go. They are spelled out, not taken from
// golang.org/x/sys/unix, so that the types stay portable.
const (
	flagNoDAD     = 0x02 // IFA_F_NODAD
	nudIncomplete = 0x01
	nudStale      = 0x04
	nudDelay      = 0x08
	nudProbe      = 0x10
	nudNoARP      = 0x40
	nudPermanent  = 0x80
)

var addrFlagNames = []struct {
	bit  uint32
	name string
}{
	{flagTentative, "tentative"}, {flagDeprecate, "deprecated"}, {flagDADFailed, "dadfailed"},
	{flagPermanent, "permanent"}, {flagNoDAD, "nodad"}, {flagOptimist, "optimistic"},
}

// FlagNames returns the names of the address's notable IFA_F_* flags, as
// iproute2 prints them ("tentative", "deprecated", "dadfailed",
// "permanent", "nodad", "optimistic"); nil when none is set.
func (a Addr) FlagNames() []string {
	var out []string
	for _, f := range addrFlagNames {
		if a.Flags&f.bit != 0 {
			out = append(out, f.name)
		}
	}
	return out
}

// ScopeName returns the address's scope as iproute2 names it: "global",
// "site", "link", "host", or "scope(N)".
func (a Addr) ScopeName() string {
	switch a.Scope {
	case scopeUniverse:
		return "global"
	case 200:
		return "site"
	case 253:
		return "link"
	case 254:
		return "host"
	}
	return fmt.Sprintf("scope(%d)", a.Scope)
}

// StateName returns the neighbour entry's most telling NUD state, as
// iproute2 names it in lower case: "failed", "reachable", "stale",
// "delay", "probe", "incomplete", "permanent", "noarp" or "none".
func (n Neigh) StateName() string {
	for _, s := range []struct {
		bit  uint16
		name string
	}{
		{nudFailed, "failed"}, {nudReachable, "reachable"}, {nudStale, "stale"}, {nudDelay, "delay"},
		{nudProbe, "probe"}, {nudIncomplete, "incomplete"}, {nudPermanent, "permanent"}, {nudNoARP, "noarp"},
	} {
		if n.State&s.bit != 0 {
			return s.name
		}
	}
	return "none"
}
