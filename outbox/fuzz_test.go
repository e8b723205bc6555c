package outbox

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// FuzzDecodeRecord feeds decodeRecord keys and values: it must never
// panic, return either a message or an error wrapping ErrCorrupt, and a
// message it returns must encode back to the same bytes.
func FuzzDecodeRecord(f *testing.F) {
	for _, m := range []Message{
		{N: 1, Stream: "cmd", Class: Important, Created: time.Unix(1732990000, 123), Payload: []byte("hello")},
		{N: 1 << 40, Class: Telemetry, Created: time.Unix(0, 0)},
		{N: 7, Stream: string(bytes.Repeat([]byte{'s'}, MaxStreamLen)), Payload: make([]byte, 300)},
	} {
		f.Add(putKey(m.N), encodeRecord(nil, &m))
	}
	f.Add([]byte{0, 0, 0, 0, 0, 0, 0, 1}, []byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 255})
	f.Add([]byte{1}, []byte{})
	f.Fuzz(func(t *testing.T, key, v []byte) {
		m, err := decodeRecord(key, v)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			if m.N != 0 || m.Payload != nil {
				t.Fatalf("both a message (%+v) and an error (%v)", m, err)
			}
			return
		}
		if m.N != binary.BigEndian.Uint64(key) {
			t.Fatalf("N %d from key %x", m.N, key)
		}
		if got := encodeRecord(nil, &m); !bytes.Equal(got, v) {
			t.Fatalf("round trip: encoded %x, decoded from %x", got, v)
		}
	})
}

// storeImage returns the bytes of a store holding the n messages msg
// makes, written in one commit (at Close), to seed a fuzzer.
func storeImage(f *testing.F, n int, msg func(i int) Message) []byte {
	dir := f.TempDir()
	o, err := Open(dir, Config{SyncInterval: time.Hour})
	if err != nil {
		f.Fatal(err)
	}
	for i := range n {
		if _, err := o.Append(context.Background(), msg(i)); err != nil {
			f.Fatal(err)
		}
	}
	if err := o.Close(); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzOpen opens stores whose bytes were spoiled: Open must not panic or
// hang, and must leave a working outbox (the spoiled store moved aside
// or its bad records removed).
func FuzzOpen(f *testing.F) {
	seed := func(n int) []byte {
		return storeImage(f, n, func(i int) Message {
			return Message{Stream: "s", Class: Class(i % 2), Payload: []byte("payload")}
		})
	}
	f.Add(seed(3), uint32(20000), byte(0xff))
	f.Add(seed(300), uint32(4096*3+100), byte(1))
	f.Fuzz(func(t *testing.T, store []byte, at uint32, x byte) {
		if len(store) > 0 {
			store = bytes.Clone(store)
			store[int(at)%len(store)] ^= x
		}
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, FileName), store, 0o600); err != nil {
			t.Fatal(err)
		}
		o, err := Open(dir, Config{})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		defer o.Close()
		if _, err := o.Append(context.Background(), Message{Payload: []byte("after")}); err != nil {
			t.Fatalf("Append after Open: %v", err)
		}
		pendingMsgs(t, o)
	})
}

// FuzzSalvage feeds salvage arbitrary files, seeded with real stores: it
// must never panic, and every message it returns passes its CRC (it was
// decoded by decodeRecord), once, in order of N.
func FuzzSalvage(f *testing.F) {
	for _, n := range []int{3, 200} {
		b := storeImage(f, n, func(i int) Message {
			return Message{Stream: "s", Payload: bytes.Repeat([]byte{byte(i)}, 50)}
		})
		f.Add(b)
	}
	f.Add([]byte("not a database"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ms, err := salvage(b)
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error %v does not wrap ErrCorrupt", err)
		}
		for i, m := range ms {
			if i > 0 && m.N <= ms[i-1].N {
				t.Fatalf("N %d after %d", m.N, ms[i-1].N)
			}
		}
	})
}
