// Command netmon watches this machine's network links and reports its
// connectivity state: a journal of link flaps with their causes for the
// fleet operator, and Prometheus metrics for the fleet's dashboards.
//
// Usage:
//
//	netmon watch [flags]        log the baseline, then every event, state change and flap
//	netmon status [flags]       print one snapshot; exit 0 if traffic can flow, 1 if down
//	netmon wait-online [flags]  block until traffic can flow; exit 0, or 1 on timeout
//	netmon version              print the build's version
//
// `netmon CMD -h` lists the flags of a command.
//
// # Output
//
// `netmon watch` writes human-readable lines by default. With
// --log-format json it writes the JSON-lines contract of the design
// document: one object per line on standard output, each with `ts`,
// `level`, `msg` and `event`; baseline and state lines add `state`,
// `reason`, `iface` and the snapshot fields that explain the state (the
// uplink's lease phase and time left, its SSID and signal). Every duration
// is written twice, as a string ("1.25s") and in seconds under the key with
// "_s" appended (1.25). Console lines escape every character of a message
// that is not printable, so no process name or SSID can forge a line. The baseline,
// like the snapshot `netmon status` prints, waits for every watcher's own
// baseline, at most 2 s for Wi-Fi and the lease files. The
// Monitor's own diagnostics go to standard error, so standard output holds
// event lines only. On SIGINT or SIGTERM, watch logs a summary line (event
// `summary`: outages, total down time, outages by cause) and exits 0.
//
// # Local API
//
// `netmon watch --socket PATH` also serves HTTP/1.1 with JSON on a Unix
// socket, for senders in any language (examples/python/netmon_client.py is
// a client). Access is the socket file's: owner root (or netmon's user),
// group --socket-group, mode --socket-mode (0660); no TCP listener.
//
//	GET  /v1/state                        the snapshot, as `status --json` prints it
//	GET  /v1/wait?timeout=30s[&target=A]  200 once traffic can flow, 504 at the timeout:
//	                                      {"online", "trial", "state", "reason", "target", "waited_seconds", "snapshot"};
//	                                      "trial": true when netmon let the waiter through while the state
//	                                      stays down (send-errors: every 500 ms one held sender tests the
//	                                      path): send, then POST /v1/success (which ends the outage at
//	                                      once) or /v1/report
//	GET  /v1/events                       the JSON lines of `watch --log-format json`, from a baseline;
//	                                      a client 1024 lines behind is cut off with a "dropped" line
//	                                      (cut_off true, count)
//	POST /v1/report                       {"errno": 101} or {"class": "tls"} or {"error": "text"}, optional
//	                                      "not_found", "dst", "pid", "comm": the explanation, as
//	                                      Monitor.Report gives it; logged as a sockerr line (source report)
//	GET  /metrics                         the metrics, when --metrics-addr is not given
//
// Errors are {"error": "...", "valid": "..."} with a 4xx or 5xx status.
// Headers must arrive within 5 s, bodies are at most 64 KiB, every write
// has a 10 s deadline, and at most 8192 connections are served at once,
// 2048 from one client process.
//
// # Exit codes
//
//	0    success: watch ended by a signal, status up or degraded, wait-online online
//	1    down (status), timeout (wait-online), a failure while running (a
//	     --metrics-addr or --socket that cannot be bound or created, another
//	     netmon serving the socket), or status interrupted
//	2    usage error: unknown flag or command, malformed value, unknown interface
//	     (watch and status; wait-online waits for an --iface to appear, until its
//	     --timeout), a malformed --metrics-addr, a --sockerr-cgroup that is not a
//	     cgroup v2 directory, a --socket-group that does not exist
//	3    status: the network's state could not be read
//	130  a second SIGINT while stopping (143 for SIGTERM): exit at once
//
// # Privileges
//
// Watching links, addresses, routes and neighbours needs no privileges.
// Reading Wi-Fi station data through nl80211 needs none either. Socket
// errors of other processes are traced with eBPF, which needs CAP_BPF and
// CAP_PERFMON (or root); without them --sockerr=auto carries on without
// the tracer and says so in a notice line, and --sockerr=on fails. At a
// return of the link, the gateways are probed (an ARP request, an IPv6
// Neighbor Solicitation) so that the first packets need not wait for the
// kernel's next solicitation, up to a second: that needs CAP_NET_RAW;
// without it netmon says so in a notice line and carries on.
package main
