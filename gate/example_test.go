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

	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Sender().Wait(ctx); err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("released: sending the important message")
	}()
	g.Open() // the owner saw a usable path
	<-done

	g.Close(gate.Reason{Code: "carrier-lost", Iface: "wlan0"})
	telemetry := g.Sender().With(gate.Policy{FailFast: true})
	err = telemetry.Wait(ctx)
	fmt.Println(errors.Is(err, gate.ErrDown))
	fmt.Println(err)
	// Output:
	// released: sending the important message
	// true
	// gate: not held: carrier-lost on wlan0: gate: closed, and the policy is fail-fast
}

// Do owns the loop: it waits while the gate is closed, sends, and resends
// after a connection error. Delivery is at least once: here the peer got
// message 1 but the connection broke before its acknowledgement, so Do sent
// it again, and the receiver drops the duplicate by its sequence number.
func ExampleSender_Do() {
	g, err := gate.New(gate.Config{
		Backoff: gate.Backoff{Initial: time.Millisecond, Max: 10 * time.Millisecond},
		OnError: func(a gate.Attempt) { fmt.Printf("attempt %d failed (%v)\n", a.N, a.Class) },
	})
	if err != nil {
		panic(err)
	}

	// The receiver remembers the last sequence number it accepted.
	var lastSeq uint64
	receive := func(seq uint64, text string) {
		if seq <= lastSeq {
			fmt.Printf("receiver: dropped duplicate %d\n", seq)
			return
		}
		lastSeq = seq
		fmt.Printf("receiver: %d %q\n", seq, text)
	}

	ackLost := true
	send := func(seq uint64, text string) func(context.Context) error {
		return func(context.Context) error {
			receive(seq, text)
			if ackLost {
				ackLost = false
				return &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET}
			}
			return nil
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := g.Sender().Do(ctx, send(1, "arm stopped")); err != nil {
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
	if err := g.Sender().Do(ctx, send(2, "battery 12%")); err != nil {
		fmt.Println(err)
	}
	// Output:
	// receiver: 1 "arm stopped"
	// attempt 1 failed (connection)
	// receiver: dropped duplicate 1
	// owner: link is back
	// receiver: 2 "battery 12%"
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
