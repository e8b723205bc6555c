package outbox

// This file holds the Outbox: opening, appending, acknowledging, closing.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
	"go.uber.org/zap"
)

// FileName is the store's file name in the outbox's directory.
const FileName = "outbox.db"

var (
	bucketMeta = []byte("meta")
	bucketOf   = [2][]byte{[]byte("c0"), []byte("c1")}
	keyEpoch   = []byte("epoch")
	keyLast    = []byte("last")
)

// Outbox is a durable FIFO of messages in one directory. Its methods are
// safe for concurrent use. Only one process may open a directory at a
// time (bbolt locks the file).
type Outbox struct {
	path   string
	cfg    Config
	log    *zap.Logger
	window int

	// wmu serializes write transactions and the replacement of a corrupt
	// store; it guards db. It is taken before mu, never after.
	wmu sync.Mutex
	db  *bolt.DB

	mu sync.Mutex // guards the fields below
	// epoch is the store's epoch; last the last N given, committed the
	// last N written to the store (last, in sync mode, once Append has
	// returned).
	epoch, last, committed uint64
	// records and bytes are the accepted messages (committed and
	// queued), by class.
	records [2]int
	bytes   [2]int64
	// queue holds the group commit's messages, in order; timer fires
	// the next commit, nil when none is due.
	queue      []Message
	queueBytes int64
	timer      *time.Timer
	// acks holds the acknowledged Ns not yet removed; acking is set while
	// a caller of Ack removes them.
	acks   []uint64
	acking bool
	// Drain's state: the next N to send, the Ns sent and not
	// acknowledged, whether to send again from the oldest.
	draining bool
	cursor   uint64
	inflight map[uint64]struct{}
	rewind   bool
	// changed is closed (and replaced) when messages are committed or
	// removed, Rewind is called, or the outbox closes.
	changed chan struct{}
	closed  bool
	// done ends (with ErrClosed) when the outbox closes: it ends
	// Drain's calls of Sender.Do, which may hold while the link is
	// down.
	done     context.Context
	shutDown context.CancelCauseFunc
	// flushErr is the error of the last failed group commit, reported
	// by the next Append.
	flushErr error
	moved    *CorruptError
	n        Stats // the counters: Appended ... MovedAside
}

// Open opens the outbox in dir, creating the directory (mode 0700, and
// its missing parents, each new entry fsynced) and the store as needed. Messages accepted before a crash are pending
// again, and N continues after the last accepted one.
//
// A store that cannot be read is moved aside and a fresh one started
// (see the package doc); Open then succeeds, logs a warning and reports
// it from [Outbox.MovedAside]. Open fails when the directory cannot be
// written (permissions, a full disk), when another process has the store
// open (after one second), or when cfg is invalid.
func Open(dir string, cfg Config) (*Outbox, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	o := &Outbox{
		path:     filepath.Join(dir, FileName),
		cfg:      cfg,
		log:      cfg.Logger,
		window:   cfg.Window,
		inflight: make(map[uint64]struct{}),
		changed:  make(chan struct{}),
	}
	o.done, o.shutDown = context.WithCancelCause(context.Background())
	if o.log == nil {
		o.log = zap.NewNop()
	}
	if o.window == 0 {
		o.window = DefaultWindow
	}
	if err := makeDir(dir); err != nil {
		o.shutDown(ErrClosed)
		return nil, fmt.Errorf("outbox: %w", err)
	}
	o.wmu.Lock()
	defer o.wmu.Unlock()
	if err := o.load(); err != nil {
		if !isCorrupt(err) {
			o.shutDown(ErrClosed)
			return nil, err
		}
		if err := o.replaceLocked(err, nil); err != nil {
			o.shutDown(ErrClosed)
			return nil, err
		}
	}
	return o, nil
}

