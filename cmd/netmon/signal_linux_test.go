package main

import (
	"bufio"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"github.com/seed-a56be422/netmon/internal/netnstest"
)

// TestIntegrationSecondSignalExits: watch whose stdout nobody reads cannot
// finish its shutdown (the summary waits for stdout); a second SIGINT
// exits at once with 130, and a second SIGTERM with 143.
func TestIntegrationSecondSignalExits(t *testing.T) {
	t.Parallel()
	netnstest.RequirePrivileged(t)
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		p := newPair(t)
		r, w, err := os.Pipe() // stdout: never read
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*waitTimeout)
		cmd := exec.CommandContext(ctx, buildNetmon(t), "watch", "--sockerr=off", "--wifi=off")
		cmd.Stdout = w
		stderr, err := cmd.StderrPipe()
		if err != nil {
			t.Fatal(err)
		}
		// Started from a thread inside the namespace, without ip netns
		// exec in between: the signals reach netmon itself.
		if err := p.a.Do(func() error { return cmd.Start() }); err != nil {
			t.Fatal(err)
		}
		w.Close()
		lines := make(chan string, 16)
		go func() {
			sc := bufio.NewScanner(stderr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// More lines than the pipe and the log queue hold.
		p.a.AddrStorm("va", 3000)
		if err := cmd.Process.Signal(c.sig); err != nil {
			t.Fatal(err)
		}
		waitLine(t, lines, "stderr stopping", func(l string) bool { return strings.Contains(l, "stopping") })
		if err := cmd.Process.Signal(c.sig); err != nil {
			t.Fatal(err)
		}
		err = cmd.Wait()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != c.code {
			t.Errorf("after a second %v: %v, want exit %d", c.sig, err, c.code)
		}
		cancel()
		r.Close()
	}
}
