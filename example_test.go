package netmon_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/signal"
	"syscall"

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

	send := func(ctx context.Context) error {
		c, err := net.Dial("tcp", "127.0.0.1:7000")
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.Write([]byte("battery 41%\n"))
		return err
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
