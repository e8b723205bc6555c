package gate

import "time"

// Stats are the gate's counters, for a metrics layer. The counts are
// monotonic from [New]; HeldNow and LongestHold describe this moment.
// Waits on an open gate are not counted: counting them would turn the
// fast path's atomic load into a contended atomic write.
type Stats struct {
	// Holds counts waits that found the gate closed and held the caller.
	Holds uint64
	// HeldNow is how many senders are held at this moment, including
	// those released but waiting for their paced turn.
	HeldNow int
	// HeldBytes is the sum of the sizes ([Call.Size]) of the senders held
	// now.
	HeldBytes int64
	// LongestHold is how long the oldest sender held now has waited.
	LongestHold time.Duration
	// Releases counts held senders that the gate let go when it opened,
	// or for a trial ([Gate.Trial]).
	Releases uint64
	// Trials counts held senders let through while the gate stayed
	// closed ([Gate.Trial]): Do calls for one attempt, Wait callers
	// whose Wait returned nil. They are among Releases.
	Trials uint64
	// FailFasts counts waits that failed at once with [ErrDown].
	FailFasts uint64
	// Expired counts holds that ended with [ErrHoldExpired].
	Expired uint64
	// Canceled counts holds that ended because the caller's context did.
	// Holds = Releases + Canceled + Expired + Dropped + HeldNow, plus the
	// holds that Shutdown ended.
	Canceled uint64
	// Rejected counts calls that were not held because the gate held as
	// many calls or bytes as their policy's MaxHeld or MaxHeldBytes
	// allows ([ErrFull]); they are not in Holds.
	Rejected uint64
	// Dropped counts held calls dropped to make room for a call of a
	// higher (or, with DropOldest, the same) priority ([ErrDropped]).
	Dropped uint64
	// Opens and Closes count the transitions between open and closed; a
	// new reason for a closed gate is not a close.
	Opens, Closes uint64

	// SendErrors counts calls of send by [Sender.Do] that returned an
	// error. Successes are not counted here, to keep Do on an open gate
	// free of shared writes; [Config.OnSuccess] sees each of them.
	SendErrors uint64
	// Retries counts attempts after the first of a Do call.
	Retries uint64
	// Interrupted counts attempts whose context the gate cancelled
	// because it closed (or was shut down) while send ran.
	Interrupted uint64
	// Stopped counts Do calls that ended after a failed attempt because
	// the decision was not to retry (a permanent error, a class that is
	// not retryable, the caller's context ended during the attempt).
	Stopped uint64
	// Exhausted counts Do calls stopped by [Policy.MaxAttempts].
	Exhausted uint64
}

// Stats returns the gate's counters. It takes the gate's lock briefly to
// read the held list; it does not slow down waits on an open gate.
func (g *Gate) Stats() Stats {
	g.mu.Lock()
	heldNow, heldBytes := g.nheld, g.heldBytes
	var longest time.Duration
	if g.head != nil {
		longest = time.Since(g.head.start)
	}
	g.mu.Unlock()
	return Stats{
		Holds:       g.n.holds.Load(),
		HeldNow:     heldNow,
		HeldBytes:   heldBytes,
		Rejected:    g.n.rejected.Load(),
		Dropped:     g.n.dropped.Load(),
		Interrupted: g.n.interrupted.Load(),
		Stopped:     g.n.stopped.Load(),
		LongestHold: longest,
		Releases:    g.n.releases.Load(),
		Trials:      g.n.trials.Load(),
		FailFasts:   g.n.failFasts.Load(),
		Expired:     g.n.expired.Load(),
		Canceled:    g.n.canceled.Load(),
		Opens:       g.n.opens.Load(),
		Closes:      g.n.closes.Load(),
		SendErrors:  g.n.sendErrors.Load(),
		Retries:     g.n.retries.Load(),
		Exhausted:   g.n.exhausted.Load(),
	}
}
