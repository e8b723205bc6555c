//go:build linux

// Command labagent runs inside the wifilab VM as its init's last step. It
// reads Requests from the serial port given as its argument and answers each
// with a Response (see package wifilab); it is not meant to run elsewhere.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon/internal/wifilab"
	"golang.org/x/sys/unix"
)

const logDir = "/tmp/log"

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: labagent /dev/ttyS1")
		os.Exit(2)
	}
	port, err := os.OpenFile(os.Args[1], os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, "labagent:", err)
		os.Exit(1)
	}
	if err := raw(int(port.Fd())); err != nil {
		fmt.Fprintln(os.Stderr, "labagent: raw mode:", err)
		os.Exit(1)
	}
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "labagent:", err)
		os.Exit(1)
	}
	a := &agent{out: port, procs: map[string]*proc{}}
	a.write([]byte(wifilab.Hello))
	sc := bufio.NewScanner(port)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var req wifilab.Request
		if err := json.Unmarshal(sc.Bytes(), &req); err != nil {
			fmt.Fprintf(os.Stderr, "labagent: bad request %q: %v\n", sc.Text(), err)
			continue
		}
		go a.serve(req)
	}
	fmt.Fprintln(os.Stderr, "labagent: serial port closed:", sc.Err())
}

// raw puts the serial line in raw mode: no echo, no line editing, no CR/LF
// translation, so JSON lines pass unchanged in both directions.
func raw(fd int) error {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return err
	}
	t.Iflag &^= unix.IGNBRK | unix.BRKINT | unix.PARMRK | unix.ISTRIP | unix.INLCR | unix.IGNCR | unix.ICRNL | unix.IXON
	t.Oflag &^= unix.OPOST
	t.Lflag &^= unix.ECHO | unix.ECHONL | unix.ICANON | unix.ISIG | unix.IEXTEN
	t.Cflag &^= unix.CSIZE | unix.PARENB
	t.Cflag |= unix.CS8
	t.Cc[unix.VMIN] = 1
	t.Cc[unix.VTIME] = 0
	return unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	exit int
}

type agent struct {
	mu    sync.Mutex // serialises writes to out and guards procs
	out   *os.File
	procs map[string]*proc
}

func (a *agent) write(line []byte) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.out.Write(append(line, '\n'))
}

func (a *agent) serve(req wifilab.Request) {
	resp := wifilab.Response{ID: req.ID}
	timeout := time.Duration(req.TimeoutMS) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Minute
	}
	switch req.Op {
	case "run":
		a.run(req, timeout, &resp)
	case "start":
		a.start(req, &resp)
	case "stop":
		a.stop(req, timeout, &resp)
	case "read":
		b, err := os.ReadFile(req.Path)
		resp.Stdout = string(b)
		setErr(&resp, err)
	case "wait":
		a.wait(req, timeout, &resp)
	default:
		resp.Err = fmt.Sprintf("unknown op %q (want run, start, stop, read or wait)", req.Op)
	}
	b, err := json.Marshal(resp)
	if err != nil {
		b, _ = json.Marshal(wifilab.Response{ID: req.ID, Err: err.Error()})
	}
	a.write(b)
}

func setErr(resp *wifilab.Response, err error) {
	if err != nil {
		resp.Err = err.Error()
	}
}

func command(req wifilab.Request) (*exec.Cmd, error) {
	if len(req.Argv) == 0 {
		return nil, errors.New("empty argv")
	}
	cmd := exec.Command(req.Argv[0], req.Argv[1:]...)
	cmd.Env = append(os.Environ(), req.Env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A child that left the process group and keeps the output pipes open
	// must not keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	return cmd, nil
}

func exitCode(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

func (a *agent) run(req wifilab.Request, timeout time.Duration, resp *wifilab.Response) {
	cmd, err := command(req)
	if err != nil {
		setErr(resp, err)
		return
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	resp.Start = time.Now().UnixNano()
	if err := cmd.Start(); err != nil {
		setErr(resp, err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err = <-done:
	case <-ctx.Done():
		unix.Kill(-cmd.Process.Pid, unix.SIGKILL)
		err = <-done
		resp.Err = fmt.Sprintf("%s: still running after %v, killed", strings.Join(req.Argv, " "), timeout)
	}
	resp.Exit = exitCode(err)
	resp.Stdout, resp.Stderr = stdout.String(), stderr.String()
}

func (a *agent) start(req wifilab.Request, resp *wifilab.Response) {
	if req.Name == "" || strings.ContainsAny(req.Name, "/ ") {
		resp.Err = fmt.Sprintf("bad process name %q (want a non-empty name without / or spaces)", req.Name)
		return
	}
	a.mu.Lock()
	_, dup := a.procs[req.Name]
	a.mu.Unlock()
	if dup {
		resp.Err = fmt.Sprintf("a process named %q is already running", req.Name)
		return
	}
	cmd, err := command(req)
	if err != nil {
		setErr(resp, err)
		return
	}
	log, err := os.Create(filepath.Join(logDir, req.Name+".log"))
	if err != nil {
		setErr(resp, err)
		return
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		setErr(resp, err)
		return
	}
	p := &proc{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.exit = exitCode(cmd.Wait())
		log.Close()
		close(p.done)
	}()
	a.mu.Lock()
	a.procs[req.Name] = p
	a.mu.Unlock()
	resp.Exit = cmd.Process.Pid
}

func (a *agent) stop(req wifilab.Request, timeout time.Duration, resp *wifilab.Response) {
	a.mu.Lock()
	p, ok := a.procs[req.Name]
	delete(a.procs, req.Name)
	a.mu.Unlock()
	if !ok {
		resp.Err = fmt.Sprintf("no process named %q", req.Name)
		return
	}
	unix.Kill(-p.cmd.Process.Pid, unix.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(timeout):
		unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
		<-p.done
		resp.Err = fmt.Sprintf("%s did not end %v after SIGTERM, killed", req.Name, timeout)
	}
	resp.Exit = p.exit
}

func (a *agent) wait(req wifilab.Request, timeout time.Duration, resp *wifilab.Response) {
	re, err := regexp.Compile(req.Pattern)
	if err != nil {
		setErr(resp, err)
		return
	}
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(req.Path)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			setErr(resp, err)
			return
		}
		if req.Offset < int64(len(b)) {
			rest := b[max(req.Offset, 0):]
			for off := 0; off < len(rest); {
				nl := bytes.IndexByte(rest[off:], '\n')
				if nl < 0 {
					break // a line still being written
				}
				line := rest[off : off+nl]
				if re.Match(line) {
					resp.Line = string(line)
					resp.End = req.Offset + int64(off+nl+1)
					return
				}
				off += nl + 1
			}
		}
		if time.Now().After(deadline) {
			resp.Err = fmt.Sprintf("no line matching %q in %s within %v", req.Pattern, req.Path, timeout)
			resp.Stdout = wifilab.LastLines(string(b), 20)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
