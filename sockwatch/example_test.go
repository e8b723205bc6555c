package sockwatch_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/netip"
	"os/signal"
	"syscall"

	"github.com/seed-a56be422/netmon/sockwatch"
)

// ExampleNew watches every process's connection errors until interrupted,
// and falls back to the no-route counters when eBPF is not available. It
// needs root (or CAP_BPF and CAP_PERFMON), so it only compiles here.
func ExampleNew() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	w, err := sockwatch.New(sockwatch.Config{SyscallTracing: true})
	if errors.Is(err, sockwatch.ErrPermission) || errors.Is(err, sockwatch.ErrNotSupported) {
		n, _ := sockwatch.ReadNoRoutes()
		log.Printf("socket errors unavailable (%v); failed route lookups so far: %d", err, n.IPv4+n.IPv6)
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		for ev := range w.Events() {
			fmt.Printf("%s[%d] %v\n", ev.Comm, ev.PID, ev.Err())
		}
	}()
	if err := w.Run(ctx); err != nil {
		log.Print(err)
	}
	log.Printf("%+v", w.Stats())
}

// ExampleEvent_Err shows the error an event stands for, as the failing
// application would have seen it.
func ExampleEvent_Err() {
	ev := sockwatch.Event{
		PID: 4242, Comm: "python3", Op: sockwatch.OpConnect,
		Errno: syscall.ENETUNREACH, Dst: netip.MustParseAddrPort("10.0.0.5:443"),
	}
	fmt.Printf("%s[%d] %v\n", ev.Comm, ev.PID, ev.Err())
	fmt.Println(errors.Is(ev.Err(), syscall.ENETUNREACH))
	// Output:
	// python3[4242] connect ip 10.0.0.5:443: network is unreachable
	// true
}
