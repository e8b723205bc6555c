package gate

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"go/ast"
	"go/importer"
	"go/parser"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/seed-a56be422/netmon/classify"
)

// TestSenderCannotOpenCloseOrShutDown type-checks snippets against this
// package's source: a sender's handle has no Open, Close or Shutdown (so
// calling them does not compile, for the right reason), while the owner's
// does. Issue 16: a sender that called Shutdown in its own cleanup held
// every other sender for good.
func TestSenderCannotOpenCloseOrShutDown(t *testing.T) {
	if testing.Short() {
		t.Skip("type-checks the package from source")
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	// The source importer finds the module's packages from a file in it.
	imp := importer.ForCompiler(fset, "source", nil)
	check := func(body string) error {
		src := "package snippet\n\nimport \"github.com/seed-a56be422/netmon/gate\"\n\nvar _ = gate.Reason{}\n\n" + body
		f, err := parser.ParseFile(fset, filepath.Join(wd, "snippet.go"), src, 0)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		conf := types.Config{Importer: imp}
		_, err = conf.Check("snippet", fset, []*ast.File{f}, nil)
		return err
	}
	// The owner can; this also proves that the harness type-checks.
	if err := check("func owner(g *gate.Gate) { g.Open(); g.Close(gate.Reason{}); g.Shutdown(); _ = g.Sender() }"); err != nil {
		t.Fatalf("the owner's calls do not type-check: %v", err)
	}
	for _, tt := range []struct{ call, method string }{
		{"s.Close(gate.Reason{})", "Close"},
		{"s.Open()", "Open"},
		{"s.Shutdown()", "Shutdown"},
		{"s.With(gate.Policy{}).Close(gate.Reason{})", "Close"},
	} {
		err := check("func sender(s *gate.Sender) { " + tt.call + " }")
		if err == nil {
			t.Errorf("%s through a *gate.Sender type-checks, want it not to", tt.call)
			continue
		}
		if want := "type *gate.Sender has no field or method " + tt.method; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an error saying %q", tt.call, err, want)
		}
	}
}

func TestSenderWithNormalisesThePolicy(t *testing.T) {
	g := mustNew(t, Config{})
	got := g.Sender().With(Policy{MaxHold: -1, MaxAttempts: -1, MaxHeld: -1, MaxHeldBytes: -1, Overflow: 9}).Policy()
	if got.MaxHold != 0 || got.MaxAttempts != 0 || got.MaxHeld != 0 || got.MaxHeldBytes != 0 || got.Overflow != Reject {
		t.Errorf("With(negative limits).Policy() = %+v, want zero limits and Reject", got)
	}
	if s1, s2 := g.Sender(), g.Sender(); s1 != s2 {
		t.Error("Gate.Sender returns a new view on every call, want the same")
	}
}

// TestDoInterruptedAttemptIsHeldNotGivenUp: the gate closes while send
// blocks on its context. send returns at once, Do holds (the caller did
// not give up), and sends again when the gate reopens.
func TestDoInterruptedAttemptIsHeldNotGivenUp(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var h hooks
		g := mustNew(t, h.config(Config{}))
		var causes []error
		send := func(ctx context.Context) error {
			if len(causes) == 0 {
				<-ctx.Done() // a write on a link that just died
				causes = append(causes, context.Cause(ctx))
				return &os.SyscallError{Syscall: "write", Err: ctx.Err()}
			}
			causes = append(causes, nil)
			return nil
		}
		done := make(chan error, 1)
		var res Result
		go func() {
			var err error
			res, err = g.Sender().DoCall(context.Background(), Call{}, send)
			done <- err
		}()
		synctest.Wait()
		g.Close(lost)
		synctest.Wait()
		if len(done) != 0 {
			t.Fatalf("Do returned %v while the gate was closed, want it held", <-done)
		}
		if st := g.Stats(); st.HeldNow != 1 || st.Interrupted != 1 {
			t.Fatalf("Stats = %+v, want the call held and one interrupted attempt", st)
		}
		time.Sleep(time.Minute)
		g.Open()
		if err := <-done; err != nil {
			t.Fatalf("Do = %v, want nil after the gate reopened", err)
		}
		if res.Attempts != 2 || res.Held != time.Minute {
			t.Errorf("Result = %+v, want 2 attempts, held 1m", res)
		}
		if !errors.Is(causes[0], ErrInterrupted) || !strings.Contains(causes[0].Error(), lost.String()) {
			t.Errorf("the attempt's context cause = %v, want ErrInterrupted naming %v", causes[0], lost)
		}
		if len(h.errs) != 1 || h.errs[0].Class != classify.Network || h.errs[0].Decision.Reason != ReasonInterrupted {
			t.Errorf("OnError = %+v, want one interrupted attempt of class network", h.errs)
		}
	})
}

