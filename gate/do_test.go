package gate

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// script is a fake send that returns its errors in order, then nil, and
// records when it was called (in synctest's fake time).
type script struct {
	errs  []error
	calls []time.Time
}

func (s *script) send(context.Context) error {
	s.calls = append(s.calls, time.Now())
	if len(s.calls) <= len(s.errs) {
		return s.errs[len(s.calls)-1]
	}
	return nil
}

// hooks records what Do reported.
type hooks struct{ errs, oks []Attempt }

func (h *hooks) config(cfg Config) Config {
	cfg.OnError = func(a Attempt) { h.errs = append(h.errs, a) }
	cfg.OnSuccess = func(a Attempt) { h.oks = append(h.oks, a) }
	return cfg
}

var (
	errRefused = fmt.Errorf("dial tcp 10.0.0.1:1883: %w", syscall.ECONNREFUSED)
	errUnreach = fmt.Errorf("dial tcp 10.0.0.1:1883: %w", syscall.ENETUNREACH)
	errBad     = errors.New("payload rejected")
)

func TestDoRetriesRetryableErrorsUntilSuccess(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h hooks
		g := mustNew(t, h.config(Config{}))
		s := &script{errs: []error{errRefused, errUnreach, errRefused}}
		if err := g.Sender().Do(context.Background(), s.send); err != nil {
			t.Fatalf("Do = %v, want nil", err)
		}
		if len(s.calls) != 4 {
			t.Errorf("send called %d times, want 4", len(s.calls))
		}
		wantClasses := []classify.Class{classify.Connection, classify.Network, classify.Connection}
		if len(h.errs) != 3 {
			t.Fatalf("OnError called %d times, want 3", len(h.errs))
		}
		for i, a := range h.errs {
			if a.N != i+1 || a.Err != s.errs[i] || a.Class != wantClasses[i] {
				t.Errorf("OnError #%d = %+v, want N %d, Err %v, Class %v", i, a, i+1, s.errs[i], wantClasses[i])
			}
		}
		if len(h.oks) != 1 || h.oks[0].N != 4 || h.oks[0].Err != nil {
			t.Errorf("OnSuccess calls = %+v, want one with N 4", h.oks)
		}
		if st := g.Stats(); st.SendErrors != 3 || st.Retries != 3 {
			t.Errorf("Stats = %+v, want SendErrors 3, Retries 3", st)
		}
	})
}

func TestDoBackoffIsFullJitterCappedExponential(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
		g := mustNew(t, Config{Backoff: b})
		errs := make([]error, 12)
		for i := range errs {
			errs[i] = errRefused
		}
		s := &script{errs: errs}
		if err := g.Sender().Do(context.Background(), s.send); err != nil {
			t.Fatal(err)
		}
		var total time.Duration
		for i := 1; i < len(s.calls); i++ {
			gap := s.calls[i].Sub(s.calls[i-1])
			ceiling := min(b.Initial<<(i-1), b.Max)
			if gap < 0 || gap >= ceiling {
				t.Errorf("gap before attempt %d = %v, want within [0, %v)", i+1, gap, ceiling)
			}
			total += gap
		}
		if total == 0 {
			t.Error("Do never slept between 12 failed attempts")
		}
	})
}

func TestDoStopsAtOnceOnOtherErrors(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantClass classify.Class
	}{
		{"plain error", errBad, classify.Other},
		{"permission (policy)", fmt.Errorf("sendto: %w", syscall.EPERM), classify.Policy},
		{"certificate (not retryable: a missing CA does not heal)", fmt.Errorf("tls: %w", x509.UnknownAuthorityError{}), classify.Certificate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := mustNew(t, Config{})
			s := &script{errs: []error{tt.err, tt.err}}
			err := g.Sender().Do(context.Background(), s.send)
			if len(s.calls) != 1 {
				t.Errorf("send called %d times, want 1", len(s.calls))
			}
			var se *SendError
			if !errors.As(err, &se) || se.Attempts != 1 || se.Class != tt.wantClass || !errors.Is(err, tt.err) {
				t.Errorf("Do = %#v, want a *SendError with 1 attempt, class %v, wrapping %v", err, tt.wantClass, tt.err)
			}
		})
	}
}

func TestDoStopsWhenContextEndsDuringBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{Backoff: Backoff{Initial: time.Minute, Max: time.Minute}})
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		always := func(context.Context) error { return errRefused }
		err := g.Sender().Do(ctx, always)
		var se *SendError
		if !errors.As(err, &se) || !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("Do = %v, want a *SendError wrapping DeadlineExceeded and ECONNREFUSED", err)
		}
		if se.Attempts < 2 {
			t.Errorf("Attempts = %d, want many in an hour of 1-minute backoffs", se.Attempts)
		}
		if !strings.HasPrefix(err.Error(), fmt.Sprintf("gate: gave up after %d attempt(s): context deadline exceeded; last send error (connection): ", se.Attempts)) {
			t.Errorf("Do = %q", err)
		}
	})
}

