package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/seed-a56be422/netmon"
	"github.com/seed-a56be422/netmon/classify"
	"github.com/seed-a56be422/netmon/gate"
	"golang.org/x/sys/unix"
)

// The local API of `netmon watch --socket PATH`: HTTP/1.1 with JSON on a
// Unix socket, for senders in any language (examples/python is its
// client). Who may connect is decided by the socket file's owner, group
// and mode; there is no TCP listener.
//
//	GET  /v1/state                       the Snapshot, as `status --json` prints it
//	GET  /v1/wait?timeout=30s&target=A   200 as soon as traffic can flow, 504 at the timeout, 503 when netmon stops
//	                                     (or 200 with "trial": true while still down: a trial, see doc.go)
//	GET  /v1/events                      the JSON-line events of `watch --log-format json`
//	POST /v1/report                      a failed send, explained as Monitor.Report does
//	POST /v1/success                     a send that worked, {"dst": ADDR} (Monitor.ReportSuccessTo)
//	GET  /metrics                        Prometheus metrics, unless --metrics-addr serves them
//
// Nothing a client does can slow the Monitor: a waiter is a goroutine
// parked on the Gate, an event stream has its own bounded buffer and is
// cut off when it falls behind, and every read and write has a deadline.

const (
	// apiMaxBody bounds a request body (POST /v1/report).
	apiMaxBody = 64 << 10
	// apiMaxHeader bounds a request's header lines.
	apiMaxHeader = 16 << 10
	// apiHeaderTimeout bounds the time a client takes to send its
	// request's header (slowloris), and apiBodyTimeout its body.
	apiHeaderTimeout = 5 * time.Second
	apiBodyTimeout   = 10 * time.Second
	// apiWriteTimeout bounds each write of an answer; an event stream
	// whose reader stops reading ends after it.
	apiWriteTimeout = 10 * time.Second
	// apiIdleTimeout closes a kept-alive connection nobody uses.
	apiIdleTimeout = 2 * time.Minute
	// apiMaxConns bounds the connections served at once, apiMaxPerPeer
	// those of one client process; beyond them a new connection is closed
	// at once.
	apiMaxConns   = 8192
	apiMaxPerPeer = 2048
	// apiDefaultWait and apiMaxWait are /v1/wait's default and longest
	// timeout.
	apiDefaultWait = 30 * time.Second
	apiMaxWait     = time.Hour
	// apiMaxText bounds the error text of a report.
	apiMaxText = 4096
)

// api serves the local API for one Monitor.
type api struct {
	m       *netmon.Monitor
	targets []string // the --target values, which /v1/wait's target must be one of
	hub     *eventHub
	metrics http.Handler // nil when --metrics-addr serves the metrics
}

// apiEndpoints is what an unknown path is told is valid.
const apiEndpoints = "GET /v1/state, GET /v1/wait?timeout=30s[&target=ADDR], GET /v1/events, POST /v1/report, POST /v1/success"

// handler returns the API's routes.
func (a *api) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/v1/state", a.only(http.MethodGet, a.state))
	mux.HandleFunc("/v1/wait", a.only(http.MethodGet, a.wait))
	mux.HandleFunc("/v1/events", a.only(http.MethodGet, a.events))
	mux.HandleFunc("/v1/report", a.only(http.MethodPost, a.report))
	mux.HandleFunc("/v1/success", a.only(http.MethodPost, a.success))
	valid := apiEndpoints
	if a.metrics != nil {
		mux.Handle("/metrics", a.only(http.MethodGet, a.metrics.ServeHTTP))
		valid += ", GET /metrics"
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apiError(w, http.StatusNotFound, fmt.Sprintf("no endpoint %s", r.URL.Path), valid)
	})
	return mux
}

// only answers 405 to any method but want (and HEAD for GET).
func (a *api) only(want string, h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != want && !(want == http.MethodGet && r.Method == http.MethodHead) {
			w.Header().Set("Allow", want)
			apiError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed on %s", r.Method, r.URL.Path), want)
			return
		}
		h(w, r)
	}
}

