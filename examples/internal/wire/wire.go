// Package wire is the line protocol between examples/sender and
// examples/ackserver: "SEQ PAYLOAD\n" one way, "ACK SEQ\n" the other. SEQ
// is a decimal number from 1 without sign or leading zeros, so that one
// message has exactly one spelling and de-duplication by text and by
// number agree.
package wire

import (
	"bytes"
	"strconv"
)

// ParseMessage parses "SEQ PAYLOAD\n" (or "SEQ\n", an empty payload) and
// returns SEQ. A trailing "\r" is tolerated.
func ParseMessage(line []byte) (uint64, bool) {
	line = trimEOL(line)
	num := line
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		num = line[:i]
	}
	return parseSeq(num)
}

// ParseAck parses "ACK SEQ\n" (a trailing "\r" tolerated) and returns SEQ.
func ParseAck(line []byte) (uint64, bool) {
	num, ok := bytes.CutPrefix(trimEOL(line), []byte("ACK "))
	if !ok {
		return 0, false
	}
	return parseSeq(num)
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// parseSeq parses the one spelling of a sequence number: 1 to 2^64-1 in
// decimal, no sign, no leading zero.
func parseSeq(num []byte) (uint64, bool) {
	if len(num) == 0 || len(num) > 20 || num[0] == '0' {
		return 0, false
	}
	for _, c := range num {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(string(num), 10, 64)
	if err != nil {
		return 0, false
	}
	return seq, true
}
