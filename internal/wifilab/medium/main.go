//go:build linux

// Command medium is a controllable wireless medium for the mac80211_hwsim
// radios of the Wi-Fi lab (internal/wifilab), run inside the guest.
//
//	medium serve [-sock /run/medium.sock] [-threshold -95] [-default -50]
//
// registers with mac80211_hwsim (package hwsim) so that every frame of every
// radio passes through it, and takes commands, one line each, on the Unix
// socket. The same binary is the client:
//
//	medium [-sock /run/medium.sock] COMMAND ARGS...   (or: medium set COMMAND ARGS...)
//
// sends one command and prints the answer; it exits 1 when the answer is
// not "ok ...". Radios are named phyN, by an interface of theirs (wlanN) or
// by a MAC address. The commands:
//
//	signal A B DBM          A hears B and B hears A at DBM dBm (link on)
//	signal-oneway TX RX DBM RX hears TX at DBM dBm
//	link A B off|on         cut the link both ways, or restore it with its signal
//	ramp A B FROM TO DUR    move the signal both ways from FROM to TO dBm over DUR
//	                        (a Go duration, e.g. 20s), a step every 250 ms
//	show                    the links set and the counters
//	radios                  the radios and their names
//
// A signal, link or ramp command on a pair cancels the ramp running on it.
// Frames below the threshold (-95 dBm unless -threshold says otherwise) are
// lost. Each change is logged on stdout with a UTC timestamp.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon/internal/wifilab/hwsim"
)

const defaultSock = "/run/medium.sock"

func main() {
	args := os.Args[1:]
	if len(args) > 0 && args[0] == "serve" {
		os.Exit(serve(args[1:]))
	}
	os.Exit(client(args))
}

func logf(format string, args ...any) {
	fmt.Printf("%s %s\n", time.Now().UTC().Format("2006-01-02T15:04:05.000Z"), fmt.Sprintf(format, args...))
}

