//go:build linux

package delivery

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/seed-a56be422/netmon/internal/netnstest"
	"golang.org/x/sys/unix"
)

// mqttClient is the publisher and the subscriber of the MQTT sender
// (paho-mqtt, its defaults; see the file's doc).
//
//go:embed mqtt_client.py
var mqttClient []byte

// mqttPort is the broker's port in the server namespace.
const mqttPort = 1883

// python returns a python3 that imports paho.mqtt (Debian's
// python3-paho-mqtt is in /usr/bin's, which a python3 earlier in PATH,
// such as pyenv's, may not see), or skips t.
func python(t testing.TB) string {
	t.Helper()
	for _, p := range []string{"python3", "/usr/bin/python3"} {
		if exec.Command(p, "-c", "import paho.mqtt.client").Run() == nil {
			return p
		}
	}
	netnstest.Skip(t, "no python3 with paho.mqtt (apt-get install python3-paho-mqtt)")
	return ""
}

// runMQTT runs the MQTT sender on sc: mosquitto in the server namespace,
// the subscriber beside it (arrival there is arrival at the server), the
// publisher in the robot's namespace. It returns the creation time of
// each message, the start of each connection attempt, and the outages as
// applied; arrivals go to rc.
func runMQTT(t testing.TB, n *Net, sc Schedule, rc *receiver) (created, dials []time.Time, down []Interval) {
	t.Helper()
	netnstest.RequireCommand(t, "mosquitto", "mosquitto")
	py := python(t)
	dir := t.TempDir()
	script := filepath.Join(dir, "mqtt_client.py")
	conf := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(script, mqttClient, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte(fmt.Sprintf("listener %d\nallow_anonymous true\n", mqttPort)), 0o644); err != nil {
		t.Fatal(err)
	}
	startProc(t, n.Server, func(l string) { t.Log("mosquitto: " + l) }, "mosquitto", "-c", conf)

	ready := make(chan struct{})
	var once sync.Once
	startProc(t, n.Server, func(l string) {
		switch f := strings.Fields(l); {
		case f[0] == "READY":
			once.Do(func() { close(ready) })
		case f[0] == "A" && len(f) == 3:
			num, err1 := strconv.ParseUint(f[1], 10, 64)
			ns, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 == nil && err2 == nil {
				rc.record(num, time.Unix(0, ns))
			}
		}
	}, py, script, "sub", "127.0.0.1", strconv.Itoa(mqttPort))
	// The subscriber connects once (no retries): wait for the broker first.
	if err := waitListening(n.Server, mqttPort, 10*time.Second); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatal("the MQTT subscriber did not subscribe within 10 s")
	}

	return runProducer(t, n, sc, py, script, "pub", serverIP, strconv.Itoa(mqttPort),
		strconv.FormatFloat(sc.Length.Seconds(), 'f', 3, 64), strconv.FormatFloat(sc.Drain.Seconds(), 'f', 3, 64))
}

