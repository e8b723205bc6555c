package dhcpwatch

import (
	"fmt"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// BenchmarkTrackerApply times the Monitor's per-event cost: one address
// refresh (a renewal) among n leased interfaces, plus the NextDeadline
// call the loop makes after every event.
func BenchmarkTrackerApply(b *testing.B) {
	for _, n := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("ifaces=%d", n), func(b *testing.B) {
			tr := NewTracker(Config{})
			st := linkwatch.State{Links: map[int]linkwatch.Link{}}
			for i := 1; i <= n; i++ {
				st.Links[i] = linkwatch.Link{Index: i, Name: fmt.Sprintf("eth%d", i)}
				a := kaddr(fmt.Sprintf("10.%d.%d.5/24", i/256, i%256), 120, 120, 0)
				a.Index = i
				st.Addrs = append(st.Addrs, a)
			}
			tr.Apply(t0, linkwatch.Baseline{At: t0, State: st})
			a := st.Addrs[0]
			b.ReportAllocs()
			now := t0
			for b.Loop() {
				// A renewal every second keeps the lease bound.
				now = now.Add(time.Second)
				a.Observed = now
				tr.Apply(now, linkwatch.AddrEvent{At: now, Op: linkwatch.AddrRefreshed, Addr: a})
				tr.NextDeadline()
			}
		})
	}
}

// BenchmarkParse times each parser on its fixture: the cost of one
// lease-file change.
func BenchmarkParse(b *testing.B) {
	for _, c := range []struct {
		kind    Kind
		fixture string
	}{
		{Dhclient, "dhclient.leases"},
		{Dhclient, "dhclient-multi.leases"},
		{Dhcpcd, "dhcpcd-dwc2.lease"},
		{DhcpcdDump, "dhcpcd-U.txt"},
		{Networkd, "networkd-timespan-3"},
	} {
		data := mustRead(b, c.fixture)
		b.Run(c.fixture, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			for b.Loop() {
				if _, err := Parse(c.kind, c.fixture, data, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
