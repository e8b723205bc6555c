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
	"syscall"
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
		c, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			c.Close()
			return nil, fmt.Errorf("--socket %s: another process serves it (is netmon already running?)", path)
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			// A full backlog, a mode that shuts this user out, a timeout:
			// someone may still serve it; never take a live socket over.
			return nil, fmt.Errorf("--socket %s: cannot tell whether another process serves it: %w", path, err)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
		}
	}
	if dir := filepath.Dir(path); dir != "" {
		fi, err := os.Stat(dir)
		if err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("--socket %s: directory %s does not exist (systemd: RuntimeDirectory=netmon creates /run/netmon)", path, dir)
		}
		if fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0 {
			// Another user could swap the socket for a symbolic link
			// between its creation and the chmod below.
			return nil, fmt.Errorf("--socket %s: directory %s is writable by others and not sticky; use a directory only netmon's user can write (/run/netmon)", path, dir)
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

// limitListener accepts at most max connections at once, and at most
// perPeer from one process (by the socket's peer credentials); beyond that
// a new connection is closed at once, so that a flood costs its sockets
// nothing beyond the accept, and one process that parks thousands of long
// polls cannot shut the others out.
func limitListener(l net.Listener, max, perPeer int) net.Listener {
	return &limited{Listener: l, max: max, perPeer: perPeer, byPeer: map[int]int{}}
}

type limited struct {
	net.Listener
	max, perPeer int
	mu           sync.Mutex
	n            int
	byPeer       map[int]int // open connections by peer process ID (0: unknown)
}

func (l *limited) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		pid := connPID(c)
		l.mu.Lock()
		ok := l.n < l.max && (pid == 0 || l.byPeer[pid] < l.perPeer)
		if ok {
			l.n++
			l.byPeer[pid]++
		}
		l.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		return &limitedConn{Conn: c, release: func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			l.n--
			if l.byPeer[pid]--; l.byPeer[pid] == 0 {
				delete(l.byPeer, pid)
			}
		}}, nil
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
