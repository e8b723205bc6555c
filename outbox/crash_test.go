package outbox

// The crash loop: a child process (internal/crashchild) appends and drains
// to a receiver in the parent, and is SIGKILLed at random points; no
// accepted message may be missing or first delivered out of order within
// its stream, and the copies the receiver gets before de-duplication are
// only those a crash explains (see TestCrashLoopLosesNoAcceptedMessage).

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// receiver is the parent's end: it acknowledges every line (unless it
// holds) and records the first delivery of each (epoch, N), and, before
// de-duplication, every copy: per connection (one run of the child), how
// many lines were copies of a message delivered on an earlier connection,
// and the copies that no crash explains.
type receiver struct {
	t    *testing.T
	ln   net.Listener
	wg   sync.WaitGroup
	hold bool // acknowledge nothing: every message stays pending in the outbox

	mu      sync.Mutex
	ended   *sync.Cond           // signalled when a connection has been served to its end
	dialed  int                  // connections the children reported (runChild counts them)
	served  int                  // connections served to their end
	seen    map[[2]uint64]string // (epoch, N): stream
	order   map[string][]uint64  // stream: Ns in order of first delivery
	lines   int                  // lines received, copies included
	dups    int                  // copies of a message delivered before
	resent  []int                // per connection with a copy: how many
	badCopy []string             // copies no crash explains
	badLine error
}

func newReceiver(t *testing.T) *receiver {
	return startReceiver(t, false)
}

// newHoldingReceiver returns a receiver that reads every line and
// acknowledges none.
func newHoldingReceiver(t *testing.T) *receiver {
	return startReceiver(t, true)
}

func startReceiver(t *testing.T, hold bool) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, ln: ln, hold: hold, seen: map[[2]uint64]string{}, order: map[string][]uint64{}}
	r.ended = sync.NewCond(&r.mu)
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		r.wg.Wait()
	})
	return r
}

func (r *receiver) accept() {
	defer r.wg.Done()
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		conns = append(conns, c)
		r.wg.Add(1)
		go r.serve(c)
	}
}

// serve reads one connection: one run of the child. The child's Drain
// sends each message once per run, in order of N, starting from the
// oldest one not yet removed; so the copies on a connection of messages
// delivered before are exactly those the previous run had sent and not
// yet removed when it was killed, and they come first. A copy of a
// message already delivered on the same connection, or one after a new
// message, is a resend no crash explains.
func (r *receiver) serve(c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
	conn := map[[2]uint64]bool{}
	fresh, resent := false, 0
	defer func() {
		r.mu.Lock()
		if resent > 0 {
			r.resent = append(r.resent, resent)
		}
		r.served++
		r.ended.Broadcast()
		r.mu.Unlock()
	}()
	sc := bufio.NewScanner(c)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		var (
			epoch, n   uint64
			err1, err2 error
		)
		if len(f) == 4 {
			epoch, err1 = strconv.ParseUint(f[0], 10, 64)
			n, err2 = strconv.ParseUint(f[1], 10, 64)
		}
		r.mu.Lock()
		if len(f) != 4 || err1 != nil || err2 != nil || !strings.HasPrefix(f[3], f[2]+"-") {
			r.badLine = fmt.Errorf("bad line %q", sc.Text())
			r.mu.Unlock()
			return
		}
		key := [2]uint64{epoch, n}
		r.lines++
		switch _, ok := r.seen[key]; {
		case conn[key]:
			r.badCopy = append(r.badCopy, fmt.Sprintf("message %d twice on one connection", n))
		case ok && fresh:
			r.badCopy = append(r.badCopy, fmt.Sprintf("message %d sent again after newer messages on one connection", n))
		}
		conn[key] = true
		if _, ok := r.seen[key]; ok {
			r.dups++
			resent++
		} else {
			fresh = true
			r.seen[key] = f[2]
			r.order[f[2]] = append(r.order[f[2]], n)
		}
		r.mu.Unlock()
		if r.hold {
			continue
		}
		if _, err := fmt.Fprintf(c, "ACK %d\n", n); err != nil {
			return // the child was killed
		}
	}
}

// buildChild builds internal/crashchild into a temporary directory.
func buildChild(t *testing.T) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "crashchild")
	const pkg = "github.com/seed-a56be422/netmon/outbox/internal/crashchild"
	if b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput(); err != nil {
		t.Fatalf("go build %s: %v\n%s", pkg, err, b)
	}
	return out
}

// childRun is one run of the child, for runChild: when to kill it, and what it
// accepted.
type childRun struct {
	// kill: SIGKILL the child once it has printed kill accepted lines;
	// with kill < 0, let it drain and exit by itself (-drain).
	kill int
	// span, if positive, replaces kill: SIGKILL the child once the
	// messages it accepted span this much time (on its clock).
	span time.Duration
	// accepted gets N: stream for every accepted message; at, if not
	// nil, the time each was accepted (CLOCK_MONOTONIC).
	accepted map[uint64]string
	at       map[uint64]time.Duration
	// killedAt is the time (CLOCK_MONOTONIC) just before the SIGKILL.
	killedAt time.Duration
}

// monotonic returns the machine's CLOCK_MONOTONIC, which the child's
// acceptance times are on.
func monotonic(t *testing.T) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ts.Nano())
}