// load opens the store at o.path and reads its state: epoch, last N,
// and the records and bytes of each class, checking every record. It
// removes the records that fail their checks. Called with wmu held.
func (o *Outbox) load() (err error) {
	_, statErr := os.Stat(o.path)
	db, err := openBolt(o.path)
	if err == nil && errors.Is(statErr, os.ErrNotExist) {
		// A new file: its directory entry must be durable too before
		// anything in it is accepted (bbolt syncs only the file).
		err = syncDir(filepath.Dir(o.path))
	}
	if err != nil {
		if db != nil {
			closeQuietly(db)
		}
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("outbox: %s: another process has it open (bbolt's lock): %w", o.path, err)
		}
		return fmt.Errorf("outbox: open %s: %w", o.path, err)
	}
	// bbolt trusts its page headers: a page whose overflow count runs
	// past the file makes the next write loop for billions of steps
	// when it frees the page. Check them all before writing.
	if err = view(db, checkPages); err != nil {
		closeQuietly(db)
		return fmt.Errorf("outbox: read %s: %w", o.path, err)
	}
	var (
		epoch, last uint64
		records     [2]int
		nbytes      [2]int64
		bad         int
	)
	err = update(db, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			// A new store: nothing in it may be older than its meta.
			if tx.Bucket(bucketOf[0]) != nil || tx.Bucket(bucketOf[1]) != nil {
				return fmt.Errorf("%w: messages but no meta bucket", ErrCorrupt)
			}
			var err error
			if meta, err = tx.CreateBucket(bucketMeta); err != nil {
				return err
			}
			epoch = newEpoch()
			if err := meta.Put(keyEpoch, putKey(epoch)); err != nil {
				return err
			}
			if err := meta.Put(keyLast, putKey(0)); err != nil {
				return err
			}
		} else {
			e, l := meta.Get(keyEpoch), meta.Get(keyLast)
			if len(e) != 8 || len(l) != 8 || binary.BigEndian.Uint64(e) == 0 {
				return fmt.Errorf("%w: meta bucket: epoch %x, last %x: want 8 bytes each, epoch not 0", ErrCorrupt, e, l)
			}
			epoch, last = binary.BigEndian.Uint64(e), binary.BigEndian.Uint64(l)
		}
		for c, name := range bucketOf {
			b, err := tx.CreateBucketIfNotExists(name)
			if err != nil {
				return err
			}
			var drop [][]byte
			cur := b.Cursor()
			var prev []byte
			for k, v := cur.First(); k != nil; k, v = cur.Next() {
				// Keys come in order; one that does not is a cycle
				// in bbolt's tree, which would loop for ever.
				if prev != nil && bytes.Compare(k, prev) <= 0 {
					return fmt.Errorf("%w: bucket %s: key %x after %x: the tree is not in order", ErrCorrupt, name, k, prev)
				}
				prev = k
				h, err := checkRecord(k, v)
				if err == nil && (h.class != Class(c) || h.n > last) {
					err = fmt.Errorf("%w: record %d: class %v in bucket %s, last N %d", ErrCorrupt, h.n, h.class, name, last)
				}
				if err != nil {
					o.log.Warn("outbox: removing a corrupt record", zap.String("path", o.path), zap.Error(err))
					drop = append(drop, append([]byte{}, k...))
					continue
				}
				records[c]++
				nbytes[c] += int64(len(v))
			}
			for _, k := range drop {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			bad += len(drop)
		}
		return nil
	})
	if err != nil {
		closeQuietly(db)
		return fmt.Errorf("outbox: read %s: %w", o.path, err)
	}
	o.mu.Lock()
	o.db = db
	o.epoch, o.last, o.committed = epoch, last, last
	o.records, o.bytes = records, nbytes
	o.n.Corrupt += uint64(bad)
	o.cursor, o.rewind = 0, true
	clear(o.inflight)
	o.mu.Unlock()
	return nil
}

