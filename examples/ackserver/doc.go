// Ackserver is the receiving end of examples/sender: it acknowledges every
// message and de-duplicates them per sender and run, which is what
// at-least-once delivery needs from a receiver.
//
// Usage:
//
//	ackserver --listen 127.0.0.1:7000 [--tls-cert cert.pem --tls-key key.pem]
//	          [--window 4096] [--forget-after 10m] [--read-timeout 2m] ...
//
// # Protocol (for a sender in any language)
//
// One message per line over TCP (or TLS), UTF-8 or bytes, "\n" ends a line
// ("\r\n" is accepted):
//
//	sender -> server:  ID:EPOCH:N PAYLOAD\n
//	server -> sender:  ACK ID:EPOCH:N\n     kept: stop resending this message
//	                   ERR TEXT\n           the line is not a message (TEXT says why)
//
// The token ID:EPOCH:N (SEQ) names one message:
//
//   - ID: the sender, 1 to 64 bytes of A-Z a-z 0-9 . _ - (examples/sender:
//     --id, default the host name).
//   - EPOCH: one run of the sender, chosen when it starts and kept until
//     it stops: decimal, 1 to 2^64-1. Pick a random 64-bit number (not the
//     clock: a robot without a real-time clock can boot twice at the same
//     time). A sender that starts again takes a new EPOCH and numbers from 1.
//   - N: the message's number in the run, decimal from 1, every number used
//     (no gaps), each message keeping its number on every resend.
//
// EPOCH and N are written without sign or leading zero; PAYLOAD has no
// newline and may be empty (then the space may go too: "ID:EPOCH:N\n").
// For example, in Python:
//
//	epoch = secrets.randbits(64) or 1
//	sock.sendall(f"{robot_id}:{epoch}:{n} {payload}\n".encode())
//	# ... read lines until "ACK {robot_id}:{epoch}:{n}"
//
// The server answers every message it keeps with ACK, also a copy it has
// seen before: a sender resends a message when it cannot know whether the
// first copy arrived, and only the ACK stops it. ACKs come in the order of
// the messages on a connection, and a sender may write many messages before
// reading their ACKs. A sender has delivered a message only when it has
// read its ACK; a write that succeeded proves nothing. A line that is not a
// message (a bare number such as "17 hello", the protocol before tokens)
// gets "ERR ..." saying what a valid SEQ looks like; the connection stays
// open.
//
// # De-duplication in bounded memory
//
// Per (ID, EPOCH) the server keeps a mark below which every number was
// received, a window of --window bits above it for messages out of order,
// and up to --max-holes numbers below the mark that never arrived. A
// message too far ahead of the mark (one that would need more holes) is
// neither counted nor acknowledged: the sender resends it later, when the
// messages before it have arrived. It is never acknowledged and dropped.
// An epoch idle for --forget-after is forgotten (so is the least recently
// used one past --max-epochs). If its sender comes back, the server starts
// the epoch again from the first message it sees, and what arrived before
// the forget is not remembered: a late copy of it is counted again, never
// dropped. With that first N at most --max-holes+1 the mark starts at 0
// and the numbers below N become holes; with a larger N the mark starts at
// N-1 and a message below it is counted and acknowledged as "unverified"
// (logged at exit). Choose --forget-after longer than any sender keeps
// resending a message; the same holds after a restart of the server, which
// remembers nothing.
//
// # Deadlines
//
// A connection whose TLS handshake takes longer than --handshake-timeout,
// that sends no line for --read-timeout, or whose peer does not take an
// acknowledgement for --write-timeout is closed: a peer that vanished
// without FIN or RST (half-open) does not keep a goroutine and its buffers.
// When Accept fails for want of a resource (EMFILE: out of descriptors)
// the server waits 5 ms, doubling to 1 s, before it tries again, as
// net/http does, instead of spinning.
//
// # Signals
//
//   - SIGTERM or SIGINT: stop, then print "received N unique, D duplicates"
//     on standard output and exit 0. N counts the messages kept over every
//     sender and epoch; D the copies of messages already kept.
//   - SIGUSR1: reset every open connection (close it with SO_LINGER 0, so
//     the peer gets a TCP RST), as a crashed or restarted server would.
//     The listener stays open. Tests use it as one kind of outage.
//
// Logs (connections, resets, malformed lines) go to standard error.
package main