// runChild runs the child on r's address until ru says to kill it (or,
// with ru.kill < 0, until it exits by itself), reading its stdout into
// ru; it returns once the receiver has served the child's connection to
// its end.
func runChild(t *testing.T, bin, dir string, r *receiver, epoch *uint64, ru *childRun, extra ...string) {
	t.Helper()
	args := append([]string{"-dir", dir, "-addr", r.ln.Addr().String()}, extra...)
	if ru.kill < 0 && ru.span <= 0 {
		args = append(args, "-drain")
	}
	cmd := exec.Command(bin, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	// A child stuck for 30 s is killed, and the test fails below.
	timer := time.AfterFunc(30*time.Second, func() { _ = cmd.Process.Kill() })
	defer timer.Stop()
	sc := bufio.NewScanner(out)
	n := 0
	var first time.Duration
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 1 && f[0] == "C":
			r.mu.Lock()
			r.dialed++
			r.mu.Unlock()
		case len(f) == 2 && f[0] == "R":
			e, _ := strconv.ParseUint(f[1], 10, 64)
			if *epoch == 0 {
				*epoch = e
			} else if e != *epoch {
				t.Fatalf("the child's epoch changed from %d to %d: the store was replaced", *epoch, e)
			}
		case len(f) == 4 && f[0] == "A":
			v, _ := strconv.ParseUint(f[1], 10, 64)
			ns, _ := strconv.ParseInt(f[3], 10, 64)
			ru.accepted[v] = f[2]
			if ru.at != nil {
				ru.at[v] = time.Duration(ns)
			}
			if n == 0 {
				first = time.Duration(ns)
			}
			n++
			if !killed && (ru.span > 0 && time.Duration(ns)-first >= ru.span || ru.span <= 0 && ru.kill >= 0 && n >= ru.kill) {
				ru.killedAt = monotonic(t)
				_ = cmd.Process.Signal(syscall.SIGKILL)
				killed = true
			}
		}
		if !killed && ru.span <= 0 && ru.kill == 0 {
			ru.killedAt = monotonic(t)
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case killed && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
	case !killed && err == nil && ru.kill < 0:
	default:
		t.Fatalf("child (kill after %d, span %v): %v; stderr:\n%s", ru.kill, ru.span, err, stderr.String())
	}
	// The child is dead and its socket closed: the receiver reads what
	// is left of its connection before the next run connects.
	r.mu.Lock()
	for r.served < r.dialed {
		r.ended.Wait()
	}
	r.mu.Unlock()
}

func TestCrashLoopLosesNoAcceptedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("the crash loop takes about a minute; -short skips it")
	}
	t.Parallel()
	const (
		kills  = 1000
		budget = 50 * time.Second // the loop's time bound, so that CI stays fast
	)
	bin := buildChild(t)
	dir := t.TempDir()
	r := newReceiver(t)
	accepted := map[uint64]string{}
	var epoch uint64
	start := time.Now()
	i := 0
	for ; i < kills && time.Since(start) < budget; i++ {
		// Kill after 0 to 15 accepted messages: at open, mid-append,
		// mid-drain, mid-ack.
		runChild(t, bin, dir, r, &epoch, &childRun{kill: rand.IntN(16), accepted: accepted})
	}
	runChild(t, bin, dir, r, &epoch, &childRun{kill: -1, accepted: accepted})
	t.Logf("%d SIGKILLs in %v; %d messages accepted", i, time.Since(start).Round(time.Millisecond), len(accepted))
	if i < 100 {
		t.Errorf("only %d SIGKILLs within %v", i, budget)
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if r.badLine != nil {
		t.Fatal(r.badLine)
	}
	missing := 0
	for n, stream := range accepted {
		got, ok := r.seen[[2]uint64{epoch, n}]
		switch {
		case !ok:
			missing++
			if missing < 10 {
				t.Errorf("accepted message %d (%s) never delivered", n, stream)
			}
		case got != stream:
			t.Errorf("message %d delivered on stream %s, accepted on %s", n, got, stream)
		}
	}
	if missing > 0 {
		t.Errorf("%d of %d accepted messages never delivered", missing, len(accepted))
	}
	for stream, ns := range r.order {
		if !slices.IsSorted(ns) {
			t.Errorf("stream %s first delivered out of order: %v", stream, ns)
		}
	}
	// Before de-duplication: a restart sends again the messages the
	// killed run had sent and not yet removed: those in flight (at most
	// the child's Window, 16) and at most one acknowledged whose removal
	// was under way (the child acknowledges from one goroutine, and an
	// acknowledgement frees its window slot before its removal commits).
	// Nothing else may come twice.
	const window = 16
	for _, c := range r.badCopy[:min(len(r.badCopy), 10)] {
		t.Errorf("a copy no crash explains: %s", c)
	}
	if len(r.badCopy) > 0 {
		t.Errorf("%d copies no crash explains", len(r.badCopy))
	}
	over := 0
	for _, n := range r.resent {
		if n > window+1 {
			over++
		}
	}
	if over > 0 {
		t.Errorf("%d restarts sent more than %d messages again (the window, and one acknowledged being removed), one of them %d",
			over, window+1, slices.Max(r.resent))
	}
	if r.lines != len(r.seen)+r.dups {
		t.Errorf("%d lines received, but %d messages and %d copies", r.lines, len(r.seen), r.dups)
	}
	t.Logf("%d lines received: %d messages, %d copies sent again at %d of %d restarts (at most %d at one)",
		r.lines, len(r.seen), r.dups, len(r.resent), i, slices.Max(append(r.resent, 0)))
}
