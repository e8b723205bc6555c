package wifilab

import "strings"

// The host and the guest agent speak newline-delimited JSON over the VM's
// second serial port: one Request per line from the host, one Response per
// line from the agent, matched by ID. Requests run concurrently in the guest,
// so responses may come back in any order.

// Request is one command for the guest agent.
type Request struct {
	ID int `json:"id"`
	// Op is one of "run" (run Argv to completion), "start" (start Argv in
	// the background under Name, its output to /tmp/log/NAME.log), "stop"
	// (SIGTERM, then SIGKILL after TimeoutMS, the process group of Name),
	// "read" (the contents of Path) and "wait" (until the file Path has a
	// line matching Pattern, starting at byte Offset).
	Op        string   `json:"op"`
	Argv      []string `json:"argv,omitempty"`
	Env       []string `json:"env,omitempty"`
	Name      string   `json:"name,omitempty"`
	Path      string   `json:"path,omitempty"`
	Pattern   string   `json:"pattern,omitempty"`
	Offset    int64    `json:"offset,omitempty"`
	TimeoutMS int64    `json:"timeout_ms,omitempty"`
}

// Response is the agent's answer to the Request with the same ID.
type Response struct {
	ID     int    `json:"id"`
	Stdout string `json:"stdout,omitempty"`
	Stderr string `json:"stderr,omitempty"`
	// Exit is the exit status of a run or stopped process (-1 when it was
	// killed by a signal).
	Exit int `json:"exit"`
	// Line is the matching line of a wait; End is the offset just past it.
	Line string `json:"line,omitempty"`
	End  int64  `json:"end,omitempty"`
	// Start is the guest's clock (Unix nanoseconds) when a run began, to
	// set guest events against the command.
	Start int64 `json:"start,omitempty"`
	// Err says why the request failed (an unknown op, a timeout, a process
	// that could not start); empty on success.
	Err string `json:"err,omitempty"`
}

// Hello is the first line the agent writes once the guest is up.
const Hello = `{"hello":"netmon-wifilab"}`

// LastLines returns the last n lines of s, for the tail of a log or console
// in an error message.
func LastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
