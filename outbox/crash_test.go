package outbox

// The crash loop: a child process (internal/crashchild) appends and drains
// to a receiver in the parent, and is SIGKILLed at random points; after
// every restart no accepted message may be missing, out of order within
// its stream, or left twice after de-duplication.

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
)

// receiver is the parent's end: it acknowledges every line and records
// the first delivery of each (epoch, N).
type receiver struct {
	t  *testing.T
	ln net.Listener
	wg sync.WaitGroup

	mu      sync.Mutex
	seen    map[[2]uint64]string // (epoch, N): stream
	order   map[string][]uint64  // stream: Ns in order of first delivery
	dups    int
	badLine error
}

func newReceiver(t *testing.T) *receiver {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, ln: ln, seen: map[[2]uint64]string{}, order: map[string][]uint64{}}
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

func (r *receiver) serve(c net.Conn) {
	defer r.wg.Done()
	defer c.Close()
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
		if _, ok := r.seen[[2]uint64{epoch, n}]; ok {
			r.dups++
		} else {
			r.seen[[2]uint64{epoch, n}] = f[2]
			r.order[f[2]] = append(r.order[f[2]], n)
		}
		r.mu.Unlock()
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

// runChild starts the child, reads its stdout into accepted (N: stream)
// and returns once it has printed kill accepted lines (then SIGKILLs it)
// or, with kill < 0, once it exits by itself (-drain).
func runChild(t *testing.T, bin, dir, addr string, kill int, epoch *uint64, accepted map[uint64]string, extra ...string) {
	t.Helper()
	args := append([]string{"-dir", dir, "-addr", addr}, extra...)
	if kill < 0 {
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
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "R":
			e, _ := strconv.ParseUint(f[1], 10, 64)
			if *epoch == 0 {
				*epoch = e
			} else if e != *epoch {
				t.Fatalf("the child's epoch changed from %d to %d: the store was replaced", *epoch, e)
			}
		case len(f) == 3 && f[0] == "A":
			v, _ := strconv.ParseUint(f[1], 10, 64)
			accepted[v] = f[2]
			n++
		}
		if !killed && kill >= 0 && n >= kill {
			_ = cmd.Process.Signal(syscall.SIGKILL)
			killed = true
		}
	}
	_, _ = io.Copy(io.Discard, out)
	err = cmd.Wait()
	var ee *exec.ExitError
	switch {
	case killed && errors.As(err, &ee) && ee.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
	case !killed && err == nil && kill < 0:
	default:
		t.Fatalf("child (kill after %d): %v; stderr:\n%s", kill, err, stderr.String())
	}
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
	addr := r.ln.Addr().String()
	accepted := map[uint64]string{}
	var epoch uint64
	start := time.Now()
	i := 0
	for ; i < kills && time.Since(start) < budget; i++ {
		// Kill after 0 to 15 accepted messages: at open, mid-append,
		// mid-drain, mid-ack.
		runChild(t, bin, dir, addr, rand.IntN(16), &epoch, accepted)
	}
	runChild(t, bin, dir, addr, -1, &epoch, accepted)
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
	t.Logf("%d delivered once after de-duplication, %d duplicates dropped", len(r.seen), r.dups)
}