// apiError answers with status and {"error": msg, "valid": valid}.
func apiError(w http.ResponseWriter, status int, msg, valid string) {
	writeJSON(w, status, struct {
		Error string `json:"error"`
		Valid string `json:"valid,omitempty"`
	}{msg, valid})
}

// writeJSON answers with status and v as JSON, within apiWriteTimeout.
func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // "&" and "<" as they are: this is not HTML
	if err := enc.Encode(v); err != nil {
		status = http.StatusInternalServerError
		buf.Reset()
		buf.WriteString(`{"error":"cannot encode the answer"}` + "\n")
	}
	_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(apiWriteTimeout))
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (a *api) state(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, a.m.Snapshot())
}

// waitAnswer is /v1/wait's body.
type waitAnswer struct {
	Online bool `json:"online"`
	// Trial is true when the wait ended while the Gate stayed closed: the
	// Monitor let this waiter through to test the path (gate.Gate.Trial,
	// during a send-errors verdict). The state still says down.
	Trial     bool            `json:"trial"`
	State     netmon.State    `json:"state"`
	Reason    string          `json:"reason"`
	Target    string          `json:"target,omitempty"`
	WaitedSec float64         `json:"waited_seconds"`
	Snapshot  netmon.Snapshot `json:"snapshot"`
}

func (a *api) wait(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if bad := unknownParam(q, "timeout", "target"); bad != "" {
		apiError(w, http.StatusBadRequest, fmt.Sprintf("unknown parameter %q", bad), "timeout, target")
		return
	}
	timeout, err := parseWaitTimeout(q.Get("timeout"))
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error(),
			"a duration such as 30s or 1.5s, or seconds such as 30; from 0 to 1h; default 30s")
		return
	}
	target := q.Get("target")
	g := a.m.Gate()
	if q.Has("target") {
		if g = a.m.GateFor(target); g == nil {
			valid := "one of the --target values: " + strings.Join(a.targets, ", ")
			if len(a.targets) == 0 {
				valid = "no target: this netmon runs without --target"
			}
			apiError(w, http.StatusBadRequest, fmt.Sprintf("target %q is not one of netmon's targets", target), valid)
			return
		}
	}
	start := time.Now()
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	err = g.Wait(ctx)
	cancel()
	if err != nil && (errors.Is(err, gate.ErrShutdown) || r.Context().Err() != nil) {
		// netmon is stopping (the Monitor shut its Gate down, or the
		// server ended the request: either may come first), or the
		// client went away.
		apiError(w, http.StatusServiceUnavailable, "netmon is stopping", "")
		return
	}
	ans := waitAnswer{Online: err == nil, Target: target, WaitedSec: time.Since(start).Seconds(), Snapshot: a.m.Snapshot()}
	// A nil wait on a closed Gate is a trial (or, as good as one, a
	// release by an Open that a Close followed at once): the client sends
	// while the state says down, and its POST /v1/success (or /v1/report)
	// is what reopens the Gate (or keeps it closed).
	ans.Trial = ans.Online && !g.State().Open
	ans.State, ans.Reason = ans.Snapshot.State, string(ans.Snapshot.Reason)
	status := http.StatusOK
	if !ans.Online {
		status = http.StatusGatewayTimeout
		if gs := g.State(); !gs.Open && gs.Reason.Code != "" {
			ans.Reason = gs.Reason.Code // why this Gate holds, which for a target may not be the overall reason
		}
	}
	writeJSON(w, status, ans)
}

// unknownParam returns the first query parameter not in valid, "" if none.
func unknownParam(q map[string][]string, valid ...string) string {
	for k := range q {
		if !slices.Contains(valid, k) {
			return k
		}
	}
	return ""
}

