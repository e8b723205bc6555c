package sockwatch

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// NoRoutes holds the kernel's counters of packets that could not be sent
// because no route matched: every ENETUNREACH of every process in the
// network namespace, counted by the kernel itself. They need no privilege
// and no eBPF, so they are the fallback signal when [New] fails: a counter
// that rises while an application is quiet about it still says that
// something on the machine is sending into a missing route.
type NoRoutes struct {
	// IPv4 is "Ip: OutNoRoutes" from /proc/net/snmp.
	IPv4 uint64
	// IPv6 is "Ip6OutNoRoutes" from /proc/net/snmp6; 0 without IPv6.
	IPv6 uint64
}

// ReadNoRoutes reads the counters of the calling thread's network
// namespace (through /proc/thread-self: /proc/net follows the process's
// main thread, which may be in another namespace). A missing snmp6 file
// (IPv6 disabled) is not an error.
func ReadNoRoutes() (NoRoutes, error) {
	var n NoRoutes
	f, err := os.Open("/proc/thread-self/net/snmp")
	if err != nil {
		return n, fmt.Errorf("sockwatch: no-route counters: %w", err)
	}
	defer f.Close()
	if n.IPv4, err = parseSNMP(f); err != nil {
		return n, err
	}
	f6, err := os.Open("/proc/thread-self/net/snmp6")
	if errors.Is(err, os.ErrNotExist) {
		return n, nil
	}
	if err != nil {
		return n, fmt.Errorf("sockwatch: no-route counters: %w", err)
	}
	defer f6.Close()
	n.IPv6, err = parseSNMP6(f6)
	return n, err
}

// parseSNMP returns OutNoRoutes from /proc/net/snmp, whose "Ip:" section is
// a header line of names followed by a line of values.
func parseSNMP(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	var names []string
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "Ip: ")
		if !ok {
			continue
		}
		fields := strings.Fields(line)
		if names == nil {
			names = fields
			continue
		}
		if len(fields) != len(names) {
			return 0, fmt.Errorf("sockwatch: /proc/net/snmp: Ip: %d values for %d names, want equal counts", len(fields), len(names))
		}
		for i, name := range names {
			if name == "OutNoRoutes" {
				v, err := strconv.ParseUint(fields[i], 10, 64)
				if err != nil {
					return 0, fmt.Errorf("sockwatch: /proc/net/snmp: OutNoRoutes %q: want an unsigned integer: %w", fields[i], err)
				}
				return v, nil
			}
		}
		return 0, errors.New("sockwatch: /proc/net/snmp: Ip: has no OutNoRoutes column")
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("sockwatch: /proc/net/snmp: %w", err)
	}
	return 0, errors.New("sockwatch: /proc/net/snmp: want an Ip: header and value line, found none")
}

// parseSNMP6 returns Ip6OutNoRoutes from /proc/net/snmp6 ("name value"
// lines).
func parseSNMP6(r io.Reader) (uint64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && f[0] == "Ip6OutNoRoutes" {
			v, err := strconv.ParseUint(f[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("sockwatch: /proc/net/snmp6: Ip6OutNoRoutes %q: want an unsigned integer: %w", f[1], err)
			}
			return v, nil
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("sockwatch: /proc/net/snmp6: %w", err)
	}
	return 0, errors.New("sockwatch: /proc/net/snmp6: no Ip6OutNoRoutes line")
}
