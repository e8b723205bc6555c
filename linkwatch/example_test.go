package linkwatch_test

import (
	"context"
	"fmt"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/seed-a56be422/netmon/linkwatch"
)

// Watch the current namespace's Wi-Fi interfaces and print what changes.
// The watcher needs the kernel, so this example only compiles.
func ExampleWatcher_Run() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	w, err := linkwatch.New(linkwatch.Config{Include: []string{"wl*"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() {
		for ev := range w.Events() {
			switch ev := ev.(type) {
			case linkwatch.Baseline:
				for i, l := range ev.State.Links {
					fmt.Println(l.Name, "usable:", ev.State.Usable(i))
				}
			case linkwatch.LinkEvent:
				fmt.Println(ev.Link.Name, "carrier:", ev.Link.Carrier)
			case linkwatch.GapEvent:
				fmt.Println("messages lost, state re-read:", ev.Err)
			}
		}
	}()
	if err := w.Run(ctx); err != nil {
		fmt.Println(err)
	}
}

// State.Usable needs carrier, a usable global address and a default route
// through the interface.
func ExampleState_Usable() {
	wlan := linkwatch.Link{Index: 3, Name: "wlan0", AdminUp: true, Carrier: true, Oper: linkwatch.OperUp}
	s := linkwatch.State{
		Links:  map[int]linkwatch.Link{3: wlan},
		Addrs:  []linkwatch.Addr{{Index: 3, Prefix: netip.MustParsePrefix("10.0.0.5/24")}},
		Routes: []linkwatch.Route{{Index: 3, Dst: netip.MustParsePrefix("0.0.0.0/0"), Gateway: netip.MustParseAddr("10.0.0.1")}},
	}
	fmt.Println("connected:", s.Usable(3))
	wlan.Carrier = false // the access point went away
	s.Links[3] = wlan
	fmt.Println("carrier lost:", s.Usable(3))
	// Output:
	// connected: true
	// carrier lost: false
}
