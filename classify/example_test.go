package classify_test

import (
	"fmt"
	"net"
	"os"

	"github.com/seed-a56be422/netmon/classify"
	"golang.org/x/sys/unix"
)

func ExampleClassify() {
	// What net.Dial returns when the default route is gone.
	err := fmt.Errorf("send telemetry: %w",
		&net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", unix.ENETUNREACH)})

	c := classify.Classify(err)
	fmt.Println(c, c.Retryable(), c.LinkRelated())

	// A prohibit route: local policy, resending will not help.
	err = &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", unix.EACCES)}
	fmt.Println(classify.Classify(err), classify.IsConnectionError(err))
	// Output:
	// network true true
	// policy false
}

func ExampleIsConnectionError() {
	reset := &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", unix.ECONNRESET)}
	missing := &os.PathError{Op: "open", Path: "/etc/robot.yaml", Err: unix.ENOENT}
	fmt.Println(classify.IsConnectionError(reset), classify.IsConnectionError(missing))
	// Output: true false
}
