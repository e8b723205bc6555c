// Sender sends numbered messages to examples/ackserver and does not lose
// one while the network drops, changes address or loses its route, or the
// server resets its connections. It is the pattern a robot engineer copies:
// at-least-once delivery through netmon's Gate, with de-duplication by
// sequence number at the receiver.
//
// Usage:
//
//	sender --addr HOST:PORT --count N [--rate R] [--tls [--ca FILE] [--server-name NAME]]
//
// It exits 0 only when every message has been acknowledged, after printing
//
//	sent N, acked N, resent K, held T, dial-failures F
//
// where K counts copies written again after a reconnect, T is the total
// time spent held at the Gate, and F counts failed connection attempts.
// It exits 1 when it stops before that (an error no retry can fix, such as
// a certificate the CA does not sign, or SIGINT/SIGTERM), after printing
// the same line, and 2 on a usage error.
//
// # How it keeps every message
//
//   - Every message stays in memory until the server acknowledges it
//     ("ACK SEQ"). A connection carries at most --window unacknowledged
//     messages.
//   - Connections are made through [gate.Gate.Do]: while the netmon
//     Monitor says the network is down the dial is held (no connection
//     attempts, no failures), and a failed dial is classified by
//     [classify]: retryable classes (connection, network, DNS, timeout,
//     TLS) are retried with backoff, others (a bad certificate) end the run.
//   - A connection ends when it fails (the error is reported to the Monitor
//     and classified the same way), when the Gate closes (the Monitor saw
//     the link, address or route go), when the Monitor signals a rebind
//     (the local address went away, so writes would vanish into a stall),
//     or when no acknowledgement arrives for --ack-timeout while messages
//     are outstanding. Every unacknowledged message is then written again,
//     oldest first, on the next connection.
//   - After an outage the sender redials rather than waiting for the old
//     connection's retransmission timer, which may be seconds out; a fresh
//     connection costs one round trip and the receiver drops duplicates.
//
// With --monitor=false the Gate is a plain one that never closes, for a
// server on loopback, where no link can fail.
//
// [gate.Gate.Do]: https://pkg.go.dev/github.com/seed-a56be422/netmon/gate#Gate.Do
// [classify]: https://pkg.go.dev/github.com/seed-a56be422/netmon/classify
package main
