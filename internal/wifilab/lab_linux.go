package wifilab

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Options say what a boot adds to the image and how long it may take.
type Options struct {
	// Files are host files to place in the guest, by guest path: the
	// binaries under test.
	Files map[string]string
	// MemoryMiB is the guest's memory (default 1024).
	MemoryMiB int
	// BootTimeout bounds the wait for the agent (default 3 minutes: TCG
	// on a loaded 2-core machine).
	BootTimeout time.Duration
	// Agent is the labagent binary; Boot builds it when empty.
	Agent string
}

// Lab is a booted VM with its agent.
type Lab struct {
	Image   *Image
	dir     string
	cmd     *exec.Cmd
	conn    net.Conn
	exited  chan struct{}
	exitErr error

	wmu     sync.Mutex // serialises writes to conn
	mu      sync.Mutex // guards what follows
	nextID  int
	pending map[int]chan Response
	readErr error

	// BootTime is how long the guest took from QEMU's start to the agent's
	// hello.
	BootTime time.Duration
}

// Boot starts QEMU (TCG: a nested KVM boot hangs on these machines) with
// img and the files of opts, and waits for the guest's agent. The VM ends
// with Close, which must be called also when Boot's caller fails.
func Boot(ctx context.Context, img *Image, opts Options) (*Lab, error) {
	qemu, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		return nil, errors.New("wifilab: qemu-system-x86_64 not installed (apt-get install qemu-system-x86)")
	}
	if opts.MemoryMiB == 0 {
		opts.MemoryMiB = 1024
	}
	if opts.BootTimeout == 0 {
		opts.BootTimeout = 3 * time.Minute
	}
	dir, err := os.MkdirTemp("", "wifilab-")
	if err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	l := &Lab{Image: img, dir: dir, exited: make(chan struct{}), pending: map[int]chan Response{}}
	ok := false
	defer func() {
		if !ok {
			l.Close()
		}
	}()
	agent := opts.Agent
	if agent == "" {
		agent = filepath.Join(dir, "labagent")
		if err := GoBuild(ctx, agent, "github.com/seed-a56be422/netmon/internal/wifilab/labagent"); err != nil {
			return nil, err
		}
	}
	initrd := filepath.Join(dir, "initrd")
	if err := l.writeInitrd(initrd, agent, opts.Files); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("wifilab: %w", err)
	}
	accepted := make(chan net.Conn, 1)
	defer func() {
		// After ln.Close (deferred below, so it runs first) no connection
		// can be accepted; one accepted but not taken is closed.
		if !ok {
			select {
			case c := <-accepted:
				c.Close()
			default:
			}
		}
	}()
	defer ln.Close()
	l.cmd = exec.Command(qemu,
		"-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", fmt.Sprint(opts.MemoryMiB),
		"-display", "none", "-monitor", "none", "-nic", "none", "-no-reboot",
		"-kernel", img.Kernel, "-initrd", initrd,
		"-append", "console=ttyS0 panic=-1 loglevel=4",
		"-serial", "file:"+l.ConsolePath(),
		"-chardev", "socket,id=agent,path="+sock,
		"-serial", "chardev:agent",
	)
	var qerr strings.Builder
	l.cmd.Stdout, l.cmd.Stderr = &qerr, &qerr
	// QEMU dies with the test process, even one killed by go test's
	// timeout: a TCG guest left running would eat a CI machine's CPU.
	l.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	start := time.Now()
	if err := l.cmd.Start(); err != nil {
		return nil, fmt.Errorf("wifilab: starting qemu: %w", err)
	}
	go func() {
		l.exitErr = l.cmd.Wait()
		close(l.exited)
	}()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	bootCtx, cancel := context.WithTimeout(ctx, opts.BootTimeout)
	defer cancel()
	select {
	case l.conn = <-accepted:
	case <-l.exited:
		return nil, l.exitedDuringBoot(&qerr)
	case <-bootCtx.Done():
		return nil, fmt.Errorf("wifilab: qemu did not connect the agent port within %v\nconsole:\n%s", opts.BootTimeout, l.Console(30))
	}
	r := bufio.NewReaderSize(l.conn, 1<<20)
	hello := make(chan error, 1)
	go func() {
		// The port may carry boot noise before the agent puts it in raw
		// mode; the hello is the first whole line that matches.
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				hello <- err
				return
			}
			if strings.TrimSpace(line) == Hello {
				hello <- nil
				return
			}
		}
	}()
	select {
	case err := <-hello:
		if err != nil {
			// The port closes when QEMU ends: say why it ended.
			select {
			case <-l.exited:
				return nil, l.exitedDuringBoot(&qerr)
			case <-time.After(2 * time.Second):
			}
			return nil, fmt.Errorf("wifilab: reading the agent's hello: %w\nconsole:\n%s", err, l.Console(30))
		}
	case <-l.exited:
		return nil, l.exitedDuringBoot(&qerr)
	case <-bootCtx.Done():
		return nil, fmt.Errorf("wifilab: no agent hello within %v\nconsole:\n%s", opts.BootTimeout, l.Console(30))
	}
	l.BootTime = time.Since(start)
	go l.readLoop(r)
	ok = true
	return l, nil
}

