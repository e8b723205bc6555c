package outbox_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/outbox"
)

// A sender appends each important message before sending it, drains the
// outbox through the Gate, and acknowledges each message when the
// receiver confirms it. Here the "receiver" confirms at once.
func Example() {
	dir, err := os.MkdirTemp("", "outbox-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	o, err := outbox.Open(dir, outbox.Config{}) // fsync every append
	if err != nil {
		log.Fatal(err)
	}
	defer o.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, p := range []string{"arm homed", "battery 81%"} {
		// Accepted: durable once Append returns nil.
		if _, err := o.Append(ctx, outbox.Message{Stream: "status", Payload: []byte(p)}); err != nil {
			log.Fatal(err)
		}
	}

	g, err := gate.New(gate.Config{}) // in a robot: the Monitor's m.Gate()
	if err != nil {
		log.Fatal(err)
	}
	sent := make(chan struct{}, 2)
	done := make(chan error, 1)
	go func() {
		done <- o.Drain(ctx, g.Sender(), func(_ context.Context, m outbox.Message) error {
			// Write "ID:EPOCH:N payload" to the wire here; the
			// receiver's "ACK ID:EPOCH:N" leads to Ack.
			fmt.Printf("send N=%d %s: %s\n", m.N, m.Stream, m.Payload)
			if err := o.Ack(m.N); err != nil { // delivered
				return err
			}
			sent <- struct{}{}
			return nil
		})
	}()
	<-sent
	<-sent
	cancel()
	<-done
	s := o.Stats()
	fmt.Printf("delivered %d, pending %d\n", s.Delivered, s.Records)
	// Output:
	// send N=1 status: arm homed
	// send N=2 status: battery 81%
	// delivered 2, pending 0
}

// Salvage reads the messages of a store that Open moved aside as
// unreadable (its [outbox.CorruptError.MovedTo]); here, for the example,
// an intact store of two messages.
func ExampleSalvage() {
	dir, err := os.MkdirTemp("", "outbox-salvage")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	o, err := outbox.Open(dir, outbox.Config{})
	if err != nil {
		log.Fatal(err)
	}
	for _, p := range []string{"arm homed", "battery 81%"} {
		if _, err := o.Append(context.Background(), outbox.Message{Stream: "status", Payload: []byte(p)}); err != nil {
			log.Fatal(err)
		}
	}
	epoch := o.Epoch()
	if err := o.Close(); err != nil {
		log.Fatal(err)
	}

	// In a robot: the path from o.MovedAside().MovedTo.
	got, ms, err := outbox.Salvage(filepath.Join(dir, outbox.FileName))
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range ms {
		fmt.Printf("N=%d %s: %s (same epoch: %v)\n", m.N, m.Stream, m.Payload, m.Epoch == epoch && got == epoch)
	}
	// Output:
	// N=1 status: arm homed (same epoch: true)
	// N=2 status: battery 81% (same epoch: true)
}