// TestDoAttemptContextIsTheCallers: values and the deadline come from the
// caller's context, and an attempt that ends normally leaves a shared
// context alive for the next call.
func TestDoAttemptContextIsTheCallers(t *testing.T) {
	type key struct{}
	g := mustNew(t, Config{})
	dl := time.Now().Add(time.Hour)
	ctx, cancel := context.WithDeadline(context.WithValue(context.Background(), key{}, "v"), dl)
	defer cancel()
	var seen []context.Context
	for range 2 {
		err := g.Sender().Do(ctx, func(actx context.Context) error {
			if got, ok := actx.Deadline(); !ok || !got.Equal(dl) || actx.Value(key{}) != "v" || actx.Err() != nil {
				t.Errorf("attempt context: deadline %v %v, value %v, err %v", got, ok, actx.Value(key{}), actx.Err())
			}
			seen = append(seen, actx)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if seen[0] != seen[1] || seen[0].Err() != nil {
		t.Errorf("two calls under one context got %p and %p (err %v), want one shared live context", seen[0], seen[1], seen[0].Err())
	}
	cancel()
	if !errors.Is(seen[0].Err(), context.Canceled) {
		t.Errorf("attempt context after the caller's cancel: %v, want canceled", seen[0].Err())
	}
}

// TestDoPrivateAttemptContextsDoNotPileUp: with more live caller contexts
// than slots, the extra attempts get private contexts that end with their
// send, and the gate forgets them.
func TestDoPrivateAttemptContextsDoNotPileUp(t *testing.T) {
	g := mustNew(t, Config{})
	var ctxs []context.Context
	for range attemptSlots + 3 {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		ctxs = append(ctxs, ctx)
	}
	var private []context.Context
	for _, ctx := range ctxs {
		_ = g.Sender().Do(ctx, func(actx context.Context) error {
			private = append(private, actx)
			return nil
		})
	}
	for i, actx := range private {
		if shared := i < attemptSlots; shared != (actx.Err() == nil) {
			t.Errorf("attempt %d: err %v after its send, want alive only for the %d shared ones", i, actx.Err(), attemptSlots)
		}
	}
	g.mu.Lock()
	live := len(g.cur.Load().attempts.live)
	g.mu.Unlock()
	if live != attemptSlots {
		t.Errorf("%d attempt contexts kept, want the %d shared", live, attemptSlots)
	}
}

func TestDoCallOnWaitingAndResult(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		g := mustNew(t, Config{StartClosed: lost, Backoff: Backoff{Initial: time.Second, Max: time.Second}})
		var waiting []State
		fails := 1
		send := func(context.Context) error {
			if fails > 0 {
				fails--
				g.Close(Reason{Code: "no-default-route"}) // the send lost the link again
				return errUnreach
			}
			return nil
		}
		done := make(chan struct{})
		var res Result
		var err error
		go func() {
			defer close(done)
			res, err = g.Sender().DoCall(context.Background(), Call{OnWaiting: func(s State) { waiting = append(waiting, s) }}, send)
		}()
		time.Sleep(10 * time.Second)
		g.Open()
		synctest.Wait()
		time.Sleep(5 * time.Second)
		g.Open()
		<-done
		if err != nil {
			t.Fatal(err)
		}
		if res.Attempts != 2 || res.Held != 15*time.Second {
			t.Errorf("Result = %+v, want 2 attempts, held 15s", res)
		}
		if len(waiting) != 2 || waiting[0].Reason != lost || waiting[1].Reason.Code != "no-default-route" {
			t.Errorf("OnWaiting got %+v, want two holds: %v, then no-default-route", waiting, lost)
		}
	})
}

func TestDoRetryDecisions(t *testing.T) {
	errUnavailable := errors.New("HTTP 503 Service Unavailable")
	tests := []struct {
		name      string
		policy    Policy
		synced    bool
		err       error
		wantRetry bool
		reason    string
	}{
		{name: "retryable class", synced: true, err: errRefused, wantRetry: true, reason: "connection"},
		{name: "other class", synced: true, err: errBad, reason: "other"},
		{name: "Permanent wins over a retryable class", synced: true, err: Permanent(errRefused), reason: ReasonPermanent},
		{name: "Retryable wins over class other", synced: true, err: Retryable(errUnavailable, 0), wantRetry: true, reason: ReasonRetryAfter},
		{name: "Permanent wins over Policy.Retry", synced: true, err: Permanent(errBad),
			policy: Policy{Retry: func(error, classify.Class) Decision { return Decision{Retry: true, Reason: "policy"} }}, reason: ReasonPermanent},
		{name: "Policy.Retry replaces the default", synced: true, err: errRefused,
			policy: Policy{Retry: func(_ error, c classify.Class) Decision { return Decision{Reason: "policy: " + c.String()} }}, reason: "policy: connection"},
		{name: "expired certificate, clock synchronised", synced: true, err: errExpired, reason: "certificate"},
		{name: "expired certificate, clock not synchronised", err: errExpired, wantRetry: true, reason: ReasonClockUnsynchronized},
		{name: "unknown authority, clock not synchronised", err: errUnknownCA, reason: "certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				var h hooks
				g := mustNew(t, h.config(Config{Policy: tt.policy, ClockSynced: func() bool { return tt.synced }}))
				s := &script{errs: []error{tt.err}}
				err := g.Sender().Do(context.Background(), s.send)
				if len(h.errs) != 1 || h.errs[0].Decision.Retry != tt.wantRetry || h.errs[0].Decision.Reason != tt.reason {
					t.Fatalf("OnError = %+v, want one decision: retry %v, reason %q", h.errs, tt.wantRetry, tt.reason)
				}
				if tt.wantRetry != (err == nil) {
					t.Errorf("Do = %v after %d attempts; want success after a retry: %v", err, len(s.calls), tt.wantRetry)
				}
				var se *SendError
				if err != nil && (!errors.As(err, &se) || se.Decision.Reason != tt.reason || !errors.Is(err, s.errs[0])) {
					t.Errorf("Do = %#v, want a *SendError with reason %q wrapping the send's error", err, tt.reason)
				}
			})
		})
	}
}

