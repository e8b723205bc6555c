package outbox

// This file holds the record format: how one message is stored.

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"time"
)

// A record is stored in the bucket of its class, under its key, N as 8
// bytes big-endian (so that bbolt's byte order is N's order), with the
// value:
//
//	0      version (recordVersion)
//	1      class
//	2..9   created, Unix nanoseconds, big-endian int64
//	10     stream length L (0..MaxStreamLen)
//	11     stream (L bytes)
//	11+L   CRC-32C (Castagnoli), big-endian, of the key, bytes 0..11+L
//	       and the payload
//	15+L   payload
//
// bbolt checksums only its meta pages, so the CRC is what finds a byte
// flipped in a data page.
const (
	recordVersion = 1
	headerFixed   = 11 // version, class, created, stream length
	crcLen        = 4
)

// MaxStreamLen is the longest stream name, in bytes.
const MaxStreamLen = 255

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// recordLen returns the length of the stored value of m.
func recordLen(m *Message) int {
	return headerFixed + len(m.Stream) + crcLen + len(m.Payload)
}

// putKey returns n as a record's key.
func putKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), n)
}

// encodeRecord appends m's stored value (with m.N as its key's N) to b.
func encodeRecord(b []byte, m *Message) []byte {
	start := len(b)
	b = append(b, recordVersion, byte(m.Class))
	b = binary.BigEndian.AppendUint64(b, uint64(m.Created.UnixNano()))
	b = append(b, byte(len(m.Stream)))
	b = append(b, m.Stream...)
	var key [8]byte
	binary.BigEndian.PutUint64(key[:], m.N)
	c := crc32.Update(0, castagnoli, key[:])
	c = crc32.Update(c, castagnoli, b[start:])
	c = crc32.Update(c, castagnoli, m.Payload)
	b = binary.BigEndian.AppendUint32(b, c)
	return append(b, m.Payload...)
}

// decodeRecord decodes the record stored under key with value v. The
// message's Stream and Payload are copies: v may be bbolt's memory map,
// valid only during its transaction. Epoch is left zero.
func decodeRecord(key, v []byte) (Message, error) {
	h, err := checkRecord(key, v)
	if err != nil {
		return Message{}, err
	}
	return Message{
		N:       h.n,
		Stream:  string(v[headerFixed:h.end]),
		Class:   h.class,
		Created: time.Unix(0, int64(binary.BigEndian.Uint64(v[2:]))),
		Payload: append([]byte{}, v[h.end+crcLen:]...),
	}, nil
}

// header is what checkRecord reads of a record: its N, its class and
// where its stream name ends.
type header struct {
	n     uint64
	class Class
	end   int
}

// checkRecord checks the record stored under key with value v (its
// length, version, class and CRC) without copying it.
func checkRecord(key, v []byte) (header, error) {
	if len(key) != 8 {
		return header{}, fmt.Errorf("%w: key of %d bytes, want 8", ErrCorrupt, len(key))
	}
	n := binary.BigEndian.Uint64(key)
	if len(v) < headerFixed+crcLen {
		return header{}, fmt.Errorf("%w: record %d: %d bytes, shorter than the %d-byte header", ErrCorrupt, n, len(v), headerFixed+crcLen)
	}
	if v[0] != recordVersion {
		return header{}, fmt.Errorf("%w: record %d: version %d, want %d", ErrCorrupt, n, v[0], recordVersion)
	}
	cl := Class(v[1])
	if cl > Telemetry {
		return header{}, fmt.Errorf("%w: record %d: class %d, want 0 (important) or 1 (telemetry)", ErrCorrupt, n, v[1])
	}
	l := int(v[10])
	if len(v) < headerFixed+l+crcLen {
		return header{}, fmt.Errorf("%w: record %d: %d bytes, too short for a %d-byte stream name", ErrCorrupt, n, len(v), l)
	}
	end := headerFixed + l
	want := binary.BigEndian.Uint32(v[end:])
	c := crc32.Update(0, castagnoli, key)
	c = crc32.Update(c, castagnoli, v[:end])
	c = crc32.Update(c, castagnoli, v[end+crcLen:])
	if c != want {
		return header{}, fmt.Errorf("%w: record %d: CRC-32C %08x, stored %08x", ErrCorrupt, n, c, want)
	}
	if n == 0 {
		return header{}, fmt.Errorf("%w: record 0: N starts at 1", ErrCorrupt)
	}
	return header{n: n, class: cl, end: end}, nil
}
