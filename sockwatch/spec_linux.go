package sockwatch

import (
	"fmt"
	"runtime"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// errnoWords is the length of the errnos bitmap in bpf/sockwatch.c: one
// bit for each errno 0..4095.
const errnoWords = 4096 / 64

// collectionSpec returns the compiled programs (bpf/sockwatch.c) specialised
// for cfg: the errno set, the name filter and the dedup become constants the
// verifier sees, so the code for an unconfigured filter is removed at load
// time; the map sizes follow cfg; the syscall program is left out unless
// cfg.SyscallTracing.
func collectionSpec(cfg Config) (*ebpf.CollectionSpec, error) {
	spec, err := loadSockwatch()
	if err != nil {
		return nil, fmt.Errorf("sockwatch: embedded BPF object: %w", err)
	}
	var errnos [errnoWords]uint64
	for _, e := range cfg.Errnos {
		errnos[e/64] |= 1 << (e % 64)
	}
	vars := map[string]any{
		sockwatchVarErrnos:     errnos,
		sockwatchVarCommFilter: len(cfg.Comms) > 0,
		sockwatchVarDedup:      cfg.SyscallTracing,
		sockwatchVarNrConnect:  uint32(unix.SYS_CONNECT),
		sockwatchVarNrSendto:   uint32(unix.SYS_SENDTO),
		sockwatchVarNrSendmsg:  uint32(unix.SYS_SENDMSG),
	}
	for name, v := range vars {
		vs := spec.Variables[name]
		if vs == nil {
			return nil, fmt.Errorf("sockwatch: embedded BPF object has no variable %q", name)
		}
		if err := vs.Set(v); err != nil {
			return nil, fmt.Errorf("sockwatch: set BPF variable %s: %w", name, err)
		}
	}
	spec.Maps[sockwatchMapEvents].MaxEntries = uint32(cfg.RingBufferSize)
	if n := len(cfg.Comms); n > 0 {
		spec.Maps[sockwatchMapComms].MaxEntries = uint32(n)
	}
	if !cfg.SyscallTracing {
		delete(spec.Programs, sockwatchProgSockwatchSys)
		// Still referenced by the (then dead) dedup code of the error program.
		spec.Maps[sockwatchMapRecent].MaxEntries = 1
	} else if err := syscallArchSupported(); err != nil {
		return nil, err
	}
	return spec, nil
}

// syscallArchSupported reports whether the syscall program knows this
// architecture's struct pt_regs and syscall ABI.
func syscallArchSupported() error {
	switch runtime.GOARCH {
	case "amd64", "arm64":
		return nil
	}
	return fmt.Errorf("sockwatch: syscall tracing on %s: %w (only amd64 and arm64 are supported)", runtime.GOARCH, ErrNotSupported)
}
