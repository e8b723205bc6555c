// Package gate holds important sends while the network is down and
// releases them when it returns.
//
// A [Gate] is open or closed. Its owner (netmon's Monitor, or a test)
// drives it with [Gate.Open] and [Gate.Close]; the gate knows nothing about
// links, watchers or the Monitor. Senders call [Gate.Wait] before a send,
// or better [Gate.Do], which owns the whole wait-send-retry loop.
//
// The package starts no goroutines, does no I/O of its own and has no
// package state. It depends only on [classify].
//
// # Waiting
//
// On an open gate, Wait is one atomic load: no lock, no allocation, no
// system call, about a nanosecond. On a closed gate the caller is parked on
// a channel that Open closes (a broadcast), not on a sync.Cond, so the wait
// ends as soon as the caller's context does. A wait that does not end with
// the gate open returns a [*WaitError] that says why the gate was closed and
// how long the caller was held ("gate: held 12.4s: carrier-lost on wlan0:
// context deadline exceeded"); errors.Is sees the context's error,
// [ErrDown], [ErrHoldExpired] or [ErrShutdown] through it.
//
// [Gate.State] reports open or closed, the reason and since when, and
// [State.Changed] is a channel closed on the next change, in the style of
// context.Done.
//
// # Policies
//
// A [Policy] says what a sender does while the gate is closed: hold until
// its context ends (the default, for important sends), fail fast with
// [ErrDown] (best-effort telemetry that must not pile up), hold at most
// [Policy.MaxHold] (a wait limit separate from the call's deadline), and,
// in Do, at most [Policy.MaxAttempts] attempts. The gate's default policy is
// [Config.Policy]; [Gate.With] gives a [Sender] with another policy, per
// sender or per call.
//
// # Release without a stampede
//
// After a long outage, hundreds of held senders reconnecting in the same
// millisecond can knock a weak access point over again. [Config.Release]
// paces the release: at most Rate senders per second, oldest first, and/or
// each at a random moment within Spread. With Probe, as in a circuit
// breaker's half-open state, the oldest held [Gate.Do] call goes first and
// the others follow only once a send has succeeded. The default releases
// all at once, which is right for a single robot with a few senders.
//
// # Retrying: at least once
//
// [Gate.Do] retries a send whose error is retryable
// ([classify.Class.Retryable]: connection, network, DNS, timeout, TLS),
// holding while the gate is closed and backing off with full jitter while
// it is open, until the send succeeds or the caller's context ends. Other
// errors are returned at once. There is no hidden attempt limit: losing an
// important message silently is what this package exists to prevent.
//
// Because a connection can break after the peer has the message but before
// the sender saw the acknowledgement, Do may send a message more than once.
// Delivery is at least once; the receiver must de-duplicate, typically by a
// sequence number or message ID carried in each message.
//
// # Reporting to the owner
//
// [Config.OnError] is called after every failed attempt in Do, with the
// error and its class, and [Config.OnSuccess] after every success, so that
// the owner can correlate send failures with link state and notice when
// sends go through again. [Gate.Stats] returns counters for metrics.
package gate