func client(args []string) int {
	fs := flag.NewFlagSet("medium", flag.ExitOnError)
	sock := fs.String("sock", defaultSock, "control socket")
	fs.Parse(args)
	words := fs.Args()
	if len(words) > 0 && words[0] == "set" {
		words = words[1:]
	}
	if len(words) == 0 {
		fmt.Fprintln(os.Stderr, "usage: medium serve [flags] | medium [-sock path] [set] COMMAND ARGS...")
		return 2
	}
	c, err := net.DialTimeout("unix", *sock, 5*time.Second)
	if err != nil {
		fmt.Fprintln(os.Stderr, "medium:", err)
		return 1
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := fmt.Fprintln(c, strings.Join(words, " ")); err != nil {
		fmt.Fprintln(os.Stderr, "medium:", err)
		return 1
	}
	var out strings.Builder
	r := bufio.NewScanner(c)
	for r.Scan() {
		if r.Text() == "." {
			break
		}
		out.WriteString(r.Text() + "\n")
	}
	fmt.Print(out.String())
	if !strings.HasPrefix(out.String(), "ok") {
		return 1
	}
	return 0
}

// radio is a hwsim radio as the guest's sysfs shows it.
type radio struct {
	phy    string
	addr   hwsim.Addr   // the address naming it in hwsim's messages
	owns   []hwsim.Addr // its addresses and its interfaces'
	ifaces []string
}

func readRadios() ([]radio, error) {
	phys, _ := filepath.Glob("/sys/class/ieee80211/phy*")
	var rs []radio
	for _, p := range phys {
		b, err := os.ReadFile(filepath.Join(p, "macaddress"))
		if err != nil {
			return nil, err
		}
		perm, err := hwsim.ParseAddr(strings.TrimSpace(string(b)))
		if err != nil {
			return nil, err
		}
		r := radio{phy: filepath.Base(p), addr: hwsim.RadioAddr(perm), owns: []hwsim.Addr{perm}}
		if b, err := os.ReadFile(filepath.Join(p, "addresses")); err == nil {
			for _, l := range strings.Fields(string(b)) {
				if a, err := hwsim.ParseAddr(l); err == nil {
					r.owns = append(r.owns, a)
				}
			}
		}
		nets, _ := filepath.Glob(filepath.Join(p, "device/net/*"))
		for _, n := range nets {
			r.ifaces = append(r.ifaces, filepath.Base(n))
			if b, err := os.ReadFile(filepath.Join(n, "address")); err == nil {
				if a, err := hwsim.ParseAddr(strings.TrimSpace(string(b))); err == nil {
					r.owns = append(r.owns, a)
				}
			}
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		return nil, errors.New("no radio in /sys/class/ieee80211 (modprobe mac80211_hwsim)")
	}
	return rs, nil
}

type server struct {
	ctx    context.Context
	m      *hwsim.Medium
	radios []radio

	mu    sync.Mutex
	ramps map[[2]hwsim.Addr]context.CancelFunc
	wg    sync.WaitGroup
}

func serve(args []string) int {
	fs := flag.NewFlagSet("medium serve", flag.ExitOnError)
	sock := fs.String("sock", defaultSock, "control socket")
	threshold := fs.Int("threshold", hwsim.DefaultThreshold, "signal (dBm) below which frames are lost")
	def := fs.Int("default", hwsim.DefaultSignal, "signal (dBm) of the links never set")
	fs.Parse(args)
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer cancel()
	radios, err := readRadios()
	if err != nil {
		logf("medium: %v", err)
		return 1
	}
	m := hwsim.New(hwsim.Options{Threshold: *threshold, DefaultSignal: *def, Logf: logf})
	for _, r := range radios {
		m.AddRadio(r.addr, r.owns...)
		logf("radio %s is %v, interfaces %v", r.phy, r.addr, r.ifaces)
	}
	os.Remove(*sock)
	ln, err := net.Listen("unix", *sock)
	if err != nil {
		logf("medium: %v", err)
		return 1
	}
	s := &server{ctx: ctx, m: m, radios: radios, ramps: map[[2]hwsim.Addr]context.CancelFunc{}}
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				s.handle(c)
			}()
		}
	}()
	err = m.Run(ctx, func() { logf("medium: ready, control socket %s, threshold %d dBm", *sock, m.Threshold()) })
	cancel()
	ln.Close()
	s.wg.Wait()
	logf("medium: stopped: %v; %+v", err, m.Stats())
	if err != nil && !errors.Is(err, context.Canceled) {
		return 1
	}
	return 0
}

func (s *server) handle(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	line = strings.TrimSpace(line)
	out, err := s.do(strings.Fields(line))
	if err != nil {
		logf("command %q: %v", line, err)
		fmt.Fprintf(c, "error: %v\n.\n", err)
		return
	}
	logf("command %q: ok", line)
	fmt.Fprintf(c, "ok %s\n.\n", out)
}

func (s *server) resolve(name string) (hwsim.Addr, error) {
	for _, r := range s.radios {
		if r.phy == name {
			return r.addr, nil
		}
		for _, i := range r.ifaces {
			if i == name {
				return r.addr, nil
			}
		}
	}
	if a, err := hwsim.ParseAddr(name); err == nil {
		for _, r := range s.radios {
			for _, o := range r.owns {
				if o == a {
					return r.addr, nil
				}
			}
		}
		return a, nil
	}
	return hwsim.Addr{}, fmt.Errorf("no radio %q", name)
}

func (s *server) pair(a, b string) (hwsim.Addr, hwsim.Addr, error) {
	x, err := s.resolve(a)
	if err != nil {
		return x, x, err
	}
	y, err := s.resolve(b)
	if err == nil && x == y {
		err = fmt.Errorf("%s and %s are one radio", a, b)
	}
	return x, y, err
}

