package sockwatch

import (
	"errors"
	"fmt"
	"runtime"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/btf"
)

// offsets are the byte offsets of the kernel structure fields the programs
// read. They differ between kernel versions and configurations, so they are
// computed at [New] from the running kernel's BTF. This is CO-RE done by
// hand: the handful of fields does not justify a compiler.
type offsets struct {
	// struct sock (tp_btf programs load these directly; the verifier
	// checks each load against BTF, so a wrong offset fails loading rather
	// than reading garbage).
	skErr      int16 // sock.sk_err (int)
	skFamily   int16 // sock.__sk_common.skc_family (u16)
	skDport    int16 // sock.__sk_common.skc_dport (__be16)
	skDaddr    int16 // sock.__sk_common.skc_daddr (__be32)
	skV6Daddr  int16 // sock.__sk_common.skc_v6_daddr (16 bytes); -1 without IPv6
	skNet      int16 // sock.__sk_common.skc_net.net (struct net *); -1 without netns
	skProtocol int16 // sock.sk_protocol (u16); -1 if it is a bitfield (old kernels)
	netInum    int16 // net.ns.inum (unsigned int)

	// Syscall path: bpf_probe_read_kernel from these.
	taskNsproxy  int16 // task_struct.nsproxy
	nsproxyNetNS int16 // nsproxy.net_ns
	// Offsets in struct pt_regs of the syscall arguments 1 and 4
	// (0-based): connect's and sendmsg's pointer, and sendto's address.
	regsArg1, regsArg4 int16
	// Offset and load size of the syscall number in struct pt_regs.
	regsNr     int16
	regsNrSize asm.Size
}

// kernelOffsets reads the offsets from spec (the kernel's BTF).
func kernelOffsets(spec *btf.Spec) (offsets, error) {
	var o offsets
	var sock, net, task, nsproxy, regs *btf.Struct
	for _, s := range []struct {
		name string
		dst  **btf.Struct
	}{{"sock", &sock}, {"net", &net}, {"task_struct", &task}, {"nsproxy", &nsproxy}, {"pt_regs", &regs}} {
		if err := spec.TypeByName(s.name, s.dst); err != nil {
			return o, fmt.Errorf("sockwatch: kernel BTF: struct %s: %w", s.name, err)
		}
	}
	var errs []error
	get := func(t btf.Type, size int, path ...string) int16 {
		off, err := memberOffset(t, size, path...)
		if err != nil {
			errs = append(errs, err)
		}
		return off
	}
	o.skErr = get(sock, 4, "sk_err")
	o.skFamily = get(sock, 2, "__sk_common", "skc_family")
	o.skDport = get(sock, 2, "__sk_common", "skc_dport")
	o.skDaddr = get(sock, 4, "__sk_common", "skc_daddr")
	o.netInum = get(net, 4, "ns", "inum")
	o.taskNsproxy = get(task, 8, "nsproxy")
	o.nsproxyNetNS = get(nsproxy, 8, "net_ns")
	if err := errors.Join(errs...); err != nil {
		return o, err
	}
	// Optional fields: a kernel without IPv6 or network namespaces still
	// reports IPv4 errors; an old one with a bitfield sk_protocol still
	// reports everything but the protocol.
	var err error
	if o.skV6Daddr, err = memberOffset(sock, 16, "__sk_common", "skc_v6_daddr"); err != nil {
		o.skV6Daddr = -1
	}
	if o.skNet, err = memberOffset(sock, 8, "__sk_common", "skc_net", "net"); err != nil {
		o.skNet = -1
	}
	if o.skProtocol, err = memberOffset(sock, 2, "sk_protocol"); err != nil {
		o.skProtocol = -1
	}
	if o.regsArg1, o.regsArg4, o.regsNr, o.regsNrSize, err = syscallRegs(regs); err != nil {
		return o, err
	}
	return o, nil
}

// syscallRegs returns where the user's syscall arguments 1 and 4 and the
// syscall number sit in struct pt_regs. At sys_exit the return value has replaced only the
// register that carries it (ax on amd64, x0 on arm64); the argument
// registers still hold what the application passed, which is why the exit
// tracepoint alone suffices and no sys_enter hand-off map is needed.
func syscallRegs(regs *btf.Struct) (arg1, arg4, nr int16, nrSize asm.Size, err error) {
	switch runtime.GOARCH {
	case "amd64":
		// Syscall ABI: di, si, dx, r10, r8, r9; the number in orig_ax.
		a1, err1 := memberOffset(regs, 8, "si")
		a4, err4 := memberOffset(regs, 8, "r8")
		n, errN := memberOffset(regs, 8, "orig_ax")
		return a1, a4, n, asm.DWord, errors.Join(err1, err4, errN)
	case "arm64":
		// x0..x5; x0 is overwritten by the return value, x1..x5 are not.
		base, err := memberOffset(regs, 0, "regs")
		n, errN := memberOffset(regs, 4, "syscallno")
		return base + 8, base + 4*8, n, asm.Word, errors.Join(err, errN)
	}
	return 0, 0, 0, 0, fmt.Errorf("sockwatch: syscall tracing on %s: %w (only amd64 and arm64 are supported)", runtime.GOARCH, ErrNotSupported)
}

// memberOffset returns the byte offset of the member reached by path in
// struct or union t, looking through anonymous structs and unions the way
// C does. size, if not 0, is the member's required size in bytes;
// bitfields are refused because the programs load whole bytes.
func memberOffset(t btf.Type, size int, path ...string) (int16, error) {
	var off uint32
	cur := t
	for _, name := range path {
		m, at, ok := findMember(cur, name)
		if !ok {
			return -1, fmt.Errorf("sockwatch: kernel BTF: %s: no member %q: %w", btf.UnderlyingType(t).TypeName(), name, ErrNotSupported)
		}
		if m.BitfieldSize != 0 {
			return -1, fmt.Errorf("sockwatch: kernel BTF: %s.%s is a bitfield: %w", btf.UnderlyingType(t).TypeName(), name, ErrNotSupported)
		}
		off += at
		cur = m.Type
	}
	if size != 0 {
		got, err := btf.Sizeof(cur)
		if err != nil || got != size {
			return -1, fmt.Errorf("sockwatch: kernel BTF: %s.%v: size %d, want %d: %w", btf.UnderlyingType(t).TypeName(), path, got, size, ErrNotSupported)
		}
	}
	if off > 1<<15-1 {
		return -1, fmt.Errorf("sockwatch: kernel BTF: %s.%v: offset %d does not fit an instruction", btf.UnderlyingType(t).TypeName(), path, off)
	}
	return int16(off), nil
}

// findMember finds name among t's members, descending into anonymous
// members; the offset returned is relative to t.
func findMember(t btf.Type, name string) (btf.Member, uint32, bool) {
	var members []btf.Member
	switch c := btf.UnderlyingType(t).(type) {
	case *btf.Struct:
		members = c.Members
	case *btf.Union:
		members = c.Members
	default:
		return btf.Member{}, 0, false
	}
	for _, m := range members {
		if m.Name == name {
			return m, m.Offset.Bytes(), true
		}
		if m.Name == "" {
			if inner, at, ok := findMember(m.Type, name); ok {
				return inner, m.Offset.Bytes() + at, true
			}
		}
	}
	return btf.Member{}, 0, false
}
