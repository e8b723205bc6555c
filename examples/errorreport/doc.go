// Errorreport shows the third use of netmon: an error report that
// explains itself. It makes one send of a telemetry line to --addr through
// the Monitor's Gate and, when the send fails, logs it the way a robot's
// error reporter would: one zap line (JSON on standard error) with the
// annotated error, the Monitor's explanation of the failure and the
// snapshot's fields, e.g.
//
//	{"level":"error","msg":"telemetry send failed",
//	 "error":"send telemetry: dial tcp 10.9.0.1:7000: connect: connection refused [netmon: up vs 2.1s ago]",
//	 "explanation":{"class":"connection","errno":"ECONNREFUSED","cause":"peer",...},
//	 "net":{"state":"up","reason":"","iface":"vs","carrier":true,"flaps_5m":0,...}}
//
// It also prints the annotated error alone on standard output, the one
// line a crash report's summary would carry. errors.Is still reaches the
// original error through the annotation (the log line's "unreachable"
// field shows errors.Is(err, syscall.ENETUNREACH)).
//
// Usage:
//
//	errorreport [--addr HOST:PORT] [--hold 5s] [--timeout 3s] [--iface GLOB]
//
// While the network is down the send is held at the Gate for at most
// --hold; a hold that expires is reported the same way, with the reason
// the network was down. Exit status: 0 when the send succeeded, 1 when it
// failed (the report was written), 2 on a usage error.
package main
