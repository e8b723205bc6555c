package outbox

// This file holds Drain: sending the pending messages, in order, through
// the Gate.

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"go.uber.org/zap"

	"github.com/seed-a56be422/netmon/gate"
)

var _ Sender = (*gate.Sender)(nil)

// Drain sends the pending messages with send, in order of N (so in order
// within each stream), through s, until ctx ends or the outbox closes.
// It starts with the oldest pending message, so that after a restart the
// messages the receiver did not acknowledge go first.
//
// send hands one message to the receiver (writes it to the wire) and
// returns; it need not wait for the acknowledgement. The caller calls
// [Outbox.Ack] when the receiver acknowledges a message; Drain keeps at
// most [Config.Window] messages unacknowledged and waits for Acks (or
// new messages) before sending more. When send fails, Drain starts again
// from the oldest unacknowledged message, since what followed the failure
// on the same connection may be lost too; s.Do holds that attempt while
// the gate is closed and retries it as the error's class says. Call
// [Outbox.Rewind] to do the same after a reconnect that send did not see
// (the receiver's side closed), or when acknowledgements stop coming.
//
// Drain returns the context's cause when ctx ends, [ErrClosed] when the
// outbox closes, [ErrDraining] when another Drain is running, and the
// error of s.Do when it gives up (a [gate.Permanent] error, an attempt
// limit): the message stays pending, first in line, and a new Drain
// starts with it again; the caller may Ack it to discard it.
func (o *Outbox) Drain(ctx context.Context, s Sender, send func(context.Context, Message) error) error {
	o.mu.Lock()
	switch {
	case o.closed:
		o.mu.Unlock()
		return ErrClosed
	case o.draining:
		o.mu.Unlock()
		return ErrDraining
	}
	o.draining = true
	o.cursor, o.rewind = 0, false
	clear(o.inflight)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.draining = false
		clear(o.inflight)
		o.mu.Unlock()
	}()
	// Close ends ctx too, so that a Do held by a closed gate returns.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	defer context.AfterFunc(o.done, func() { cancel(ErrClosed) })()
	attempt := func(c context.Context) error { return o.sendSome(c, send) }
	for {
		o.mu.Lock()
		for !o.closed && !o.rewind && (o.committed < o.cursor || len(o.inflight) >= o.window) {
			if err := o.waitLocked(ctx); err != nil {
				o.mu.Unlock()
				return err
			}
		}
		closed := o.closed
		o.mu.Unlock()
		if closed {
			return ErrClosed
		}
		if err := s.Do(ctx, attempt); err != nil {
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			return fmt.Errorf("outbox: drain: %w", err)
		}
	}
}

// Rewind makes Drain send again from the oldest unacknowledged message,
// as after a failed send: call it when the connection to the receiver
// was replaced, or when acknowledgements stopped coming.
func (o *Outbox) Rewind() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.rewind = true
	o.signalLocked()
}

// sendSome sends, with send, the pending messages from Drain's cursor on
// that fit in the window. A failed send makes the next call start from
// the oldest pending message.
func (o *Outbox) sendSome(ctx context.Context, send func(context.Context, Message) error) error {
	o.mu.Lock()
	if o.rewind {
		o.cursor, o.rewind = 0, false
		clear(o.inflight)
	}
	from, room, committed, epoch := o.cursor, o.window-len(o.inflight), o.committed, o.epoch
	db := o.db
	o.mu.Unlock()
	if room <= 0 {
		return nil
	}
	if db == nil {
		return gate.Permanent(ErrClosed)
	}
	limit := uint64(room)
	if committed < from {
		limit = 0
	} else {
		limit = min(limit, committed-from+1)
	}
	ms, err := o.read(db, from, committed, limit)
	if err != nil {
		return gate.Permanent(err)
	}
	if len(ms) == 0 {
		o.mu.Lock()
		if !o.rewind && o.cursor == from {
			o.cursor = max(o.cursor, committed+1)
		}
		o.mu.Unlock()
		return nil
	}
	for _, m := range ms {
		m.Epoch = epoch
		o.mu.Lock()
		if o.rewind || o.cursor != from {
			// Rewind was called meanwhile: start over.
			o.mu.Unlock()
			return nil
		}
		// In flight before it is sent: its Ack may come before send
		// returns.
		o.inflight[m.N] = struct{}{}
		o.cursor = m.N + 1
		from = o.cursor
		o.mu.Unlock()
		if err := send(ctx, m); err != nil {
			o.mu.Lock()
			o.rewind = true
			o.mu.Unlock()
			return err
		}
	}
	return nil
}

// read returns up to limit pending messages with N from from to to (the
// last committed: a record an Append is still committing is not
// accepted yet), in order of N, from both classes' buckets. It removes the records that fail their
// checks, and counts them.
func (o *Outbox) read(db *bolt.DB, from, to, limit uint64) ([]Message, error) {
	var (
		ms  []Message
		bad [][2][]byte // class's bucket name, key
		bsz [2]int64
		bn  [2]int
	)
	err := view(db, func(tx *bolt.Tx) error {
		var (
			curs [2]*bolt.Cursor
			k, v [2][]byte
			prev []byte // the last key read, of either bucket
		)
		start := binary.BigEndian.AppendUint64(nil, from)
		for c, name := range bucketOf {
			curs[c] = tx.Bucket(name).Cursor()
			k[c], v[c] = curs[c].Seek(start)
		}
		for uint64(len(ms)) < limit && (k[0] != nil || k[1] != nil) {
			c := 0
			if k[0] == nil || (k[1] != nil && bytes.Compare(k[1], k[0]) < 0) {
				c = 1
			}
			if binary.BigEndian.Uint64(k[c]) > to {
				// Committed to bbolt by an Append that has not yet
				// returned: not accepted yet, so not to be sent.
				break
			}
			if bytes.Compare(k[c], prev) <= 0 {
				// A cycle in bbolt's tree, which would loop for ever.
				return fmt.Errorf("%w: bucket %s: key %x after %x: the tree is not in order", ErrCorrupt, bucketOf[c], k[c], prev)
			}
			prev = k[c]
			m, err := decodeRecord(k[c], v[c])
			if err != nil || m.Class != Class(c) {
				o.log.Warn("outbox: removing a corrupt record", zap.String("path", o.path), zap.Error(err))
				bad = append(bad, [2][]byte{bucketOf[c], append([]byte{}, k[c]...)})
				bsz[c] += int64(len(v[c]))
				bn[c]++
			} else {
				ms = append(ms, m)
			}
			k[c], v[c] = curs[c].Next()
		}
		return nil
	})
	if errors.Is(err, ErrCorrupt) {
		// The store itself is broken: move it aside and go on with a
		// fresh one (unless another caller did so already).
		o.wmu.Lock()
		defer o.wmu.Unlock()
		if o.db == db {
			if err := o.replaceLocked(fmt.Errorf("outbox: read %s: %w", o.path, err), nil); err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("outbox: read %s: %w", o.path, err)
	}
	if len(bad) > 0 {
		o.wmu.Lock()
		defer o.wmu.Unlock()
		if o.db != db {
			return ms, nil
		}
		err := update(db, func(tx *bolt.Tx) error {
			for _, b := range bad {
				if err := tx.Bucket(b[0]).Delete(b[1]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("outbox: remove corrupt records from %s: %w", o.path, err)
		}
		o.mu.Lock()
		for c := range bn {
			o.records[c] -= bn[c]
			o.bytes[c] -= bsz[c]
			o.n.Corrupt += uint64(bn[c])
		}
		o.mu.Unlock()
	}
	return ms, nil
}