// parseWaitTimeout reads /v1/wait's timeout: a Go duration ("30s",
// "1m30s") or a number of seconds ("30", "0.5"); "" is the default.
func parseWaitTimeout(s string) (time.Duration, error) {
	if s == "" {
		return apiDefaultWait, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f != f { // f != f: NaN
			return 0, fmt.Errorf("timeout %q is not a duration", s)
		}
		if f < 0 || f > apiMaxWait.Seconds() {
			return 0, fmt.Errorf("timeout %q is out of range", s)
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d < 0 || d > apiMaxWait {
		return 0, fmt.Errorf("timeout %q is out of range", s)
	}
	return d, nil
}

// reportRequest is POST /v1/report's body.
type reportRequest struct {
	Errno    *int    `json:"errno"`
	Class    *string `json:"class"`
	NotFound bool    `json:"not_found"`
	Error    *string `json:"error"`
	Dst      string  `json:"dst"`
	PID      int     `json:"pid"`
	Comm     *string `json:"comm"`
}

// reportFields names reportRequest's fields for an error message.
const reportFields = `a JSON object with at least one of "errno" (a Linux errno, 1 to 4095), "class" (` +
	`none, other, canceled, connection, network, dns, timeout, tls, certificate, policy, rejected) or "error" (the error's text, at most 4096 bytes); ` +
	`optional "not_found" (bool, a DNS failure that says the name does not exist), "dst" (an IP address, IP:port or [IPv6]:port), ` +
	`"pid" (a process ID) and "comm" (the process name, at most 15 printable bytes)`

// decodeBody reads a POST's body, one JSON object, into v, under the body
// deadline and size bound; on an error it answers (naming fields, what a
// body may hold) and reports false.
func decodeBody(w http.ResponseWriter, r *http.Request, v any, fields string) bool {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(apiBodyTimeout))
	// The body is read as JSON whatever its Content-Type says: curl -d
	// sends JSON labelled as a form.
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, apiMaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			apiError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", apiMaxBody), fields)
			return false
		}
		apiError(w, http.StatusBadRequest, "body: "+err.Error(), fields)
		return false
	}
	if dec.More() {
		apiError(w, http.StatusBadRequest, "body: more than one JSON value", fields)
		return false
	}
	return true
}

func (a *api) report(w http.ResponseWriter, r *http.Request) {
	var req reportRequest
	if !decodeBody(w, r, &req, reportFields) {
		return
	}
	f, err := req.failure()
	if err != nil {
		apiError(w, http.StatusBadRequest, err.Error(), reportFields)
		return
	}
	if f.PID == 0 {
		f.PID = peerPID(r.Context())
	}
	if f.PID != 0 && f.Comm == "" {
		f.Comm = procComm(f.PID)
	}
	writeJSON(w, http.StatusOK, a.m.ReportFailure(f))
}

// successRequest is POST /v1/success's body.
type successRequest struct {
	Dst string `json:"dst"`
}

// successFields names successRequest's fields for an error message.
const successFields = `a JSON object with an optional "dst" (where the send went: an IP address, IP:port or [IPv6]:port; {} when unknown)`

// successAnswer is POST /v1/success's answer: the state after the success
// was counted.
type successAnswer struct {
	Dst    string        `json:"dst,omitempty"`
	State  netmon.State  `json:"state"`
	Reason netmon.Reason `json:"reason"`
}

// success counts a send that worked, towards its destination: failures
// towards other destinations while it answers are those peers' own, and a
// send-errors outage ends (Monitor.ReportSuccessTo).
func (a *api) success(w http.ResponseWriter, r *http.Request) {
	var req successRequest
	if !decodeBody(w, r, &req, successFields) {
		return
	}
	var dst netip.Addr
	if req.Dst != "" {
		d, err := parseDst(req.Dst)
		if err != nil {
			apiError(w, http.StatusBadRequest, err.Error(), successFields)
			return
		}
		dst = d
	}
	a.m.ReportSuccessTo(dst)
	st := a.m.Status()
	ans := successAnswer{State: st.State, Reason: st.Reason}
	if dst.IsValid() {
		ans.Dst = dst.String()
	}
	writeJSON(w, http.StatusOK, ans)
}