func TestDoContextEndedDuringSendIsNotRetried(t *testing.T) {
	g := mustNew(t, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	calls := 0
	err := g.Sender().Do(ctx, func(context.Context) error {
		calls++
		cancel()
		return errRefused // would be retryable, but the caller gave up
	})
	var se *SendError
	if !errors.As(err, &se) || se.Class != classify.Canceled || calls != 1 {
		t.Errorf("Do = %v after %d calls, want a Canceled *SendError after 1", err, calls)
	}
}

func TestDoMaxAttemptsIsLoud(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{Policy: Policy{MaxAttempts: 3}})
		s := &script{errs: []error{errRefused, errRefused, errRefused, errRefused}}
		err := g.Sender().Do(context.Background(), s.send)
		if !errors.Is(err, ErrAttemptsExhausted) || !errors.Is(err, syscall.ECONNREFUSED) || len(s.calls) != 3 {
			t.Fatalf("Do = %v after %d calls, want ErrAttemptsExhausted and ECONNREFUSED after 3", err, len(s.calls))
		}
		if st := g.Stats(); st.Exhausted != 1 {
			t.Errorf("Exhausted = %d, want 1", st.Exhausted)
		}
		// Per call, the default (no limit) can be restored.
		s = &script{errs: []error{errRefused, errRefused, errRefused, errRefused}}
		if err := g.Sender().With(Policy{}).Do(context.Background(), s.send); err != nil {
			t.Errorf("With(Policy{}).Do = %v, want nil after 5 attempts", err)
		}
	})
}

func TestDoHoldsWhenGateClosesAndRetriesAtOnceOnOpen(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h hooks
		g := mustNew(t, h.config(Config{Backoff: Backoff{Initial: time.Hour, Max: time.Hour}}))
		sends := make(chan time.Time, 10)
		fail := true
		send := func(context.Context) error {
			sends <- time.Now()
			if fail {
				fail = false
				return errUnreach
			}
			return nil
		}
		done := make(chan error, 1)
		go func() { done <- g.Sender().Do(context.Background(), send) }()
		<-sends // first attempt failed; Do now backs off (up to an hour)
		synctest.Wait()
		g.Close(lost) // the owner saw the outage: Do stops sleeping and holds
		time.Sleep(30 * time.Second)
		synctest.Wait()
		if st := g.Stats(); st.HeldNow != 1 {
			t.Fatalf("HeldNow = %d, want the Do call held", st.HeldNow)
		}
		opened := time.Now()
		g.Open()
		if at := <-sends; !at.Equal(opened) {
			t.Errorf("retry at +%v after Open, want at once", at.Sub(opened))
		}
		if err := <-done; err != nil {
			t.Fatalf("Do = %v", err)
		}
		if len(h.oks) != 1 || h.oks[0].N != 2 || h.oks[0].Held != 30*time.Second {
			t.Errorf("OnSuccess = %+v, want N 2, Held 30s", h.oks)
		}
	})
}

func TestDoWaitFailureBeforeFirstAttemptIsWaitError(t *testing.T) {
	g := mustNew(t, Config{StartClosed: lost})
	called := false
	err := g.Sender().With(Policy{FailFast: true}).Do(context.Background(), func(context.Context) error {
		called = true
		return nil
	})
	var we *WaitError
	if !errors.As(err, &we) || !errors.Is(err, ErrDown) || called {
		t.Errorf("Do = %v (send called: %v), want a *WaitError for ErrDown and no send", err, called)
	}
	var se *SendError
	if errors.As(err, &se) {
		t.Errorf("Do = %v is a *SendError before any attempt", err)
	}
}

func TestDoMaxHoldBoundsTheSumOfHolds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Policy: Policy{MaxHold: 10 * time.Second}})
		attempts := 0
		send := func(context.Context) error {
			attempts++
			g.Close(lost) // every send loses the link again
			return errUnreach
		}
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- g.Sender().Do(context.Background(), send) }()
		time.Sleep(6 * time.Second) // first hold: 6 s
		g.Open()
		synctest.Wait() // attempt 1 fails and closes; second hold may last only 4 s
		err := <-done
		if !errors.Is(err, ErrHoldExpired) || !errors.Is(err, syscall.ENETUNREACH) {
			t.Fatalf("Do = %v, want ErrHoldExpired and the last send error", err)
		}
		if got := time.Since(start); got != 10*time.Second || attempts != 1 {
			t.Errorf("Do gave up after %v and %d attempts, want 10s and 1", got, attempts)
		}
	})
}
