package wifiwatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/seed-a56be422/netmon/wifiwatch"
)

func ExampleBands_Classify() {
	b := wifiwatch.DefaultBands()
	band := wifiwatch.BandUnknown
	for _, dbm := range []int{-60, -68, -70, -71, -67, -65, -64, -83, -86} {
		band = b.Classify(dbm, band, wifiwatch.DefaultHysteresis)
		fmt.Println(dbm, band)
	}
	// Output:
	// -60 good
	// -68 good
	// -70 good
	// -71 fair
	// -67 fair
	// -65 fair
	// -64 good
	// -83 weak
	// -86 critical
}

// The watcher needs nl80211; on a machine without Wi-Fi, Run emits one
// Unavailable event and returns an error wrapping ErrUnavailable.
func ExampleWatcher_Run() {
	w, err := wifiwatch.New(wifiwatch.Config{})
	if err != nil {
		log.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for ev := range w.Events() {
		switch ev := ev.(type) {
		case wifiwatch.Disconnected:
			log.Printf("%s lost %q (reason %d, by AP %v) at %d dBm", ev.Iface, ev.SSID, ev.Reason, ev.ByAP, ev.SignalDBm)
		case wifiwatch.SignalChanged:
			log.Printf("%s signal %v -> %v (%d dBm)", ev.Iface, ev.From, ev.To, ev.SignalDBm)
		case wifiwatch.Unavailable:
			log.Printf("Wi-Fi unavailable: %s", ev.Reason)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, wifiwatch.ErrUnavailable) {
		log.Fatal(err)
	}
}