// failure checks the request and turns it into a netmon.Failure: the class
// from the errno when there is one, else from "class", else from the
// error's text (classify.ParseText).
func (q reportRequest) failure() (netmon.Failure, error) {
	var f netmon.Failure
	if q.Errno == nil && q.Class == nil && q.Error == nil {
		return f, errors.New(`no "errno", "class" or "error"`)
	}
	if q.Error != nil {
		if len(*q.Error) > apiMaxText {
			return f, fmt.Errorf(`"error" has %d bytes, more than %d`, len(*q.Error), apiMaxText)
		}
		f.Text = strings.ToValidUTF8(*q.Error, "\uFFFD")
	}
	switch {
	case q.Errno != nil:
		if *q.Errno < 1 || *q.Errno > 4095 {
			return f, fmt.Errorf(`"errno" %d is not an errno`, *q.Errno)
		}
		f.Errno = unix.Errno(*q.Errno)
		f.Class = classify.Classify(f.Errno)
	case q.Class != nil:
		c, ok := classify.ParseClass(*q.Class)
		if !ok {
			return f, fmt.Errorf(`"class" %q is not a class`, *q.Class)
		}
		f.Class = c
	default:
		t := classify.ParseText(f.Text)
		f.Class, f.Errno, f.NotFound = t.Class, t.Errno, t.NotFound
	}
	if q.NotFound {
		f.NotFound = true
	}
	if q.Dst != "" {
		d, err := parseDst(q.Dst)
		if err != nil {
			return f, err
		}
		f.Dst = d
	}
	if q.PID < 0 {
		return f, fmt.Errorf(`"pid" %d is negative`, q.PID)
	}
	f.PID = q.PID
	if q.Comm != nil {
		if err := checkComm(*q.Comm); err != nil {
			return f, err
		}
		f.Comm = *q.Comm
	}
	return f, nil
}

// parseDst reads a destination: an address, or an address and port.
func parseDst(s string) (netip.Addr, error) {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || a.Zone() != "" {
		return netip.Addr{}, fmt.Errorf(`"dst" %q is not an IP address, IP:port or [IPv6]:port`, s)
	}
	return a.Unmap(), nil
}

// checkComm accepts a process name as the kernel keeps one: at most 15
// bytes (TASK_COMM_LEN 16 with its NUL), printable, so that no log line
// can be forged through it.
func checkComm(s string) error {
	if len(s) > 15 || !utf8.ValidString(s) {
		return fmt.Errorf(`"comm" %q is not a process name (at most 15 bytes of UTF-8)`, s)
	}
	for _, c := range s {
		if !unicode.IsPrint(c) {
			return fmt.Errorf(`"comm" %q has a character that is not printable`, s)
		}
	}
	return nil
}

// procComm returns process pid's name (/proc/PID/comm), "" when it cannot
// be read (the process ended, or hidepid).
func procComm(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return ""
	}
	s := strings.TrimSuffix(string(b), "\n")
	if checkComm(s) != nil {
		return ""
	}
	return s
}

// connKey is the context key of the request's connection.
type connKey struct{}

// newAPIServer returns the API's HTTP server; base is the context every
// request's context derives from, cancelled when the API stops, so that
// waiters and event streams end.
func newAPIServer(h http.Handler, base context.Context) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: apiHeaderTimeout,
		MaxHeaderBytes:    apiMaxHeader,
		IdleTimeout:       apiIdleTimeout,
		// No ReadTimeout: it would also end long polls (net/http's
		// background read treats the deadline as the client leaving).
		// The report handler sets its own body deadline.
		BaseContext: func(net.Listener) context.Context { return base },
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if lc, ok := c.(*limitedConn); ok {
				c = lc.Conn
			}
			return context.WithValue(ctx, connKey{}, c)
		},
	}
}

// serveAPI serves a on ln until ctx ends, then ends every request (waits
// answer 503, event streams end) and returns once the server has stopped.
func serveAPI(ctx context.Context, ln net.Listener, a *api) error {
	base, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv := newAPIServer(a.handler(), base)
	return serveHTTP(ctx, srv, limitListener(ln, apiMaxConns, apiMaxPerPeer), cancel)
}
