package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Exit codes; see the package documentation.
const (
	exitOK         = 0
	exitFail       = 1 // down, timeout, or a failure while running
	exitUsage      = 2
	exitUnreadable = 3 // status: the network's state could not be read
)

func main() {
	// The first SIGINT or SIGTERM ends the context: watch then prints its
	// summary and returns, so the deferred log flushes run before the
	// exit. A second one exits at once with 128 + the signal's number
	// (130, 143), so that a shutdown that hangs (a stdout nobody reads)
	// can still be interrupted.
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		fmt.Fprintf(os.Stderr, "netmon: %v: stopping (a second one exits at once)\n", s)
		cancel()
		s = <-sigs
		fmt.Fprintf(os.Stderr, "netmon: second %v: exiting at once\n", s)
		os.Exit(128 + int(s.(syscall.Signal)))
	}()
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	cancel()
	os.Exit(code)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) int
}

func commands() []command {
	return []command{
		{"watch", "log the baseline, then every event, state change and flap", runWatch},
		{"status", "print one snapshot; exit 0 if traffic can flow, 1 if down", runStatus},
		{"wait-online", "block until traffic can flow; exit 0, or 1 on timeout", runWaitOnline},
		{"version", "print the build's version", runVersion},
	}
}

// run is the whole program without the process around it, so tests can
// call it. It returns the exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		usage(stdout)
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "netmon: unknown command %q\n", args[0])
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: netmon COMMAND [flags]")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "netmon watches the network links of this machine and reports its connectivity state.")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Commands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Run 'netmon COMMAND -h' for the flags of a command.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 down or timeout or failure, 2 usage error.")
}

// parse parses args with fs and maps the outcome to an exit code: -1 to
// carry on, exitOK after -h, exitUsage on a bad flag. The flag package has
// already printed the error and the usage.
func parse(fs *flag.FlagSet, args []string) int {
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return exitOK
	case err != nil:
		return exitUsage
	case fs.NArg() > 0:
		fmt.Fprintf(fs.Output(), "netmon %s: unexpected argument %q\n", fs.Name(), fs.Arg(0))
		fs.Usage()
		return exitUsage
	}
	return -1
}

// usageError is bad input found after the flags parsed (an interface that
// does not exist, an address that cannot be bound): it prints one line and
// exits 2, without the flag list that would bury the message.
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

// fail prints err as one line and returns its exit code.
func fail(stderr io.Writer, cmd string, err error) int {
	fmt.Fprintf(stderr, "netmon %s: %v\n", cmd, err)
	if errors.As(err, new(usageError)) {
		return exitUsage
	}
	return exitFail
}