// replaceLocked moves the unreadable store aside, starts a fresh one and
// records why in o.moved. The accepted messages not yet in the store
// move to the fresh one: first (the messages being committed, taken off
// the queue) and then the group commit's queue are numbered after its
// last N, in its epoch, and a queue's are counted in it. Called with wmu
// held.
func (o *Outbox) replaceLocked(cause error, first []Message) error {
	if o.db != nil {
		closeQuietly(o.db)
		o.mu.Lock()
		o.db = nil
		o.mu.Unlock()
	}
	moved := fmt.Sprintf("%s.corrupt-%s", o.path, time.Now().UTC().Format("20060102T150405.000000000Z"))
	if err := os.Rename(o.path, moved); err != nil {
		return fmt.Errorf("outbox: store %s is unreadable (%v), and moving it aside failed: %w", o.path, cause, err)
	}
	if err := syncDir(filepath.Dir(o.path)); err != nil {
		o.log.Warn("outbox: the store moved aside may reappear after a power loss", zap.Error(err))
	}
	ce := &CorruptError{Path: o.path, MovedTo: moved, Err: cause}
	o.log.Warn("outbox: store unreadable, moved aside; started a fresh one",
		zap.String("path", o.path), zap.String("moved_to", moved), zap.Error(cause))
	o.mu.Lock()
	o.moved = ce
	o.n.MovedAside++
	// The old store's messages are no longer pending here.
	o.records, o.bytes = [2]int{}, [2]int64{}
	o.mu.Unlock()
	if err := o.load(); err != nil {
		return err
	}
	queued := o.cfg.SyncInterval > 0
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, q := range [][]Message{first, o.queue} {
		for i := range q {
			o.last++
			q[i].N, q[i].Epoch = o.last, o.epoch
			if queued {
				o.records[q[i].Class]++
				o.bytes[q[i].Class] += int64(recordLen(&q[i]))
			}
		}
	}
	return nil
}

// newEpoch returns a random epoch from 1 to 2^64-1.
func newEpoch() uint64 {
	var b [8]byte
	for {
		_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
		if e := binary.BigEndian.Uint64(b[:]); e != 0 {
			return e
		}
	}
}

// Epoch returns the store's epoch: random, from 1 to 2^64-1, kept in the
// store. It changes only when a corrupt store is replaced.
func (o *Outbox) Epoch() uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.epoch
}

// MovedAside returns why the outbox's store was moved aside and where to,
// or nil when it never was.
func (o *Outbox) MovedAside() *CorruptError {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.moved
}

// signalLocked wakes whoever waits for a change. Called with mu held.
func (o *Outbox) signalLocked() {
	close(o.changed)
	o.changed = make(chan struct{})
}