// exitedDuringBoot says why QEMU ended before the agent answered: its exit,
// its own words and the console's last lines. Only after l.exited.
func (l *Lab) exitedDuringBoot(qerr *strings.Builder) error {
	return fmt.Errorf("wifilab: qemu exited during boot: %v: %s\nconsole:\n%s", l.exitErr, strings.TrimSpace(qerr.String()), l.Console(30))
}

// writeInitrd writes the image's initramfs followed by a second cpio archive
// with the agent and the files of this boot: the kernel unpacks both.
func (l *Lab) writeInitrd(path, agent string, files map[string]string) error {
	out, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("wifilab: %w", err)
	}
	defer out.Close()
	base, err := os.Open(l.Image.Initrd)
	if err != nil {
		return fmt.Errorf("wifilab: %w", err)
	}
	defer base.Close()
	if _, err := io.Copy(out, base); err != nil {
		return fmt.Errorf("wifilab: %w", err)
	}
	a := newArchive()
	if err := a.file("bin/labagent", agent); err != nil {
		return fmt.Errorf("wifilab: %w", err)
	}
	for guest, host := range files {
		if err := a.file(guest, host); err != nil {
			return fmt.Errorf("wifilab: file for %s: %w", guest, err)
		}
	}
	if err := a.writeTo(out); err != nil {
		return fmt.Errorf("wifilab: %w", err)
	}
	return out.Close()
}

func (l *Lab) readLoop(r *bufio.Reader) {
	var err error
	for {
		var line []byte
		line, err = r.ReadBytes('\n')
		if err != nil {
			break
		}
		var resp Response
		if json.Unmarshal(line, &resp) != nil {
			continue // console noise cannot reach here once raw, but be lenient
		}
		l.mu.Lock()
		ch := l.pending[resp.ID]
		delete(l.pending, resp.ID)
		l.mu.Unlock()
		if ch != nil {
			ch <- resp
		}
	}
	l.mu.Lock()
	l.readErr = fmt.Errorf("wifilab: agent connection: %w", err)
	for id, ch := range l.pending {
		close(ch)
		delete(l.pending, id)
	}
	l.mu.Unlock()
}

// do sends req and waits for its response, or ctx, or the VM's end.
func (l *Lab) do(ctx context.Context, req Request) (Response, error) {
	ch := make(chan Response, 1)
	l.mu.Lock()
	if l.readErr != nil {
		l.mu.Unlock()
		return Response{}, l.readErr
	}
	l.nextID++
	req.ID = l.nextID
	l.pending[req.ID] = ch
	l.mu.Unlock()
	b, err := json.Marshal(req)
	if err != nil {
		return Response{}, err
	}
	// Every request has a deadline: the caller's, or the request's own
	// timeout and a minute for the agent to answer.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(req.TimeoutMS)*time.Millisecond+time.Minute)
		defer cancel()
	}
	l.wmu.Lock()
	dl, _ := ctx.Deadline()
	l.conn.SetWriteDeadline(dl)
	_, err = l.conn.Write(append(b, '\n'))
	l.wmu.Unlock()
	if err != nil {
		return Response{}, fmt.Errorf("wifilab: sending to the agent: %w", err)
	}
	select {
	case resp, ok := <-ch:
		if !ok {
			return Response{}, l.readErr
		}
		return resp, nil
	case <-l.exited:
		return Response{}, fmt.Errorf("wifilab: %s %v: the VM stopped: %v\nconsole:\n%s", req.Op, req.Argv, l.exitErr, l.Console(20))
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.pending, req.ID)
		l.mu.Unlock()
		return Response{}, fmt.Errorf("wifilab: %s %v: %w", req.Op, req.Argv, ctx.Err())
	}
}

func timeoutMS(ctx context.Context, def time.Duration) int64 {
	if dl, ok := ctx.Deadline(); ok {
		if d := time.Until(dl); d < def {
			def = d
		}
	}
	return max(def.Milliseconds(), 1)
}

// Result is what a command run in the guest printed and how it exited.
type Result struct {
	Stdout, Stderr string
	Exit           int
	// Start is the guest's clock when the command started (BusyBox's
	// date has no sub-second format).
	Start time.Time
}

