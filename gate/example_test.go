package gate_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon/gate"
)

// A sender waits on the gate before an important send; the owner opens it
// when the network is back. Best-effort telemetry fails fast instead.
func ExampleSender_Wait() {
	g, err := gate.New(gate.Config{StartClosed: gate.Reason{Code: "unknown"}})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	sender := g.Sender() // what the owner hands to senders: no Open, Close or Shutdown

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := sender.Wait(ctx); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("released: sending the important message")
	}()
	for g.Stats().HeldNow == 0 {
		time.Sleep(time.Millisecond)
	}
	g.Open() // the owner saw a usable path
	<-done

	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	telemetry := sender.With(gate.Policy{FailFast: true})
	err = telemetry.Wait(ctx)
	fmt.Println(errors.Is(err, gate.ErrDown))
	fmt.Println(err)
	// Output:
	// released: sending the important message
	// true
	// gate: not held: carrier-lost on wlan0: gate: closed, and the policy is fail-fast
}

// Do owns the loop: it waits while the gate is closed, sends, and resends
// after a connection error. Delivery is at least once, and only because
// send returns nil after the receiver's acknowledgement: here the receiver
// got message 1 but the connection broke before its acknowledgement, so
// Do sent it again, and the receiver dropped the duplicate by its ID. The
// receiver remembers the IDs it has seen, not the highest sequence number:
// once a retry reorders messages, "at or below the last one" would drop
// real ones.
func ExampleSender_Do() {
	g, err := gate.New(gate.Config{
		Backoff: gate.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		OnError: func(a gate.Attempt) { fmt.Printf("attempt %d failed (%v)\n", a.N, a.Class) },
	})
	if err != nil {
		panic(err)
	}
	sender := g.Sender()

	// The receiver keeps the IDs it has acknowledged. A real one keeps, per
	// sender and epoch, a high-water mark and a bounded window above it.
	seen := map[string]bool{}
	receive := func(id, text string) {
		if seen[id] {
			fmt.Printf("receiver: dropped duplicate %s\n", id)
			return
		}
		seen[id] = true
		fmt.Printf("receiver: %s %q\n", id, text)
	}

	ackLost := true
	// send returns nil only once the receiver acknowledged the message.
	send := func(id, text string) func(context.Context) error {
		return func(context.Context) error {
			receive(id, text)
			if ackLost {
				ackLost = false
				return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
			}
			return nil
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := sender.Do(ctx, send("robot-7:1:1", "arm stopped")); err != nil {
		fmt.Println(err)
	}

	// The link drops; the next send is held until the owner reopens.
	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	go func() {
		for g.Stats().HeldNow == 0 {
			time.Sleep(time.Millisecond)
		}
		fmt.Println("owner: link is back")
		g.Open()
	}()
	res, err := sender.DoCall(ctx, gate.Call{
		OnWaiting: func(s gate.State) { fmt.Println("waiting for the network:", s.Reason) },
	}, send("robot-7:1:2", "battery 12%"))
	if err != nil {
		fmt.Println(err)
	}
	fmt.Println("attempts:", res.Attempts)
	// Output:
	// receiver: robot-7:1:1 "arm stopped"
	// attempt 1 failed (connection)
	// receiver: dropped duplicate robot-7:1:1
	// waiting for the network: carrier-lost on wlan0
	// owner: link is back
	// receiver: robot-7:1:2 "battery 12%"
	// attempts: 1
}

// A send knows more about its errors than their class: an HTTP 503 with
// Retry-After is worth retrying then, a 400 never.
func ExampleRetryable() {
	g, err := gate.New(gate.Config{Backoff: gate.Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		panic(err)
	}
	status := []int{503, 400}
	send := func(context.Context) error {
		code := status[0]
		status = status[1:]
		switch code {
		case 503: // with "Retry-After: 0"
			return gate.Retryable(fmt.Errorf("POST /v1/events: %d", code), 0)
		case 400:
			return gate.Permanent(fmt.Errorf("POST /v1/events: %d", code))
		}
		return nil
	}
	err = g.Sender().Do(context.Background(), send)
	var se *gate.SendError
	if errors.As(err, &se) {
		fmt.Println(se.Attempts, se.Decision.Reason)
	}
	fmt.Println(err)
	// Output:
	// 2 permanent
	// gate: send failed after 2 attempt(s) (other, permanent): POST /v1/events: 400
}

// State and its Changed channel let a caller follow the gate without
// polling.
func ExampleState_Changed() {
	g, err := gate.New(gate.Config{})
	if err != nil {
		panic(err)
	}
	s := g.State()
	go g.Close(gate.Reason{Code: "no-default-route", Iface: "wlan0"})
	<-s.Changed()
	s = g.State()
	fmt.Println(s.Open, s.Reason, s.Seq)
	// Output:
	// false no-default-route on wlan0 1
}