// waitLocked waits, with mu released, until the outbox changes or ctx
// ends, and returns with mu held: nil, or the context's cause. Called
// with mu held.
func (o *Outbox) waitLocked(ctx context.Context) error {
	ch := o.changed
	o.mu.Unlock()
	defer o.mu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// limitOf returns the limit of class c.
func (o *Outbox) limitOf(c Class) Limit {
	if c == Telemetry {
		return o.cfg.Telemetry
	}
	return o.cfg.Important
}

// fits reports whether a message of size bytes fits in class c's limit
// with n more records and size more bytes. Called with mu held.
func (o *Outbox) fitsLocked(c Class, size int64) bool {
	l := o.limitOf(c)
	return (l.Records == 0 || o.records[c]+1 <= l.Records) && (l.Bytes == 0 || o.bytes[c]+size <= l.Bytes)
}

// Append accepts m: it gives it the next N (returned) and the store's
// epoch, and stores it, durably before returning unless
// [Config.SyncInterval] says otherwise. Created is set to now if zero.
//
// When m's class is full, an important message waits for room until ctx
// ends, and then returns a [*FullError] (at once with [Config.NoWait],
// or when the message is larger than the class's byte limit); a
// telemetry message makes room by dropping the oldest telemetry. A
// failed write (a full disk) returns the error, and m is not accepted.
func (o *Outbox) Append(ctx context.Context, m Message) (uint64, error) {
	if len(m.Stream) > MaxStreamLen {
		return 0, fmt.Errorf("outbox: stream name of %d bytes: want at most %d", len(m.Stream), MaxStreamLen)
	}
	if m.Class > Telemetry {
		return 0, fmt.Errorf("outbox: class %d: want Important (0) or Telemetry (1)", m.Class)
	}
	if m.Created.IsZero() {
		m.Created = time.Now()
	}
	m.Payload = append([]byte(nil), m.Payload...)
	size := int64(recordLen(&m))
	if l := o.limitOf(m.Class); l.Bytes > 0 && size > l.Bytes {
		o.mu.Lock()
		defer o.mu.Unlock()
		return 0, &FullError{Class: m.Class, Limit: l, Records: o.records[m.Class], Bytes: o.bytes[m.Class], Size: size}
	}
	if o.cfg.SyncInterval > 0 {
		return o.appendQueued(ctx, m, size)
	}
	for {
		o.wmu.Lock()
		o.mu.Lock()
		if o.closed {
			o.mu.Unlock()
			o.wmu.Unlock()
			return 0, ErrClosed
		}
		if m.Class == Telemetry || o.fitsLocked(m.Class, size) {
			m.N, m.Epoch = o.last+1, o.epoch
			o.mu.Unlock()
			break
		}
		o.wmu.Unlock() // no lock order is broken by releasing early
		if err := o.fullLocked(ctx, m.Class, size); err != nil {
			o.mu.Unlock()
			return 0, err
		}
		_ = o.waitLocked(ctx) // fullLocked reports the context's end
		o.mu.Unlock()
	}
	defer o.wmu.Unlock()
	if err := o.commitLocked([]Message{m}); err != nil {
		return 0, err
	}
	return m.N, nil
}

// fullLocked returns the FullError for a message of class c and size
// that does not fit, or nil when the Append may wait for room. Called
// with mu held.
func (o *Outbox) fullLocked(ctx context.Context, c Class, size int64) error {
	var cause error
	if !o.cfg.NoWait {
		if ctx.Err() == nil {
			return nil
		}
		cause = context.Cause(ctx)
	}
	return &FullError{Class: c, Limit: o.limitOf(c), Records: o.records[c], Bytes: o.bytes[c], Size: size, Err: cause}
}

// The most messages and bytes a group commit queues before an Append
// waits for the commit.
const (
	maxQueued      = 4096
	maxQueuedBytes = 4 << 20
)

// appendQueued is Append under group commit: queue m and make sure a
// commit is due.
func (o *Outbox) appendQueued(ctx context.Context, m Message, size int64) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for {
		if o.closed {
			return 0, ErrClosed
		}
		if err := o.flushErr; err != nil {
			o.flushErr = nil
			return 0, err
		}
		if m.Class == Telemetry || o.fitsLocked(m.Class, size) {
			break
		}
		if err := o.fullLocked(ctx, m.Class, size); err != nil {
			return 0, err
		}
		_ = o.waitLocked(ctx) // fullLocked reports the context's end
	}
	// Keep the queue's memory bounded when appends outrun the disk:
	// commit at once, and wait for it.
	for len(o.queue) >= maxQueued || o.queueBytes+size > maxQueuedBytes && len(o.queue) > 0 {
		if o.timer != nil {
			o.timer.Reset(0)
		}
		if err := o.waitLocked(ctx); err != nil {
			return 0, fmt.Errorf("outbox: waiting for a group commit to make room in its queue: %w", err)
		}
		if o.closed {
			return 0, ErrClosed
		}
		if err := o.flushErr; err != nil {
			o.flushErr = nil
			return 0, err
		}
	}
	o.last++
	m.N, m.Epoch = o.last, o.epoch
	o.queue = append(o.queue, m)
	o.queueBytes += size
	o.records[m.Class]++
	o.bytes[m.Class] += size
	o.n.Appended++
	if o.timer == nil {
		o.timer = time.AfterFunc(o.cfg.SyncInterval, func() { _ = o.flush() })
	}
	return m.N, nil
}

// flush commits the group commit's queue. A failed commit is logged,
// kept for the next Append to report, and returned; whoever waits for
// the queue is woken either way.
func (o *Outbox) flush() error {
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.mu.Lock()
	q := o.queue
	o.queue, o.queueBytes, o.timer = nil, 0, nil
	o.mu.Unlock()
	if len(q) == 0 || o.db == nil {
		return nil
	}
	if err := o.commitLocked(q); err != nil {
		o.log.Error("outbox: group commit failed; its messages are lost", zap.Int("messages", len(q)), zap.Error(err))
		o.mu.Lock()
		o.flushErr = fmt.Errorf("outbox: group commit of %d message(s) (N %d to %d) failed, they are lost: %w", len(q), q[0].N, q[len(q)-1].N, err)
		for i := range q {
			o.records[q[i].Class]--
			o.bytes[q[i].Class] -= int64(recordLen(&q[i]))
		}
		o.n.Dropped += uint64(len(q))
		o.signalLocked() // an Append waiting for room in the queue
		err := o.flushErr
		o.mu.Unlock()
		return err
	}
	return nil
}

