package netmon

import (
	"cmp"
	"slices"
	"strings"
)

// MaxSockComms is how many distinct process names
// [Monitor.SockErrorsByProcess] counts apart. Failures of further names
// are counted under [OtherComm], so that a machine that runs many short
// programs (or one that names its threads after requests) cannot make the
// Monitor's memory, or the metrics' label sets, grow without bound.
const MaxSockComms = 64

// OtherComm is the process name under which [Monitor.SockErrorsByProcess]
// counts the failures of names beyond the first [MaxSockComms]. A process
// that is itself named "other" is counted in the same entry.
const OtherComm = "other"

// ProcessErrors is how many failed socket operations eBPF observed in
// processes of one name, with one cause.
type ProcessErrors struct {
	// Comm is the name of the thread that failed: the kernel's comm (at
	// most 15 bytes), which is the process name unless the thread renamed
	// itself. It is "" when the process is unknown (an asynchronous error
	// on a socket whose owner sockwatch did not see connect), and
	// [OtherComm] for names beyond the first [MaxSockComms]. Bytes that
	// are not UTF-8 are replaced with U+FFFD.
	Comm string
	// Cause is what the network was doing, as in the failure's
	// Explanation.
	Cause Cause
	// Count is the number of failures since [New].
	Count uint64
}

// SockErrorsByProcess returns the failed socket operations observed with
// eBPF (see [Options.SockErrors]) and reported, counted by process name
// and cause: a copy, sorted by Comm and then Cause, listing only the pairs
// that occurred. The counts add up to [Stats].SockErrors; failures the
// Monitor ignored (other network namespaces, loopback) or that eBPF's
// filters left out are not in them.
func (m *Monitor) SockErrorsByProcess() []ProcessErrors {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.sockProcs.list()
}

// sockProcs counts eBPF-observed failures by process name and cause, for
// at most MaxSockComms names. The zero value is ready to use.
type sockProcs struct {
	byComm map[string]*[causeCount]uint64
	other  [causeCount]uint64 // names beyond the first MaxSockComms
}

// add counts one failure of a process named comm.
func (p *sockProcs) add(comm string, c Cause) {
	comm = strings.ToValidUTF8(comm, "\uFFFD")
	n := p.byComm[comm]
	if n == nil {
		if len(p.byComm) >= MaxSockComms {
			p.other[c]++
			return
		}
		if p.byComm == nil {
			p.byComm = make(map[string]*[causeCount]uint64)
		}
		n = new([causeCount]uint64)
		p.byComm[comm] = n
	}
	n[c]++
}

// list returns the non-zero counts, sorted by comm and cause.
func (p *sockProcs) list() []ProcessErrors {
	var out []ProcessErrors
	other := p.other
	for comm, n := range p.byComm {
		if comm == OtherComm {
			for c, v := range n {
				other[c] += v
			}
			continue
		}
		for c, v := range n {
			if v > 0 {
				out = append(out, ProcessErrors{Comm: comm, Cause: Cause(c), Count: v})
			}
		}
	}
	for c, v := range other {
		if v > 0 {
			out = append(out, ProcessErrors{Comm: OtherComm, Cause: Cause(c), Count: v})
		}
	}
	slices.SortFunc(out, func(a, b ProcessErrors) int {
		return cmp.Or(strings.Compare(a.Comm, b.Comm), cmp.Compare(a.Cause, b.Cause))
	})
	return out
}
