// Ackserver is the receiving end of examples/sender: it acknowledges every
// numbered message and de-duplicates them by sequence number, which is
// what at-least-once delivery needs from a receiver.
//
// Usage:
//
//	ackserver --listen 127.0.0.1:7000 [--tls-cert cert.pem --tls-key key.pem]
//
// The protocol is one message per line, "SEQ PAYLOAD\n", where SEQ is a
// decimal number from 1 and PAYLOAD has no newline. For every well-formed
// line the server replies "ACK SEQ\n" on the same connection, also for a
// sequence number it has seen before: the sender resends a message when it
// cannot know whether the first copy arrived, and only the ACK stops it.
//
// Signals:
//
//   - SIGTERM or SIGINT: stop, then print "received N unique, D duplicates"
//     on standard output and exit 0.
//   - SIGUSR1: reset every open connection (close it with SO_LINGER 0, so
//     the peer gets a TCP RST), as a crashed or restarted server would.
//     The listener stays open. Tests use it as one kind of outage.
//
// Logs (connections, resets, malformed lines) go to standard error.
package main