// commitLocked writes ms (numbered in order, after o.committed) in one
// transaction, with the new last N, dropping the oldest telemetry to
// keep its class within its limit. In sync mode (ms not yet counted) it
// counts them. A store found corrupt is replaced, and ms written to the
// fresh one. Called with wmu held.
func (o *Outbox) commitLocked(ms []Message) error {
	if o.db == nil {
		return ErrClosed
	}
	queued := o.cfg.SyncInterval > 0
	var (
		dropped  []uint64
		dropSize int64
		buf      []byte
	)
	o.mu.Lock()
	telRecords, telBytes := o.records[Telemetry], o.bytes[Telemetry]
	o.mu.Unlock()
	if !queued {
		for i := range ms {
			if ms[i].Class == Telemetry {
				telRecords++
				telBytes += int64(recordLen(&ms[i]))
			}
		}
	}
	err := update(o.db, func(tx *bolt.Tx) error {
		dropped, dropSize = dropped[:0], 0
		buf = buf[:0]
		for i := range ms {
			// bbolt keeps the value until the commit: each record gets
			// its own bytes (an append that grows buf leaves the earlier
			// ones where they were).
			start := len(buf)
			buf = encodeRecord(buf, &ms[i])
			if err := tx.Bucket(bucketOf[ms[i].Class]).Put(putKey(ms[i].N), buf[start:len(buf):len(buf)]); err != nil {
				return err
			}
		}
		if err := tx.Bucket(bucketMeta).Put(keyLast, putKey(ms[len(ms)-1].N)); err != nil {
			return err
		}
		l := o.cfg.Telemetry
		if (l.Records == 0 || telRecords <= l.Records) && (l.Bytes == 0 || telBytes <= l.Bytes) {
			return nil
		}
		// Drop the oldest telemetry until the class fits.
		r, b := telRecords, telBytes
		c := tx.Bucket(bucketOf[Telemetry]).Cursor()
		for k, v := c.First(); k != nil && ((l.Records > 0 && r > l.Records) || (l.Bytes > 0 && b > l.Bytes)); k, v = c.First() {
			r--
			b -= int64(len(v))
			dropSize += int64(len(v))
			dropped = append(dropped, binary.BigEndian.Uint64(k))
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		if !isCorrupt(err) || !errors.Is(err, ErrCorrupt) {
			return fmt.Errorf("outbox: write %s: %w", o.path, err)
		}
		// The store broke under us: replace it (numbering ms, then
		// what was queued after them, in the fresh store's epoch) and
		// write ms there.
		if rerr := o.replaceLocked(err, ms); rerr != nil {
			return rerr
		}
		return o.commitLocked(ms)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := range ms {
		if !queued {
			o.records[ms[i].Class]++
			o.bytes[ms[i].Class] += int64(recordLen(&ms[i]))
			o.n.Appended++
		}
	}
	last := ms[len(ms)-1].N
	o.last = max(o.last, last)
	o.committed = last
	o.records[Telemetry] -= len(dropped)
	o.bytes[Telemetry] -= dropSize
	o.n.Dropped += uint64(len(dropped))
	for _, n := range dropped {
		delete(o.inflight, n)
	}
	o.signalLocked()
	return nil
}

// Ack marks message n delivered: the receiver acknowledged it, and it is
// removed. Acknowledging a message that is not pending (already
// acknowledged, dropped, or from before a store was replaced) does
// nothing. Removals are batched: an Ack that finds another caller's
// removal under way leaves n to it and returns at once, so that a
// crash can leave an acknowledged message pending, to be sent (and
// de-duplicated) once more; it never loses an unacknowledged one.
//
// n is a number of the current epoch: when the receiver's
// acknowledgement carries an epoch (ACK ID:EPOCH:N), drop those whose
// epoch is not [Outbox.Epoch] (they are of a store moved aside, whose
// numbers the fresh store uses again).
func (o *Outbox) Ack(n uint64) error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return ErrClosed
	}
	o.acks = append(o.acks, n)
	if _, ok := o.inflight[n]; ok {
		delete(o.inflight, n)
		o.signalLocked() // room in Drain's window
	}
	if o.acking {
		o.mu.Unlock()
		return nil
	}
	o.acking = true
	o.mu.Unlock()
	o.wmu.Lock()
	defer o.wmu.Unlock()
	for {
		o.mu.Lock()
		acks := o.acks
		o.acks = nil
		if len(acks) == 0 || o.db == nil {
			o.acking = false
			o.mu.Unlock()
			return nil
		}
		o.mu.Unlock()
		if err := o.removeLocked(acks); err != nil {
			o.mu.Lock()
			o.acking = false
			o.mu.Unlock()
			return err
		}
	}
}

// removeLocked removes the acknowledged messages acks in one
// transaction. Called with wmu held.
func (o *Outbox) removeLocked(acks []uint64) error {
	var (
		records [2]int
		nbytes  [2]int64
	)
	err := update(o.db, func(tx *bolt.Tx) error {
		records, nbytes = [2]int{}, [2]int64{}
		for _, n := range acks {
			k := putKey(n)
			for c, name := range bucketOf {
				b := tx.Bucket(name)
				if v := b.Get(k); v != nil {
					records[c]++
					nbytes[c] += int64(len(v))
					if err := b.Delete(k); err != nil {
						return err
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, ErrCorrupt) {
			return o.replaceLocked(err, nil)
		}
		return fmt.Errorf("outbox: remove acknowledged messages from %s: %w", o.path, err)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for c := range records {
		o.records[c] -= records[c]
		o.bytes[c] -= nbytes[c]
		o.n.Delivered += uint64(records[c])
	}
	o.signalLocked()
	return nil
}

// Stats returns the outbox's counters. It reads the oldest message's
// time from the store: call it for metrics, not per message.
func (o *Outbox) Stats() Stats {
	o.mu.Lock()
	s := o.n
	s.Epoch = o.epoch
	s.ClassRecords, s.ClassBytes = o.records, o.bytes
	s.Records = o.records[0] + o.records[1]
	s.Bytes = o.bytes[0] + o.bytes[1]
	s.InFlight = len(o.inflight)
	var oldest time.Time
	if len(o.queue) > 0 {
		oldest = o.queue[0].Created
	}
	db := o.db
	o.mu.Unlock()
	if db != nil {
		_ = view(db, func(tx *bolt.Tx) error {
			for _, name := range bucketOf {
				b := tx.Bucket(name)
				if b == nil {
					continue
				}
				if k, v := b.Cursor().First(); k != nil {
					if m, err := decodeRecord(k, v); err == nil && (oldest.IsZero() || m.Created.Before(oldest)) {
						oldest = m.Created
					}
				}
			}
			return nil
		})
	}
	s.Oldest = oldest
	return s
}

// Close commits what a group commit has queued, closes the store and
// wakes Drain and waiting Appends, which return [ErrClosed]. When that
// last commit, or an earlier one no Append has reported yet, failed,
// Close returns its error (the messages it names are lost) after
// closing the store. Calling it again does nothing.
func (o *Outbox) Close() error {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return nil
	}
	// Closed first, so that no Append queues a message after the last
	// commit.
	o.closed = true
	if o.timer != nil {
		o.timer.Stop()
	}
	o.signalLocked()
	o.mu.Unlock()
	o.shutDown(ErrClosed)
	_ = o.flush()
	o.wmu.Lock()
	defer o.wmu.Unlock()
	o.mu.Lock()
	db := o.db
	o.db = nil
	flushErr := o.flushErr
	o.flushErr = nil
	o.mu.Unlock()
	var closeErr error
	if db != nil {
		if err := db.Close(); err != nil {
			closeErr = fmt.Errorf("outbox: close %s: %w", o.path, err)
		}
	}
	return errors.Join(flushErr, closeErr)
}
