package outbox

import (
	"bytes"
	"encoding/binary"
	"errors"
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
