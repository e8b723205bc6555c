// Package wire is the line protocol between examples/sender and
// examples/ackserver (and any other sender, in any language):
//
//	sender -> server:  SEQ PAYLOAD\n      (or "SEQ\n": an empty payload)
//	server -> sender:  ACK SEQ\n          the message is kept: stop resending it
//	                   ERR TEXT\n         the line was not accepted (TEXT says why)
//
// SEQ is a token "ID:EPOCH:N":
//
//   - ID names the sender (examples/sender: --id, default the host name):
//     1 to 64 bytes of A-Z a-z 0-9 '.' '_' '-'.
//   - EPOCH names one run of that sender, so that a sender that restarts
//     and numbers from 1 again is not mistaken for duplicates of its last
//     run: a decimal number from 1 to 2^64-1, chosen at start (a random
//     64-bit number, since a robot without a real-time clock may start
//     twice at the same "time").
//   - N numbers the run's messages: decimal, from 1, every number used.
//
// EPOCH and N have no sign and no leading zero, so that one message has
// exactly one spelling and de-duplication by text and by value agree. A
// trailing "\r" before the "\n" is tolerated. A bare number ("17 hello",
// the protocol before tokens) is rejected with an error that says what a
// valid SEQ looks like.
package wire

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// MaxIDLen is the longest ID.
const MaxIDLen = 64

// Seq identifies one message: the sender, its run, and the message's
// number in that run.
type Seq struct {
	ID    string
	Epoch uint64
	N     uint64
}

// String returns the one spelling of s, "ID:EPOCH:N".
func (s Seq) String() string { return string(s.Append(nil)) }

// Append appends the one spelling of s to b.
func (s Seq) Append(b []byte) []byte {
	b = append(b, s.ID...)
	b = append(b, ':')
	b = strconv.AppendUint(b, s.Epoch, 10)
	b = append(b, ':')
	return strconv.AppendUint(b, s.N, 10)
}

// Valid reports whether s can be sent: a valid ID, EPOCH and N from 1.
func (s Seq) Valid() error {
	if err := ValidID(s.ID); err != nil {
		return err
	}
	if s.Epoch == 0 || s.N == 0 {
		return fmt.Errorf("wire: %s: EPOCH and N start at 1", s)
	}
	return nil
}

// AppendMessage appends the line "SEQ PAYLOAD\n" to b. The payload must
// not contain a newline.
func AppendMessage(b []byte, s Seq, payload []byte) []byte {
	b = s.Append(b)
	b = append(b, ' ')
	b = append(b, payload...)
	return append(b, '\n')
}

// AppendAck appends the line "ACK SEQ\n" to b.
func AppendAck(b []byte, s Seq) []byte {
	b = append(b, "ACK "...)
	return append(s.Append(b), '\n')
}

// AppendErr appends the line "ERR TEXT\n" to b; newlines in text become
// spaces.
func AppendErr(b []byte, text string) []byte {
	b = append(b, "ERR "...)
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' || c == '\r' {
			c = ' '
		}
		b = append(b, c)
	}
	return append(b, '\n')
}

// Syntax is the description of a valid SEQ that errors quote.
const Syntax = "want SEQ as ID:EPOCH:N, e.g. robot-1:1732990000123456789:17 " +
	"(ID 1-64 of A-Z a-z 0-9 . _ -; EPOCH and N decimal from 1, no leading zero)"

// ErrBareNumber is the error for a SEQ that is only a number, as before
// SEQ became a token; errors.Is finds it in ParseMessage's error.
var ErrBareNumber = errors.New("a bare number is not a SEQ any more")

// ParseMessage parses "SEQ PAYLOAD\n" (or "SEQ\n") and returns SEQ and
// the payload (aliasing line). The error says what is wrong and what
// would be valid.
func ParseMessage(line []byte) (Seq, []byte, error) {
	line = trimEOL(line)
	tok, payload := line, []byte(nil)
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		tok, payload = line[:i], line[i+1:]
	}
	s, err := ParseSeq(tok)
	if err != nil {
		return Seq{}, nil, err
	}
	return s, payload, nil
}

// ParseAck parses "ACK SEQ\n". A line "ERR TEXT" gives an *ErrLine.
func ParseAck(line []byte) (Seq, error) {
	line = trimEOL(line)
	if text, ok := bytes.CutPrefix(line, []byte("ERR ")); ok {
		return Seq{}, &ErrLine{Text: string(text)}
	}
	tok, ok := bytes.CutPrefix(line, []byte("ACK "))
	if !ok {
		return Seq{}, fmt.Errorf("wire: %.60q is neither \"ACK SEQ\" nor \"ERR TEXT\"", line)
	}
	return ParseSeq(tok)
}

// ErrLine is a server's "ERR TEXT" line: it did not accept a message.
type ErrLine struct{ Text string }

func (e *ErrLine) Error() string { return "server: " + e.Text }

// ParseSeq parses the one spelling of a SEQ token, "ID:EPOCH:N".
func ParseSeq(tok []byte) (Seq, error) {
	i := bytes.IndexByte(tok, ':')
	if i < 0 {
		if _, ok := parseNum(tok); ok {
			return Seq{}, fmt.Errorf("wire: SEQ %.40q: %w; %s", tok, ErrBareNumber, Syntax)
		}
		return Seq{}, fmt.Errorf("wire: SEQ %.40q: no ':'; %s", tok, Syntax)
	}
	id, rest := tok[:i], tok[i+1:]
	j := bytes.IndexByte(rest, ':')
	if j < 0 {
		return Seq{}, fmt.Errorf("wire: SEQ %.40q: one ':', want two; %s", tok, Syntax)
	}
	if !validID(id) {
		return Seq{}, fmt.Errorf("wire: SEQ %.40q: bad ID; %s", tok, Syntax)
	}
	epoch, ok := parseNum(rest[:j])
	if !ok {
		return Seq{}, fmt.Errorf("wire: SEQ %.40q: bad EPOCH; %s", tok, Syntax)
	}
	n, ok := parseNum(rest[j+1:])
	if !ok {
		return Seq{}, fmt.Errorf("wire: SEQ %.40q: bad N; %s", tok, Syntax)
	}
	return Seq{ID: string(id), Epoch: epoch, N: n}, nil
}

// ValidID returns an error unless id is 1 to 64 bytes of A-Z a-z 0-9 '.'
// '_' '-'.
func ValidID(id string) error {
	if !validID([]byte(id)) {
		return fmt.Errorf("wire: ID %.70q: want 1 to %d bytes of A-Z a-z 0-9 . _ -", id, MaxIDLen)
	}
	return nil
}

// SafeID turns s (a host name, say) into a valid ID: bytes outside the
// set become '-', and it is cut to 64 bytes. An empty s gives "sender".
func SafeID(s string) string {
	if s == "" {
		return "sender"
	}
	b := []byte(s[:min(len(s), MaxIDLen)])
	for i, c := range b {
		if !idByte(c) {
			b[i] = '-'
		}
	}
	return string(b)
}

func validID(id []byte) bool {
	if len(id) == 0 || len(id) > MaxIDLen {
		return false
	}
	for _, c := range id {
		if !idByte(c) {
			return false
		}
	}
	return true
}

func idByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-'
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// parseNum parses the one spelling of a number from 1 to 2^64-1: decimal,
// no sign, no leading zero.
func parseNum(num []byte) (uint64, bool) {
	if len(num) == 0 || len(num) > 20 || num[0] == '0' {
		return 0, false
	}
	var v uint64
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, false // overflow
		}
		v = v*10 + d
	}
	return v, true
}
