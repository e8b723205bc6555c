package dhcpwatch_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/seed-a56be422/netmon/dhcpwatch"
	"github.com/seed-a56be422/netmon/linkwatch"
)

// A Tracker is fed linkwatch events and told the time; it never reads the
// clock, so this example invents one.
func ExampleTracker() {
	t0 := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	tr := dhcpwatch.NewTracker(dhcpwatch.Config{})
	tr.Apply(t0, linkwatch.Baseline{At: t0, State: linkwatch.State{
		Links: map[int]linkwatch.Link{2: {Index: 2, Name: "wlan0"}},
	}})

	// The DHCP client installs a 2-minute lease.
	a := linkwatch.Addr{
		Index: 2, Iface: "wlan0", Prefix: netip.MustParsePrefix("10.0.0.5/24"),
		Valid: 2 * time.Minute, Preferred: 2 * time.Minute, Observed: t0,
	}
	for _, e := range tr.Apply(t0, linkwatch.AddrEvent{At: t0, Op: linkwatch.AddrAdded, Addr: a}) {
		fmt.Println(e)
	}
	// Nothing renews it: at T1 the client is renewing, at T2 rebinding.
	// Each is reported after Config.Slack (3s) of grace, since clients
	// renew right at T1.
	next, _ := tr.NextDeadline()
	fmt.Println("next deadline after", next.Sub(t0))
	for _, e := range tr.Advance(t0.Add(110 * time.Second)) {
		fmt.Println(e, "at", e.At.Sub(t0))
	}
	s := tr.State()[0]
	fmt.Println(s.Iface, s.Phase, "left", s.TimeLeft)
	// Output:
	// acquired wlan0 10.0.0.5/24 (kernel)
	// next deadline after 1m3s
	// renewing wlan0 10.0.0.5/24 (kernel) at 1m3s
	// rebinding wlan0 10.0.0.5/24 (kernel) at 1m48s
	// wlan0 rebinding left 10s
}

func ExampleParse() {
	data := []byte(`lease {
  interface "wlan0";
  fixed-address 10.1.2.3;
  option subnet-mask 255.255.0.0;
  option dhcp-lease-time 600;
  option dhcp-server-identifier 10.1.0.2;
  renew 4 2026/11/19 08:05:00;
  rebind 4 2026/11/19 08:08:45;
  expire 4 2026/11/19 08:10:00;
}
`)
	ls, err := dhcpwatch.Parse(dhcpwatch.Dhclient, "/var/lib/dhcp/dhclient.leases", data, time.Time{})
	if err != nil {
		fmt.Println(err)
		return
	}
	l := ls[0]
	fmt.Println(l.Iface, l.Addr, "from", l.Server, "for", l.Length, "T1", l.T1, "T2", l.T2)
	// Output: wlan0 10.1.2.3/16 from 10.1.0.2 for 10m0s T1 5m0s T2 8m45s
}

// LeaseFiles runs until its context ends; its events go to a Tracker's
// ApplyLease in the same loop that feeds it linkwatch events.
func ExampleLeaseFiles() {
	w, err := dhcpwatch.NewLeaseFiles(dhcpwatch.FilesConfig{}) // the default paths
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	go func() {
		for l := range w.Events() {
			fmt.Println(l.Iface, l.Addr, l.Source)
		}
	}()
	_ = w.Run(ctx)
}