// Run runs argv in the guest to completion. A non-zero exit is an error
// that carries the command's stderr.
func (l *Lab) Run(ctx context.Context, argv ...string) (Result, error) {
	resp, err := l.do(ctx, Request{Op: "run", Argv: argv, TimeoutMS: timeoutMS(ctx, 2*time.Minute)})
	if err != nil {
		return Result{}, err
	}
	res := Result{Stdout: resp.Stdout, Stderr: resp.Stderr, Exit: resp.Exit}
	if resp.Start != 0 {
		res.Start = time.Unix(0, resp.Start)
	}
	cmd := strings.Join(argv, " ")
	if len(cmd) > 80 {
		cmd = cmd[:77] + "..."
	}
	if resp.Err != "" {
		return res, fmt.Errorf("wifilab: %s: %s", cmd, resp.Err)
	}
	if resp.Exit != 0 {
		return res, fmt.Errorf("wifilab: %s: exit %d: %s%s", cmd, resp.Exit, LastLines(resp.Stderr, 10), LastLines(resp.Stdout, 10))
	}
	return res, nil
}

// Sh runs a BusyBox shell script in the guest and returns its stdout. The
// script's ip, iw, hostapd and the other Tools are the real programs, not
// BusyBox's applets of the same name.
func (l *Lab) Sh(ctx context.Context, script string) (string, error) {
	res, err := l.Run(ctx, "/bin/sh", "-c", ". /"+profilePath+"\n"+script)
	return res.Stdout, err
}

// Start starts argv in the background under name; its output goes to
// LogPath(name).
func (l *Lab) Start(ctx context.Context, name string, argv ...string) error {
	resp, err := l.do(ctx, Request{Op: "start", Name: name, Argv: argv})
	if err == nil && resp.Err != "" {
		err = fmt.Errorf("wifilab: start %s: %s", name, resp.Err)
	}
	return err
}

// Stop ends the process started under name (SIGTERM, then SIGKILL after
// grace) and returns its exit status.
func (l *Lab) Stop(ctx context.Context, name string, grace time.Duration) (int, error) {
	resp, err := l.do(ctx, Request{Op: "stop", Name: name, TimeoutMS: grace.Milliseconds()})
	if err == nil && resp.Err != "" {
		err = fmt.Errorf("wifilab: stop %s: %s", name, resp.Err)
	}
	return resp.Exit, err
}

// LogPath is the guest file that holds the output of the process started
// under name.
func LogPath(name string) string { return "/tmp/log/" + name + ".log" }

// ReadFile returns a guest file's contents.
func (l *Lab) ReadFile(ctx context.Context, path string) (string, error) {
	resp, err := l.do(ctx, Request{Op: "read", Path: path})
	if err == nil && resp.Err != "" {
		err = fmt.Errorf("wifilab: read %s: %s", path, resp.Err)
	}
	return resp.Stdout, err
}

// Wait waits until the guest file path has a line matching pattern (a Go
// regexp) after byte offset, and returns the line and the offset just past
// it, so that a series of waits reads a log in order. The deadline is
// ctx's or timeout, whichever is sooner; a failed wait says what the file
// ended with.
func (l *Lab) Wait(ctx context.Context, path, pattern string, offset int64, timeout time.Duration) (string, int64, error) {
	resp, err := l.do(ctx, Request{Op: "wait", Path: path, Pattern: pattern, Offset: offset, TimeoutMS: timeoutMS(ctx, timeout)})
	if err != nil {
		return "", offset, err
	}
	if resp.Err != "" {
		return "", offset, fmt.Errorf("wifilab: %s; it ends with:\n%s", resp.Err, resp.Stdout)
	}
	return resp.Line, resp.End, nil
}

// ConsolePath is the host file with the guest's console (ttyS0).
func (l *Lab) ConsolePath() string { return filepath.Join(l.dir, "console.log") }

// Console returns the last n lines of the guest's console.
func (l *Lab) Console(n int) string {
	b, _ := os.ReadFile(l.ConsolePath())
	return LastLines(string(b), n)
}

// Close kills the VM and removes its files.
func (l *Lab) Close() error {
	if l.conn != nil {
		l.conn.Close()
	}
	if l.cmd != nil && l.cmd.Process != nil {
		l.cmd.Process.Kill()
		<-l.exited
	}
	return os.RemoveAll(l.dir)
}

// GoBuild builds the Go package pkg into out as a static binary for the
// guest (CGO_ENABLED=0, so it needs no library the image lacks).
func GoBuild(ctx context.Context, out, pkg string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("wifilab: go build %s: %v: %s", pkg, err, b)
	}
	return nil
}
