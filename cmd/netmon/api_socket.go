package main

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// socketMode is the --socket-mode flag: permission bits in octal.
type socketMode fs.FileMode

func (m *socketMode) String() string { return fmt.Sprintf("%04o", uint32(*m)) }

func (m *socketMode) Set(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err != nil || n > 0o777 {
		return errors.New("want permission bits in octal, e.g. 0660 (owner and group) or 0600 (owner only)")
	}
	*m = socketMode(n)
	return nil
}

// lookupGroup returns the ID of group name, a name or a number.
func lookupGroup(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return 0, fmt.Errorf("--socket-group %s: %w (want a group name or ID)", name, err)
	}
	return strconv.Atoi(g.Gid)
}

// listenSocket creates the API's Unix socket at path with mode and, when
// gid >= 0, that group, before any client can connect: the socket is
// created under a umask that leaves only its owner, then given its group
// and mode. A stale socket (nobody listening) is replaced; a live one, or
// a file that is not a socket, is an error naming it. The socket file is
// removed when the listener closes.
func listenSocket(path string, mode fs.FileMode, gid int) (*net.UnixListener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--socket %s: exists and is not a socket; remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("--socket %s: another process serves it (is netmon already running?)", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
		}
	}
	if dir := filepath.Dir(path); dir != "" {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--socket %s: directory %s does not exist (systemd: RuntimeDirectory=netmon creates /run/netmon)", path, dir)
		}
	}
	l, err := listenUmask(path)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	if gid >= 0 {
		if err := os.Lchown(path, -1, gid); err != nil {
			l.Close()
			return nil, fmt.Errorf("--socket %s: setting its group: %w", path, err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		l.Close()
		return nil, fmt.Errorf("--socket %s: setting its mode: %w", path, err)
	}
	return l, nil
}

// umaskMu serialises the process-wide umask change of listenUmask.
var umaskMu sync.Mutex

// listenUmask binds path with a umask that gives the socket file to its
// owner only, so that no client can connect before its mode is set.
func listenUmask(path string) (*net.UnixListener, error) {
	umaskMu.Lock()
	defer umaskMu.Unlock()
	old := unix.Umask(0o177)
	defer unix.Umask(old)
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}

// limitListener accepts at most max connections at once; beyond that a
// new connection is closed at once, so that a flood costs its sockets
// nothing beyond the accept and never holds up the clients served.
func limitListener(l net.Listener, max int) net.Listener {
	return &limited{Listener: l, sem: make(chan struct{}, max)}
}

type limited struct {
	net.Listener
	sem chan struct{}
}

func (l *limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		select {
		case l.sem <- struct{}{}:
			return &limitedConn{Conn: c, release: func() { <-l.sem }}, nil
		default:
			c.Close()
		}
	}
}

// limitedConn gives its slot back when closed, once.
type limitedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
