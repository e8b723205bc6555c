package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Class is a message's priority class: what happens to it when the outbox
// is full.
type Class uint8

const (
	// Important messages are never dropped: an Append to a full outbox
	// waits for room (or returns [ErrFull]).
	Important Class = 0
	// Telemetry messages make room for newer ones: an Append to a full
	// outbox drops the oldest telemetry messages.
	Telemetry Class = 1
)

// String returns "important" or "telemetry".
func (c Class) String() string {
	switch c {
	case Important:
		return "important"
	case Telemetry:
		return "telemetry"
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// Message is one message of the outbox: its payload and a small header.
type Message struct {
	// Epoch is the epoch of the store that holds the message; set by
	// Append, read by the receiver with N.
	Epoch uint64
	// N numbers the message in its epoch, from 1; set by Append.
	N uint64
	// Stream names the ordered stream the message belongs to: up to
	// [MaxStreamLen] bytes; may be empty.
	Stream string
	// Class is the message's priority class.
	Class Class
	// Created is when the message was made; Append sets it to the current
	// time when it is zero. It is stored to the nanosecond, without a
	// monotonic reading or location.
	Created time.Time
	// Payload is the message's bytes. The outbox copies it.
	Payload []byte
}

// Limit caps one priority class. A zero field is no limit.
type Limit struct {
	// Records is the most messages of the class the outbox holds.
	Records int
	// Bytes is the most bytes the class's messages may take, counted as
	// stored: payload, stream name and a 15-byte header each.
	Bytes int64
}

// Config configures an [Outbox]. The zero Config is valid: fsync every
// append, no limits, a window of 64, no logging.
type Config struct {
	// SyncInterval chooses the durability. Zero (the default): Append
	// writes the message and fsyncs it before returning, so an accepted
	// message survives a crash and a power loss. A positive interval is
	// a group commit: Append queues the message in memory and returns;
	// the outbox writes and fsyncs the queue every SyncInterval, so a
	// crash or power loss loses at most the appends of the last interval
	// (and of a commit that failed, which the next Append reports).
	// When appends outrun the disk (4,096 messages or 4 MiB queued),
	// Append waits for the commit.
	// Negative is invalid.
	SyncInterval time.Duration

	// Important caps the important messages; the zero Limit is none (the
	// disk is the limit).
	Important Limit
	// Telemetry caps the telemetry messages; the zero Limit is none.
	Telemetry Limit

	// NoWait makes an important Append to a full outbox return a
	// [*FullError] at once instead of waiting for room until its context
	// ends.
	NoWait bool

	// Window is the most messages [Outbox.Drain] keeps in flight (sent,
	// not yet acknowledged). Zero means 64; negative is invalid.
	Window int

	// Logger logs a store moved aside, corrupt records removed and failed
	// group commits. Nil logs nothing.
	Logger *zap.Logger
}

// DefaultWindow is the [Config.Window] used when it is zero.
const DefaultWindow = 64

// validate checks c, naming the field and the valid range.
func (c Config) validate() error {
	switch {
	case c.SyncInterval < 0:
		return fmt.Errorf("outbox: Config.SyncInterval %v: want 0 (fsync every append) or a positive interval", c.SyncInterval)
	case c.Window < 0:
		return fmt.Errorf("outbox: Config.Window %d: want 0 (the default, %d) or more", c.Window, DefaultWindow)
	case c.Important.Records < 0, c.Important.Bytes < 0:
		return fmt.Errorf("outbox: Config.Important %+v: want 0 (no limit) or more", c.Important)
	case c.Telemetry.Records < 0, c.Telemetry.Bytes < 0:
		return fmt.Errorf("outbox: Config.Telemetry %+v: want 0 (no limit) or more", c.Telemetry)
	}
	return nil
}

// Sentinel errors; test with errors.Is.
var (
	// ErrFull means an important message found no room in time; see
	// [*FullError].
	ErrFull = errors.New("outbox: full")
	// ErrClosed means the outbox was closed.
	ErrClosed = errors.New("outbox: closed")
	// ErrCorrupt means a record or the store could not be read as
	// written; see [*CorruptError].
	ErrCorrupt = errors.New("outbox: corrupt")
	// ErrDraining means Drain was called while another Drain ran.
	ErrDraining = errors.New("outbox: Drain is already running")
)

// FullError is the error of an Append that found its class full. It wraps
// [ErrFull] and, when the Append gave up waiting, the context's cause.
type FullError struct {
	// Class is the class that was full.
	Class Class
	// Limit is the class's limit, Records and Bytes the class's use
	// when the Append gave up, Size the size of the refused message.
	Limit       Limit
	Records     int
	Bytes, Size int64
	// Err is the context's cause when the Append waited and gave up;
	// nil when it did not wait.
	Err error
}

// Error says which class was full, how full, and why the Append stopped.
func (e *FullError) Error() string {
	s := fmt.Sprintf("outbox: full: %v messages: %d records, %d bytes (limit %d records, %d bytes), message of %d bytes",
		e.Class, e.Records, e.Bytes, e.Limit.Records, e.Limit.Bytes, e.Size)
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Unwrap returns ErrFull and, if set, Err.
func (e *FullError) Unwrap() []error {
	if e.Err == nil {
		return []error{ErrFull}
	}
	return []error{ErrFull, e.Err}
}

// CorruptError says that a store could not be read and was moved aside.
type CorruptError struct {
	// Path is the store's file; MovedTo is where it was moved.
	Path, MovedTo string
	// Err is what was wrong.
	Err error
}

// Error names the store, what was wrong and where it is now.
func (e *CorruptError) Error() string {
	return fmt.Sprintf("outbox: store %s is unreadable (%v); moved to %s, a fresh store was started", e.Path, e.Err, e.MovedTo)
}

// Unwrap returns ErrCorrupt and Err.
func (e *CorruptError) Unwrap() []error { return []error{ErrCorrupt, e.Err} }

// Stats are an outbox's counters, from [Outbox.Stats].
type Stats struct {
	// Epoch is the current store's epoch.
	Epoch uint64
	// Records and Bytes are the pending (accepted, not delivered)
	// messages and their stored size, in all and by class (indexed by
	// [Class]).
	Records      int
	Bytes        int64
	ClassRecords [2]int
	ClassBytes   [2]int64
	// Oldest is when the oldest pending message was created; zero when
	// none is pending.
	Oldest time.Time
	// InFlight is how many messages Drain has sent that wait for an Ack.
	InFlight int
	// Appended counts accepted messages, Delivered acknowledged ones,
	// Dropped telemetry dropped for room (and messages lost in a failed
	// group commit), Corrupt records removed because they failed their
	// checks; since Open.
	Appended, Delivered, Dropped, Corrupt uint64
	// MovedAside counts stores found unreadable and moved aside since
	// Open (including by Open).
	MovedAside uint64
}

// Sender is what Drain sends through: [*gate.Sender] (the Monitor's Gate,
// or a Gate's Sender) satisfies it. Do must call send until it succeeds
// or until it decides to give up, as [gate.Sender.Do] does.
type Sender interface {
	Do(ctx context.Context, send func(context.Context) error) error
}
