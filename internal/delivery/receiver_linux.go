//go:build linux

package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// receiver is the server: it acknowledges "ID:EPOCH:N PAYLOAD" lines with
// "ACK ID:EPOCH:N" as examples/ackserver does, and records the first
// arrival of each N and the copies after it.
type receiver struct {
	wg sync.WaitGroup // one per connection

	mu      sync.Mutex // guards the fields below
	arrived map[uint64]time.Time
	copies  map[uint64]int
	conns   map[net.Conn]struct{}
	closed  bool
}

// startReceiver listens on serverPort in ns until t ends.
func startReceiver(t testing.TB, ns *netnstest.NS) *receiver {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", fmt.Sprintf(":%d", serverPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	rc := &receiver{arrived: map[uint64]time.Time{}, copies: map[uint64]int{}, conns: map[net.Conn]struct{}{}}
	netnstest.Serve(t, ln, func(c net.Conn) {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if rc.closed {
			_ = c.Close()
			return
		}
		rc.conns[c] = struct{}{}
		rc.wg.Add(1)
		go rc.serve(c)
	})
	// Registered after Serve's, so it runs first: no connection outlives
	// the test, and none accepted later is served.
	t.Cleanup(rc.close)
	return rc
}

// serve reads messages from c and acknowledges each until c fails.
func (rc *receiver) serve(c net.Conn) {
	defer rc.wg.Done()
	defer func() {
		rc.mu.Lock()
		delete(rc.conns, c)
		rc.mu.Unlock()
		_ = c.Close()
	}()
	r := bufio.NewReader(c)
	var ack []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return
		}
		now := time.Now()
		tok, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(" "))
		i := bytes.LastIndexByte(tok, ':')
		n, err := strconv.ParseUint(string(tok[i+1:]), 10, 64)
		if err != nil {
			return
		}
		rc.record(n, now)
		ack = append(append(append(ack[:0], "ACK "...), tok...), '\n')
		if _, err := c.Write(ack); err != nil {
			return
		}
	}
}

// record notes an arrival of message n at t.
func (rc *receiver) record(n uint64, t time.Time) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, ok := rc.arrived[n]; ok {
		rc.copies[n]++
		return
	}
	rc.arrived[n] = t
}

// messages returns the messages made at created (message n at
// created[n-1]) as the receiver saw them.
func (rc *receiver) messages(created []time.Time) []Message {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]Message, len(created))
	for i, c := range created {
		n := uint64(i + 1)
		out[i] = Message{Created: c, Arrived: rc.arrived[n], Copies: rc.copies[n]}
	}
	return out
}

// close ends every connection and waits for their handlers.
func (rc *receiver) close() {
	rc.mu.Lock()
	rc.closed = true
	for c := range rc.conns {
		_ = c.Close()
	}
	rc.mu.Unlock()
	rc.wg.Wait()
}