// cancelRamp stops the ramp on the pair {a, b}, either order.
func (s *server) cancelRamp(a, b hwsim.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, k := range [][2]hwsim.Addr{{a, b}, {b, a}} {
		if cancel, ok := s.ramps[k]; ok {
			cancel()
			delete(s.ramps, k)
		}
	}
}

func parseDBm(s string) (int, error) {
	v, err := strconv.Atoi(s)
	if err != nil || v > 30 || v < -150 {
		return 0, fmt.Errorf("bad signal %q (dBm, -150..30)", s)
	}
	return v, nil
}

func (s *server) do(w []string) (string, error) {
	if len(w) == 0 {
		return "", errors.New("empty command")
	}
	switch {
	case (w[0] == "signal" || w[0] == "signal-oneway") && len(w) == 4:
		a, b, err := s.pair(w[1], w[2])
		if err != nil {
			return "", err
		}
		dBm, err := parseDBm(w[3])
		if err != nil {
			return "", err
		}
		s.cancelRamp(a, b)
		s.m.SetSignal(a, b, dBm)
		if w[0] == "signal" {
			s.m.SetSignal(b, a, dBm)
		}
		return fmt.Sprintf("%s %s %d dBm", w[1], w[2], dBm), nil
	case w[0] == "link" && len(w) == 4 && (w[3] == "on" || w[3] == "off"):
		a, b, err := s.pair(w[1], w[2])
		if err != nil {
			return "", err
		}
		s.cancelRamp(a, b)
		s.m.SetLink(a, b, w[3] == "on")
		s.m.SetLink(b, a, w[3] == "on")
		return fmt.Sprintf("link %s %s %s", w[1], w[2], w[3]), nil
	case w[0] == "ramp" && len(w) == 6:
		a, b, err := s.pair(w[1], w[2])
		if err != nil {
			return "", err
		}
		from, err := parseDBm(w[3])
		if err != nil {
			return "", err
		}
		to, err := parseDBm(w[4])
		if err != nil {
			return "", err
		}
		d, err := time.ParseDuration(w[5])
		if err != nil || d <= 0 || d > time.Hour {
			return "", fmt.Errorf("bad duration %q", w[5])
		}
		s.cancelRamp(a, b)
		ctx, cancel := context.WithCancel(s.ctx)
		s.mu.Lock()
		s.ramps[[2]hwsim.Addr{a, b}] = cancel
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.ramp(ctx, a, b, from, to, d)
		}()
		return fmt.Sprintf("ramp %s %s %d -> %d dBm over %v", w[1], w[2], from, to, d), nil
	case w[0] == "show" && len(w) == 1:
		return s.m.String(), nil
	case w[0] == "radios" && len(w) == 1:
		var b strings.Builder
		for _, r := range s.radios {
			fmt.Fprintf(&b, "%s %v %v\n", r.phy, r.addr, r.ifaces)
		}
		return b.String(), nil
	}
	return "", fmt.Errorf("unknown command %q (signal, signal-oneway, link, ramp, show, radios)", strings.Join(w, " "))
}

// ramp moves the signal between a and b linearly from from to to over d.
func (s *server) ramp(ctx context.Context, a, b hwsim.Addr, from, to int, d time.Duration) {
	const step = 250 * time.Millisecond
	start := time.Now()
	t := time.NewTicker(step)
	defer t.Stop()
	last := from - 1000
	for {
		el := time.Since(start)
		if el > d {
			el = d
		}
		v := from + int(float64(to-from)*float64(el)/float64(d))
		if v != last {
			s.m.SetSignal(a, b, v)
			s.m.SetSignal(b, a, v)
			last = v
		}
		if el == d {
			logf("ramp %v <-> %v done at %d dBm", a, b, v)
			return
		}
		select {
		case <-ctx.Done():
			logf("ramp %v <-> %v stopped at %d dBm", a, b, last)
			return
		case <-t.C:
		}
	}
}