// TestDoRetryAfterIsHonouredAcrossAHold: the next attempt starts no
// sooner than Retryable's after, even when the gate holds the call and
// reopens meanwhile.
func TestDoRetryAfterIsHonouredAcrossAHold(t *testing.T) {
	for _, closeBetween := range []bool{false, true} {
		name := "gate open"
		if closeBetween {
			name = "gate closes and reopens in between"
		}
		t.Run(name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				g := mustNew(t, Config{Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
				s := &script{errs: []error{Retryable(errBad, 30*time.Second)}}
				done := make(chan error, 1)
				go func() { done <- g.Sender().Do(context.Background(), s.send) }()
				if closeBetween {
					synctest.Wait()
					g.Close(lost)
					time.Sleep(10 * time.Second)
					g.Open()
				}
				if err := <-done; err != nil {
					t.Fatal(err)
				}
				if gap := s.calls[1].Sub(s.calls[0]); gap != 30*time.Second {
					t.Errorf("second attempt %v after the first, want 30s (Retry-After)", gap)
				}
			})
		})
	}
}

// The errors crypto/tls returns when the client rejects the server's
// certificate for its validity period, or for an unknown authority.
var (
	errExpired   error = &tls.CertificateVerificationError{Err: x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 1970-01-01T00:00:00Z is before 2026-11-30T21:00:00Z"}}
	errUnknownCA error = &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}}
)
