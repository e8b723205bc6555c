// Sender sends numbered messages to examples/ackserver and does not lose
// one while the network drops, changes address or loses its route, or the
// server resets its connections. It is the pattern a robot engineer copies:
// at-least-once delivery through netmon's Gate, with de-duplication per
// sender and run at the receiver.
//
// Usage:
//
//	sender --addr HOST:PORT --count N [--id ID] [--rate R] [--outbox DIR] [--tls [--ca FILE] [--server-name NAME]]
//
// Every message carries the token ID:EPOCH:N (see examples/ackserver for
// the protocol): ID is --id (default the host name, with bytes outside
// A-Z a-z 0-9 . _ - made '-'), EPOCH a random 64-bit number chosen at
// start, so that a restarted sender numbering from 1 again is not taken
// for duplicates of its last run, and N counts from 1. It prints first
//
//	sending ID:EPOCH:1 to ID:EPOCH:N
//
// and exits 0 only when every message has been acknowledged, after printing
//
//	sent N, acked N, resent K, held T, dial-failures F
//
// where K counts copies written again after a reconnect, T is the total
// time spent held at the Gate (in Do but neither dialling nor backing off
// between attempts, measured per call), and F counts failed connection
// attempts.
// It exits 1 when it stops before that (an error no retry can fix, such as
// a certificate the CA does not sign, or SIGINT/SIGTERM), after printing
// the same line, and 2 on a usage error.
//
// # How it keeps every message
//
// At-least-once holds only if a message counts as sent when the receiver
// has acknowledged it, never when a write returned: a write that
// succeeded put the bytes in the kernel's buffer, which dies with the
// connection. If you send through [gate.Sender.Do] one message per call,
// your send function must return nil only after it read the receiver's
// acknowledgement of that message; this sender dials through Do and keeps
// the acknowledgement bookkeeping itself:
//
//   - Every message stays in memory until the server acknowledges it
//     ("ACK ID:EPOCH:N"). A connection carries at most --window
//     unacknowledged messages; keep it at most the server's --window.
//   - Connections are made through [gate.Sender.Do]: while the netmon
//     Monitor says the network is down the dial is held (no connection
//     attempts, no failures), and a failed dial is classified by
//     [classify]: retryable classes (connection, network, DNS, timeout,
//     TLS) are retried with backoff, others (a bad certificate) end the run.
//   - A connection is kept through an outage: while the Gate is closed
//     nothing more is written on it and the ack timeout does not run, and
//     a short carrier loss that leaves the local address and the route in
//     place costs no reconnection (for TLS, no handshake). It ends when it
//     fails (the error is reported to the Monitor and classified the same
//     way), when the Monitor signals a rebind (the local address went
//     away or the uplink changed, so writes would vanish into a stall),
//     when the path returns (the Gate opens) while messages on it are
//     still unacknowledged, or when no acknowledgement arrives for
//     --ack-timeout while messages are outstanding and the Gate is open.
//     Every unacknowledged message is then written again, oldest first,
//     on the next connection.
//   - The rebind channel ([netmon.Monitor.RebindC]) is taken inside the
//     function given to Do, right before the dial: a rebind while the dial
//     was held must not end the connection made after it.
//   - A failed read of acknowledgements keeps its network identity (a
//     *net.OpError, an EOF put inside one), so that classify calls it a
//     connection error and the messages are resent; an "ERR" answer (the
//     server cannot parse what we send) ends the run.
//   - When the path returns with acknowledgements outstanding, the sender
//     redials at once rather than waiting for the old connection's
//     retransmission timer, backed off during the outage and possibly
//     seconds out; a fresh connection costs one round trip and the
//     receiver drops duplicates. With nothing outstanding the old
//     connection simply goes on.
//
// # Surviving a crash: --outbox DIR
//
// Without --outbox every unacknowledged message lives in memory and dies
// with the process. With --outbox DIR each message is first appended to a
// durable [outbox] in DIR (fsynced: "accepted"), and only then sent; it is
// removed when the server acknowledges it ("delivered"). EPOCH is then the
// outbox's, kept in DIR, not a new one per run. Killed (SIGKILL, a
// watchdog, a battery swap) and started again with the same flags, the
// sender prints
//
//	outbox DIR: P pending, next K
//
// sends the P unacknowledged messages again first, under their original
// ID:EPOCH:N (the server drops the copies it already has), appends K to N,
// and exits 0 once all of 1..N are acknowledged. The counts of the summary
// line are this run's. Here messages are made at --rate (whether or not
// the network is up: the outbox holds them) and [outbox.Outbox.Drain]
// sends them through the Gate as fast as acknowledgements allow, at most
// --window unacknowledged. Throughput is bounded by the disk's fsync
// (an Append with fsync took 240-340 µs on the test VM: about 3,000 a
// second).
//
// A store found unreadable is moved aside and a fresh one, with a new
// EPOCH, started (see the outbox package doc): at start the run then
// numbers from 1 again; during a run it stops with status 1, naming the
// file moved aside, whose messages [outbox.Salvage] reads.
//
// With --monitor=false the Gate is a plain one that never closes, for a
// server on loopback, where no link can fail.
//
// [outbox]: https://pkg.go.dev/github.com/seed-a56be422/netmon/outbox
// [outbox.Outbox.Drain]: https://pkg.go.dev/github.com/seed-a56be422/netmon/outbox#Outbox.Drain
// [outbox.Salvage]: https://pkg.go.dev/github.com/seed-a56be422/netmon/outbox#Salvage
// [gate.Sender.Do]: https://pkg.go.dev/github.com/seed-a56be422/netmon/gate#Sender.Do
// [classify]: https://pkg.go.dev/github.com/seed-a56be422/netmon/classify
// [netmon.Monitor.RebindC]: https://pkg.go.dev/github.com/seed-a56be422/netmon#Monitor.RebindC
package main
