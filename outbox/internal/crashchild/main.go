// Command crashchild is the child of the outbox's crash-loop test: it
// opens the outbox in -dir, appends messages to three streams and drains
// them to the receiver at -addr, and is SIGKILLed by the test at random
// points. It writes lines "EPOCH N STREAM PAYLOAD" to the receiver, reads
// lines "ACK N", and prints "R EPOCH" once the outbox is open, "C" once
// it is connected to the receiver, and "A N STREAM NS" for every
// accepted message (Append returned nil), NS being the time it returned
// on the machine's CLOCK_MONOTONIC, in nanoseconds (the test reads the
// same clock when it kills). With
// -drain it appends nothing and exits 0 once the outbox is empty; -sync
// sets the outbox's group commit interval, -pace a pause between
// appends. The power-loss test runs it too, on a file system on a loop
// device.
//
// It is a separate program, built without the race detector, so that the
// test can kill and restart it 1,000 times in under a minute even when
// the tests run with -race (a race-instrumented child takes about 0.2 s
// to start; this one about 0.04 s). The outbox's code is race-checked by
// the package's own tests.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/seed-a56be422/netmon/gate"
	"github.com/seed-a56be422/netmon/outbox"
	"golang.org/x/sys/unix"
)

func main() {
	dir := flag.String("dir", "", "the outbox's directory")
	addr := flag.String("addr", "", "the receiver's address")
	drain := flag.Bool("drain", false, "append nothing; exit once the outbox is empty")
	sync := flag.Duration("sync", 0, "the outbox's Config.SyncInterval (0: fsync every append)")
	pace := flag.Duration("pace", 0, "pause between appends (so that a group commit's window holds a few, not thousands)")
	flag.Parse()
	if err := run(*dir, *addr, *drain, *sync, *pace); err != nil {
		fmt.Fprintln(os.Stderr, "crashchild:", err)
		os.Exit(1)
	}
}

func run(dir, addr string, drainOnly bool, sync, pace time.Duration) error {
	o, err := outbox.Open(dir, outbox.Config{Window: 16, SyncInterval: sync})
	if err != nil {
		return err
	}
	fmt.Printf("R %d\n", o.Epoch())
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Println("C")
	g, err := gate.New(gate.Config{})
	if err != nil {
		return err
	}
	errc := make(chan error, 2)
	go func() {
		r := bufio.NewScanner(conn)
		for r.Scan() {
			n, err := strconv.ParseUint(strings.TrimPrefix(r.Text(), "ACK "), 10, 64)
			if err != nil {
				errc <- err
				return
			}
			if err := o.Ack(n); err != nil {
				errc <- err
				return
			}
		}
		errc <- fmt.Errorf("receiver closed: %v", r.Err())
	}()
	go func() {
		var line []byte
		errc <- o.Drain(context.Background(), g.Sender(), func(_ context.Context, m outbox.Message) error {
			line = fmt.Appendf(line[:0], "%d %d %s %s\n", m.Epoch, m.N, m.Stream, m.Payload)
			_, err := conn.Write(line)
			return gate.Permanent(err) // one connection: a broken one ends the child
		})
	}()
	if drainOnly {
		for o.Stats().Records > 0 {
			select {
			case err := <-errc:
				return err
			case <-time.After(time.Millisecond):
			}
		}
		return o.Close()
	}
	for i := 0; ; i++ {
		stream := fmt.Sprint("s", i%3)
		n, err := o.Append(context.Background(), outbox.Message{Stream: stream, Payload: fmt.Appendf(nil, "%s-%d-%d", stream, os.Getpid(), i)})
		if err != nil {
			return err
		}
		var ts unix.Timespec
		_ = unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		fmt.Printf("A %d %s %d\n", n, stream, ts.Nano())
		if pace > 0 {
			time.Sleep(pace)
		}
		select {
		case err := <-errc:
			return err
		default:
		}
	}
}
