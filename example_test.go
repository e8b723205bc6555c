package netmon_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"
	"time"

	"github.com/seed-a56be422/netmon"
	"go.uber.org/zap"
)

// A sender that holds important messages while the network is down and
// logs failures with the network's context.
func ExampleMonitor() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	log := zap.NewExample()

	m, err := netmon.New(netmon.Options{Logger: log})
	if err != nil {
		log.Fatal("netmon", zap.Error(err))
	}
	go func() { _ = m.Run(ctx) }()

	// The message's ID (sender, epoch, number) lets the receiver drop
	// the duplicates that at-least-once delivery brings.
	seq := fmt.Sprintf("%s:%d:%d", "robot-7", time.Now().Unix(), 1)
	send := func(ctx context.Context) error {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", "127.0.0.1:7000")
		if err != nil {
			return err
		}
		defer c.Close()
		// ctx ends when the caller gives up, or when the Gate closes
		// during the attempt: the write or read below returns at once.
		stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
		defer stop()
		if _, err := fmt.Fprintf(c, "%s battery 41%%\n", seq); err != nil {
			return err
		}
		// Writing is not delivering: Do's at-least-once holds only when
		// send returns nil after the receiver's acknowledgement.
		ack, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return err
		}
		if ack != "ACK "+seq+"\n" {
			return fmt.Errorf("ack: got %q, want ACK %s", ack, seq)
		}
		return nil
	}
	// Do waits while the gate is closed, runs send, and retries connection
	// errors after the network returns, until ctx ends.
	if err := m.Gate().Do(ctx, send); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("telemetry lost", zap.Error(m.Annotate(err)), zap.Object("net", m.Snapshot()))
	}
}

// Report explains a failed send with what the network was doing. This
// Monitor has not run, so it knows nothing of the network yet: the
// explanation has the class and errno and no cause. A running Monitor
// says e.g. "ENETUNREACH during a DHCP renewal of wlan0 at -81 dBm".
func ExampleMonitor_Report() {
	m, err := netmon.New(netmon.Options{DHCP: "off"})
	if err != nil {
		fmt.Println(err)
		return
	}
	ex := m.Report(fmt.Errorf("send: %w", syscall.ECONNREFUSED))
	fmt.Println(ex.Class, ex.Cause, ex.Errno == syscall.ECONNREFUSED)
	fmt.Println(ex)
	// Output:
	// connection none true
	// ECONNREFUSED
}

// A robot on a LAN-only access point talks to its on-site server and, when
// the site has an uplink, to a cloud broker. Each target has its own Gate:
// a sender to the server is not held while the cloud is unreachable.
func ExampleMonitor_GateFor() {
	ctx := context.Background()
	m, err := netmon.New(netmon.Options{Targets: []string{"10.1.0.5:8883", "broker.example.com:8883"}})
	if err != nil {
		fmt.Println(err)
		return
	}
	go func() { _ = m.Run(ctx) }()
	site := m.GateFor("10.1.0.5:8883")
	if err := site.Wait(ctx); err == nil {
		fmt.Println("the on-site server is reachable:", m.Snapshot().Targets[0].Iface)
	}
}

// ParseTarget accepts an address or a host name, each with an optional
// port, and says what is wrong with anything else.
func ExampleParseTarget() {
	for _, s := range []string{"10.1.0.5", "[2001:db8::5]:8883", "broker.example.com:8883", "10.0.0.300"} {
		t, err := netmon.ParseTarget(s)
		if err != nil {
			fmt.Println(err)
			continue
		}
		fmt.Printf("addr=%v host=%q port=%d\n", t.Addr, t.Host, t.Port)
	}
	// Output:
	// addr=10.1.0.5 host="" port=0
	// addr=2001:db8::5 host="" port=8883
	// addr=invalid IP host="broker.example.com" port=8883
	// netmon: target "10.0.0.300": not a valid IP address, and a host name cannot end in a number; want an address, a host name, or either with :PORT (10.1.0.5, [2001:db8::5]:8883, broker.example.com:8883)
}
