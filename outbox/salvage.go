package outbox

// This file holds Salvage: reading the messages out of a store that
// bbolt cannot open (one moved aside as corrupt), page by page.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"slices"
)

// bbolt's on-disk layout (go.etcd.io/bbolt/internal/common, in the
// machine's byte order: little-endian on the robots netmon runs on).
const (
	pageHeaderLen   = 16   // id uint64, flags uint16, count uint16, overflow uint32
	leafElementLen  = 16   // flags, pos, ksize, vsize: uint32 each
	leafPageFlag    = 0x02 // a page of key/value elements
	bucketLeafFlag  = 0x01 // an element that is a bucket
	bucketHeaderLen = 16   // root page id uint64 (0: inline), sequence uint64
	minPageSize     = 512
	maxPageSize     = 1 << 16
)

// Salvage reads the messages still readable in the store file path,
// without bbolt and without writing to it: for a store moved aside as
// unreadable (outbox.db.corrupt-TIMESTAMP), which Open would only move
// aside again. It scans every page of the file for bbolt's leaf pages
// (also buckets stored inline in them) and returns every record that
// passes its CRC-32C, in order of N, each once, with the store's epoch
// when its meta bucket is readable (0 when it is not).
//
// A store keeps old copies of its pages until it reuses them, so the
// messages returned may include some already acknowledged: send them
// again only to a receiver that drops duplicates. Appended to a live
// outbox they get that outbox's epoch and new numbers, so a receiver
// cannot tell them from new messages. Salvage fails only when the file
// cannot be read or holds no page of bbolt's at all.
func Salvage(path string) (epoch uint64, ms []Message, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, nil, fmt.Errorf("outbox: salvage: %w", err)
	}
	epoch, ms, err = salvage(b)
	if err != nil {
		return 0, nil, fmt.Errorf("outbox: salvage %s: %w", path, err)
	}
	return epoch, ms, nil
}

// salvage is Salvage on the file's bytes b.
func salvage(b []byte) (uint64, []Message, error) {
	ps := pageSizeOf(b)
	if len(b) < ps {
		return 0, nil, fmt.Errorf("%w: %d bytes, shorter than one %d-byte page", ErrCorrupt, len(b), ps)
	}
	s := salvager{seen: map[uint64]bool{}}
	for off := 0; off+pageHeaderLen <= len(b); off += ps {
		if binary.LittleEndian.Uint16(b[off+8:]) != leafPageFlag {
			continue
		}
		// A leaf page spans 1+overflow pages; its elements may reach
		// into them, but not past the file's end.
		end := uint64(off) + (1+uint64(binary.LittleEndian.Uint32(b[off+12:])))*uint64(ps)
		s.leaf(b[off:min(end, uint64(len(b)))], 0)
	}
	slices.SortFunc(s.ms, func(x, y Message) int {
		switch {
		case x.N < y.N:
			return -1
		case x.N > y.N:
			return 1
		}
		return 0
	})
	for i := range s.ms {
		s.ms[i].Epoch = s.epoch
	}
	return s.epoch, s.ms, nil
}

// pageSizeOf returns the page size a meta page at the start of b names,
// or 4096 when it names none that bbolt would use.
func pageSizeOf(b []byte) int {
	const metaPageSize = pageHeaderLen + 8 // after the magic and version
	if len(b) >= metaPageSize+4 {
		ps := int(binary.LittleEndian.Uint32(b[metaPageSize:]))
		if ps >= minPageSize && ps <= maxPageSize && ps&(ps-1) == 0 {
			return ps
		}
	}
	return 4096
}

// salvager collects the records of the leaf pages it is shown.
type salvager struct {
	epoch uint64
	ms    []Message
	seen  map[uint64]bool
}

// leaf collects the records of the leaf page p (its header first),
// following inline buckets up to one level down.
func (s *salvager) leaf(p []byte, depth int) {
	if len(p) < pageHeaderLen {
		return
	}
	count := int(binary.LittleEndian.Uint16(p[10:]))
	for i := range count {
		e := pageHeaderLen + i*leafElementLen
		if e+leafElementLen > len(p) {
			return
		}
		flags := binary.LittleEndian.Uint32(p[e:])
		pos := uint64(binary.LittleEndian.Uint32(p[e+4:]))
		ksize := uint64(binary.LittleEndian.Uint32(p[e+8:]))
		vsize := uint64(binary.LittleEndian.Uint32(p[e+12:]))
		kstart := uint64(e) + pos
		if kstart+ksize+vsize > uint64(len(p)) {
			continue
		}
		k, v := p[kstart:kstart+ksize], p[kstart+ksize:kstart+ksize+vsize]
		if flags&bucketLeafFlag != 0 {
			if depth == 0 && len(v) > bucketHeaderLen && binary.LittleEndian.Uint64(v) == 0 {
				s.leaf(v[bucketHeaderLen:], depth+1) // an inline bucket
			}
			continue
		}
		if bytes.Equal(k, keyEpoch) && len(v) == 8 {
			s.epoch = binary.BigEndian.Uint64(v)
			continue
		}
		m, err := decodeRecord(k, v)
		if err != nil || s.seen[m.N] {
			continue
		}
		s.seen[m.N] = true
		s.ms = append(s.ms, m)
	}
}
