// Package gate holds important sends while the network is down and
// releases them when it returns.
//
// A [Gate] is open or closed. Its owner (netmon's Monitor, or a test)
// drives it with [Gate.Open], [Gate.Close] and [Gate.Shutdown]; the gate
// knows nothing about links, watchers or the Monitor. Senders get a
// [Sender], the view that [Gate.Sender] returns: they call [Sender.Wait]
// before a send, or better [Sender.Do], which owns the whole
// wait-send-retry loop. A Sender cannot open, close or shut down the gate,
// as a context.Context cannot cancel itself: a sender that shut the gate
// down in its own cleanup would hold every other sender for good.
//
// The package does no I/O of its own, makes no system calls and has no
// package state. It starts no goroutines, except that [Release.ProbeTimeout]
// runs a timer's function (time.AfterFunc) to pass the probe role on. It
// depends only on [classify].
//
// # At least once, and only if send says so
//
// [Sender.Do] delivers at least once only when send returns nil after the
// receiver acknowledged the message: an application-level ACK read back,
// an MQTT PUBACK, an HTTP 2xx response read in full. A send that returns
// once its bytes are written has handed them to the kernel's socket
// buffer, not to the receiver; if the link drops then, the message is lost
// and Do, told it succeeded, never sends it again.
//
// Because a connection can break after the receiver has the message but
// before send saw the acknowledgement, Do may send a message more than
// once. The receiver must de-duplicate, by an ID carried in each message
// (a sender ID, an epoch chosen at start, and a sequence number), keeping
// what it has seen; "drop anything at or below the last sequence number"
// loses real messages as soon as a retry or a paced release reorders them.
//
// # Waiting
//
// On an open gate, Wait is one atomic load: no lock, no allocation, no
// system call, about a nanosecond. On a closed gate the caller is parked on
// a channel of its own that Open closes, not on a sync.Cond, so the wait
// ends as soon as the caller's context does. A wait that does not end with
// the gate open returns a [*WaitError] that says why the gate was closed and
// how long the caller was held ("gate: held 12.4s: carrier-lost on wlan0:
// context deadline exceeded"); errors.Is sees the context's error,
// [ErrDown], [ErrHoldExpired], [ErrFull], [ErrDropped] or [ErrShutdown]
// through it.
//
// [Sender.State] reports open or closed, the reason and since when, and
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
// [Config.Policy]; [Sender.With] gives a Sender with another policy, per
// kind of sender or per call.
//
// # Bounding what is held
//
// Each held call is a parked goroutine and its payload: at 100 Hz a
// ten-minute outage holds 60,000. [Policy.MaxHeld] and
// [Policy.MaxHeldBytes] (with sizes from [Call.Size]) bound what the gate
// holds when a call of that policy arrives; past the bound, [Policy.Overflow]
// rejects the call with [ErrFull] (NATS's ErrReconnectBufExceeded, not a
// silent loss), or drops the oldest held calls of a lower [Policy.Priority]
// (or of the same one, for telemetry where the newest sample matters most),
// which fail with [ErrDropped]. Both are counted in [Stats].
//
// # Release without a stampede
//
// After a long outage, hundreds of held senders reconnecting in the same
// millisecond can knock a weak access point over again. [Config.Release]
// paces the release: at most Rate senders per second, oldest first, and/or
// each at a random moment within Spread. With Probe, as in a circuit
// breaker's half-open state, the oldest held Do call goes first and the
// others follow only once a send has succeeded; the probe role passes to
// the next oldest when the probe's attempt fails or runs past ProbeTimeout,
// so that a probe to a dead destination does not hold the calls to healthy
// ones. The gate's zero Config releases all at once; the Monitor's Gates
// release behind a probe by default (netmon's Options.Gate).
//
// An owner that closed the gate on a guess (the Monitor's data-stall
// verdict) can test the path with the traffic that matters: [Gate.Trial]
// lets the oldest held Do call make one attempt while the gate stays
// closed (or, when no Do call is held, the oldest Wait caller, whose
// success the owner must learn by a report), and an owner that opens the
// gate on its success releases the rest.
//
// # Retrying
//
// [Sender.Do] decides after each failed attempt whether to send again (a
// [Decision]): a send marks its own error with [Permanent] (never retry: an
// HTTP 400, an MQTT "not authorized") or [Retryable] (retry, no sooner than
// a Retry-After); otherwise [Policy.Retry] decides, or the default: retry
// the classes [classify.Class.Retryable] names (connection, network, DNS,
// timeout, TLS) and a certificate rejected for its validity period while
// the system clock is not synchronised ([Config.ClockSynced]: a robot
// without RTC before NTP), with reason "clock-unsynchronized". While the
// gate is closed Do holds; while it is open it backs off with full jitter.
// There is no hidden attempt limit: losing an important message silently
// is what this package exists to prevent.
//
// send runs with the caller's context, cancelled also when the gate closes
// during the attempt (its cause wraps [ErrInterrupted]), so that a write on
// a link that just died returns at once instead of waiting out its own
// deadline. Do counts that as the link's failure, not as the caller giving
// up: it holds the call and sends again when the gate reopens.
//
// # Observing
//
// [Config.OnError] is called after every failed attempt in Do, with the
// error, its class and the decision, and [Config.OnSuccess] after every
// success, so that the owner can correlate send failures with link state
// and notice when sends go through again. Per call, [Sender.DoCall] takes
// an OnWaiting callback (as URLSession's taskIsWaitingForConnectivity) and
// returns a [Result] with the attempts and the time held, which belong to
// that call alone; its [Call].Dst, the address it sends to, is passed to
// both hooks in [Attempt].Dst, so that the owner can tell one peer's
// failures from the path's. [Gate.Stats] returns counters for metrics.
package gate
