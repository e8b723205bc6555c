// Package outbox is a durable FIFO of important messages that survives a
// crash, a watchdog reset or a battery swap: a sender appends a message
// before sending it and acknowledges it once the receiver confirms it.
//
// A message is in one of two states:
//
//   - accepted: [Outbox.Append] returned nil. With the default
//     [Config.SyncInterval] of zero the message was written and fsynced
//     before Append returned, so it survives a crash and a power loss.
//     With a SyncInterval the outbox commits every interval (group commit)
//     and a crash or power loss can lose the last interval's appends.
//   - delivered: [Outbox.Ack] was called for it (the receiver acknowledged
//     it) and it was removed.
//
// Every message gets a number N, from 1, that grows monotonically across
// restarts, and the store has a random 64-bit epoch, created with it and
// kept in it: the pair (epoch, N) is the "EPOCH:N" of the example wire
// protocol (examples/internal/wire), which a receiver de-duplicates by.
// When a store is found corrupt, it is moved aside and a fresh one, with a
// new epoch, is started; numbers start at 1 again under the new epoch.
//
// # Delivery
//
// [Outbox.Drain] sends the pending messages in order of N (hence in order
// within each stream) through a [gate.Sender]: held while the link is down,
// retried as [gate.Sender.Do] classifies the errors. Its send callback
// hands one message to the wire and need not wait for the receiver's
// acknowledgement: the caller calls [Outbox.Ack] when the acknowledgement
// arrives, and at most [Config.Window] messages are in flight. After a
// failed send, or when the caller calls [Outbox.Rewind] (a reconnect),
// Drain sends again from the oldest unacknowledged message; after a
// restart it starts there too. Receivers see duplicates and must drop them
// by (epoch, N).
//
// # Limits
//
// [Config.Important] and [Config.Telemetry] cap the records and bytes of
// each priority class. An important Append to a full outbox waits for
// room until its context ends (or, with [Config.NoWait], returns at once),
// with a [*FullError] that wraps [ErrFull]. A telemetry Append drops the
// oldest telemetry messages to make room, and counts them
// ([Stats.Dropped]).
//
// # Storage and corruption
//
// The store is one go.etcd.io/bbolt file, outbox.db, in the directory
// given to [Open]. Payloads stay on disk: the outbox keeps only counters in
// memory. Each record carries a CRC-32C; a record that fails it is
// removed and counted ([Stats.Corrupt]). bbolt trusts its pages, so Open
// checks them first: every page in use of a known type and within the
// file (a page whose overflow count runs past it made bbolt's next write
// loop for billions of steps), keys in order (a cycle in the tree makes
// a cursor loop for ever); and bbolt's panics and memory faults are
// turned into errors. A store that cannot be opened
// or read (truncated, bytes flipped in its pages, not a bbolt file) never
// stops the sender: Open renames it to outbox.db.corrupt-TIMESTAMP, logs
// why, starts a fresh store and reports the old one's fate from
// [Outbox.MovedAside]. The file moved aside is left as it was for a
// person to recover: [Open] on a copy of it would only move the copy
// aside again (the same checks fail), so read it with [Salvage], which
// scans its pages without bbolt and returns every message that passes
// its CRC, with the store's epoch; then send them to a receiver that
// drops duplicates (some may have been delivered already), or Append
// them to a live outbox. bbolt's command line tool
// (go.etcd.io/bbolt/cmd/bbolt: check, pages, page) shows what is left
// of its pages. A full disk is not corruption: Append
// returns the write error (wrapping syscall.ENOSPC), nothing is moved,
// and the caller can still send without the outbox.
//
// Not guarded: a flipped page number in a branch that points back to an
// ancestor makes bbolt's recursive descent overflow the stack, which Go
// cannot recover from; no single-byte flip in the tests did so.
//
// The outbox starts no goroutine except, with a SyncInterval, a timer's
// for the next group commit; [Outbox.Close] commits what is queued and
// stops it.
package outbox
