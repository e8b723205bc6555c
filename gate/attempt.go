package gate

// This file holds the contexts that Do gives send: the caller's context,
// cancelled also when the gate closes during the attempt, so that a write
// on a link that just died returns at once instead of waiting out its own
// deadline.

import (
	"context"
	"errors"
	"reflect"
	"sync/atomic"
)

// ErrInterrupted is the cause (context.Cause) of the context [Sender.Do]
// gives send when the gate closed, or was shut down, while send ran. Do
// does not count such an attempt as the caller giving up: it holds the
// call and sends again when the gate reopens.
var ErrInterrupted = errors.New("gate: closed during the send")

// interruptedError is the cause an attempt's context is cancelled with
// when the gate leaves the open state the attempt began in.
type interruptedError struct {
	reason   Reason
	shutdown bool
}

func (e *interruptedError) Error() string {
	if e.shutdown {
		return "gate: shut down during the send"
	}
	return "gate: closed during the send: " + e.reason.String()
}

// Is makes errors.Is(err, ErrInterrupted) true.
func (e *interruptedError) Is(target error) bool { return target == ErrInterrupted }

// errAttemptOver is the cause of a private attempt context (see attempt)
// once its send has returned, as an http.Request's context is cancelled
// when ServeHTTP returns.
var errAttemptOver = errors.New("gate: the send attempt is over")

// attempt is the context of send attempts begun under one caller context
// while the gate was in one open state: the caller's context, cancelled
// also when that state ends (Close, Shutdown) with an *interruptedError.
//
// Making a context per attempt would cost allocations on the open fast
// path, so attempts are shared: every attempt under the same caller
// context in the same open state gets the same one, kept in one of the
// state's slots. Sharing is safe because its behaviour depends on nothing
// else: it ends when the caller's context ends or the state does, and is
// never cancelled by one attempt's end. When every slot holds another live
// caller context, the attempt gets a private context, which is cancelled
// (errAttemptOver) once its send returns.
type attempt struct {
	parent context.Context
	ctx    context.Context
	cancel context.CancelCauseFunc
	shared bool
	s      *snapshot // the open state it began in
}

// attemptSlots is how many caller contexts an open state shares attempt
// contexts for: one per long-lived sender goroutine is the common case.
const attemptSlots = 4

// attempts are an open state's attempt contexts.
type attempts struct {
	slots [attemptSlots]atomic.Pointer[attempt]
	// live holds every attempt context of the state that is not yet
	// cancelled, so that the state's end can cancel them; nil once the
	// state ended. Guarded by Gate.mu.
	live map[*attempt]struct{}
	// ended is set, under Gate.mu, when the state ended.
	ended bool
}

// attemptFor returns the attempt context for a send under ctx that begins
// while s, an open state, is current. It is one atomic load and a compare
// when ctx already has one.
func (g *Gate) attemptFor(ctx context.Context, s *snapshot) *attempt {
	for i := range s.attempts.slots {
		// Only comparable contexts are put in slots (newAttempt), so
		// this comparison cannot panic.
		if a := s.attempts.slots[i].Load(); a != nil && a.parent == ctx {
			return a
		}
	}
	return g.newAttempt(ctx, s, true)
}

// newAttempt makes the attempt context for ctx in s and, if share is set,
// shares it in a free slot if there is one.
func (g *Gate) newAttempt(ctx context.Context, s *snapshot, share bool) *attempt {
	actx, cancel := context.WithCancelCause(ctx)
	a := &attempt{parent: ctx, ctx: actx, cancel: cancel, s: s}
	g.mu.Lock()
	defer g.mu.Unlock()
	if s.attempts.ended {
		// The state ended since the caller saw it open: the attempt is
		// interrupted before it begins, and Do will hold.
		cur := g.cur.Load()
		cancel(&interruptedError{reason: cur.Reason, shutdown: cur.Shutdown})
		return a
	}
	if s.attempts.live == nil {
		s.attempts.live = map[*attempt]struct{}{}
	}
	s.attempts.live[a] = struct{}{}
	if !share || !reflect.TypeOf(ctx).Comparable() {
		return a // a.parent == ctx would panic: never share it
	}
	for i := range s.attempts.slots {
		old := s.attempts.slots[i].Load()
		if old != nil && old.ctx.Err() == nil {
			continue // in use by a live caller context
		}
		if old != nil {
			delete(s.attempts.live, old) // its caller context ended: so did it
		}
		a.shared = true
		s.attempts.slots[i].Store(a)
		break
	}
	return a
}

// done ends a private attempt context once its send has returned.
func (g *Gate) done(a *attempt) {
	if a.shared {
		return
	}
	a.cancel(errAttemptOver)
	g.mu.Lock()
	delete(a.s.attempts.live, a)
	g.mu.Unlock()
}

// interrupted reports whether a's context was cancelled because the gate
// closed under it (and not because the caller's context ended).
func (a *attempt) interrupted() bool {
	return a.ctx.Err() != nil && errors.Is(context.Cause(a.ctx), ErrInterrupted)
}

// interruptLocked cancels every attempt context of an open state that
// ends now, with cause. Gate.mu must be held.
func (at *attempts) interruptLocked(cause error) {
	at.ended = true
	for a := range at.live {
		a.cancel(cause)
	}
	at.live = nil
}