// runProducer runs a producer program in the robot's namespace while sc is
// applied. The program makes its messages itself and prints "C N NS" when
// it makes message N and "D NS" when it starts a connection attempt
// (wall-clock nanoseconds), then exits after its drain; arrivals are
// recorded by whoever serves it. runProducer returns the creation times,
// the attempts and the outages as applied.
func runProducer(t testing.TB, n *Net, sc Schedule, name string, args ...string) (created, dials []time.Time, down []Interval) {
	t.Helper()
	var mu sync.Mutex
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := time.Now()
	applied := make(chan []Interval, 1)
	go func() {
		d, err := n.Apply(ctx, start, sc)
		if err != nil {
			t.Error(err)
		}
		applied <- d
	}()
	pub := startProc(t, n.Robot, func(l string) {
		mu.Lock()
		defer mu.Unlock()
		f := strings.Fields(l)
		switch {
		case len(f) == 0:
		case f[0] == "C" && len(f) == 3:
			if ns, err := strconv.ParseInt(f[2], 10, 64); err == nil {
				created = append(created, time.Unix(0, ns))
			}
		case f[0] == "D" && len(f) == 2:
			if ns, err := strconv.ParseInt(f[1], 10, 64); err == nil {
				dials = append(dials, time.Unix(0, ns))
			}
		case f[0] != "END":
			t.Log(name + ": " + l)
		}
	}, name, args...)
	// The program stops by itself after its drain; one stuck on a dead
	// connection (paho's loop_stop waits for its network thread) is killed.
	go func() {
		select {
		case <-time.After(time.Until(start.Add(sc.Length + sc.Drain + 5*time.Second))):
			_ = unix.Kill(-pub.cmd.Process.Pid, unix.SIGKILL)
		case <-pub.scanned:
		}
	}()
	pub.wait()
	cancel()
	down = <-applied
	// The server side has what was acknowledged; give a subscriber, on
	// loopback, a moment for the last ones.
	time.Sleep(500 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	return created, dials, down
}

// waitListening waits until something accepts TCP on port in ns.
func waitListening(ns *netnstest.NS, port int, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		err := ns.Do(func() error {
			c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proc is a process started by startProc.
type proc struct {
	cmd     *exec.Cmd
	scanned chan struct{} // closed when its output has ended and been read
}

// startProc starts name in ns and hands each line of its output
// (standard output and error) to onLine, in one goroutine. It kills the
// process (and waits for it) when t ends. Unlike [netnstest.NS.Start] the
// caller sees the output and may wait for the process itself.
func startProc(t testing.TB, ns *netnstest.NS, onLine func(string), name string, args ...string) *proc {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: ns.Command(context.Background(), name, args...), scanned: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = w, w
	p.cmd.SysProcAttr = &unix.SysProcAttr{Setpgid: true, Pdeathsig: unix.SIGKILL}
	t.Logf("$ ip netns exec %s %s %s", ns.Name, name, strings.Join(args, " "))
	err = p.cmd.Start()
	w.Close() // the child has its copy: EOF comes when the child is gone
	if err != nil {
		r.Close()
		t.Fatalf("start %s in %s: %v", name, ns.Name, err)
	}
	go func() {
		defer close(p.scanned)
		defer r.Close()
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			onLine(sc.Text())
		}
	}()
	t.Cleanup(func() {
		_ = unix.Kill(-p.cmd.Process.Pid, unix.SIGKILL)
		p.wait()
	})
	return p
}

// wait waits until the process has ended and its output has been read.
// It may be called more than once.
func (p *proc) wait() {
	<-p.scanned
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Wait()
	}
}

// robotProducer runs robot_sender.py's Sender with a producer in front.
//
//go:embed robot_producer.py
var robotProducer []byte

// runPython runs the Python client's pattern on sc: `netmon watch
// --socket` (with sp's options) and robot_sender.py's Sender in the
// robot's namespace, against the receiver.
func runPython(t testing.TB, n *Net, sc Schedule, sp Spec, netmonBin string) (created, dials []time.Time, down []Interval) {
	t.Helper()
	py := netnstest.RequireCommand(t, "python3", "python3")
	_, self, _, _ := runtime.Caller(0)
	examples := filepath.Join(filepath.Dir(self), "..", "..", "examples", "python")
	dir := netnstest.OpenDir(t)
	script, socket := filepath.Join(dir, "robot_producer.py"), filepath.Join(dir, "netmon.sock")
	if err := os.WriteFile(script, robotProducer, 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, n.Robot, netmonBin, sp, socket)
	return runProducer(t, n, sc, py, script, examples, socket, serverIP, strconv.Itoa(serverPort),
		strconv.FormatFloat(sc.Length.Seconds(), 'f', 3, 64), strconv.FormatFloat(sc.Drain.Seconds(), 'f', 3, 64))
}
