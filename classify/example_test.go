package classify_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

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

// ClassifyContext tells the caller's own deadline from a network timeout:
// the same error is Canceled when the context that bounded the operation
// has ended, and Timeout when it has not.
func ExampleClassifyContext() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancel()
	<-ctx.Done() // the caller's deadline passed during the send
	err := &net.OpError{Op: "write", Net: "tcp", Err: os.ErrDeadlineExceeded}
	fmt.Println(classify.ClassifyContext(ctx, err))
	fmt.Println(classify.ClassifyContext(context.Background(), err))
	// Output:
	// canceled
	// timeout
}
