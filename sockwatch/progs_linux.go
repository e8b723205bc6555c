package sockwatch

import (
	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"golang.org/x/sys/unix"
)

// Map names, shared by the map specs and the instructions that reference
// them.
const (
	mapEvents = "events" // BPF_MAP_TYPE_RINGBUF of records (record.go)
	mapDrops  = "drops"  // per-CPU u64: records the ring buffer had no room for
	mapOwners = "owners" // LRU: struct sock * -> owner (pid_tgid, cgroup, comm)
	mapRecent = "recent" // LRU: pid_tgid -> errno last reported asynchronously
	mapComms  = "comms"  // hash: comm[16] -> 1, present only with Config.Comms
)

// Program names, as `bpftool prog show` lists them (at most 15 bytes).
const (
	progOwner   = "sockwatch_owner"
	progError   = "sockwatch_error"
	progSyscall = "sockwatch_sys"
)

// ownerSize is the value of mapOwners: pid_tgid, cgroup id, comm.
const ownerSize = 8 + 8 + commLen

// Stack slots below the frame pointer.
const (
	fpKey     = -8  // 8-byte map key (pid_tgid, struct sock *, drop index)
	fpScratch = -16 // 8-byte helper output
	fpComm    = -32 // comm[16] for the comm filter
	fpOwner   = -64 // owner value [ownerSize] being built
	fpOp      = -72 // Op of the failed syscall (u32)
	fpUptr    = -80 // user pointer to its sockaddr or msghdr
)

// Kernel constants the programs compare against.
const (
	tcpSynSent = 2 // TCP_SYN_SENT in enum tcp_state (include/net/tcp_states.h)
)

// progConfig is what the instruction builders need to know.
type progConfig struct {
	off        offsets
	errnos     []int32
	commFilter bool // emit the Config.Comms lookup
	dedup      bool // syscall and async paths both attached: suppress the twin
}

// errnoFilter jumps to "exit" unless reg holds one of the errnos. It is one
// compare per errno, emitted at load time, which is cheaper than a map
// lookup for the dozen errnos of the default set and runs only after the
// caller has already established that the operation failed.
func errnoFilter(reg asm.Register, errnos []int32) asm.Instructions {
	insns := make(asm.Instructions, 0, len(errnos)+2)
	for _, e := range errnos {
		insns = append(insns, asm.JEq.Imm(reg, e, "errno_ok"))
	}
	insns = append(insns,
		asm.Ja.Label("exit"),
		asm.Mov.Reg(reg, reg).WithSymbol("errno_ok"),
	)
	return insns
}

// nop carries a jump label. It clobbers R0, which is never live across a
// label in these programs (the epilogue sets it again before returning).
func nop(label string) asm.Instruction {
	return asm.Mov.Imm(asm.R0, 0).WithSymbol(label)
}

// commFilter jumps to "exit" unless the comm at fp+at is in mapComms.
func commFilter(at int16) asm.Instructions {
	return asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapComms),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, int32(at)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
	}
}

// reserve reserves a record in the ring buffer into R7, jumping to "drop"
// when it is full, and zeroes it: ring-buffer memory is not cleared by the
// kernel and a record must not carry a previous event's bytes.
func reserve() asm.Instructions {
	insns := asm.Instructions{
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapEvents),
		asm.Mov.Imm(asm.R2, recSize),
		asm.Mov.Imm(asm.R3, 0),
		asm.FnRingbufReserve.Call(),
		asm.JEq.Imm(asm.R0, 0, "drop"),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.Mov.Imm(asm.R1, 0),
	}
	for off := int16(0); off < recSize; off += 8 {
		// There is no 64-bit store of an immediate; store a zero register.
		insns = append(insns, asm.StoreMem(asm.R7, off, asm.R1, asm.DWord))
	}
	return append(insns,
		asm.FnKtimeGetNs.Call(),
		asm.StoreMem(asm.R7, recTime, asm.R0, asm.DWord),
	)
}

// epilogue submits the record in R7 and ends the program; "drop" counts a
// full ring buffer in mapDrops so that overflow is visible in Stats.
func epilogue() asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R1, asm.R7),
		asm.Mov.Imm(asm.R2, 0),
		asm.FnRingbufSubmit.Call(),
		asm.Ja.Label("exit"),

		asm.StoreImm(asm.RFP, fpKey, 0, asm.Word).WithSymbol("drop"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapDrops),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "exit"),
		asm.Mov.Imm(asm.R1, 1),
		asm.StoreXAdd(asm.R0, asm.R1, asm.DWord),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	}
}

// probeRead calls fn (bpf_probe_read_kernel or _user) to copy size bytes
// from the address in src+srcOff to dst+dstOff. src must not be R1 or R2.
func probeRead(fn asm.BuiltinFunc, dst asm.Register, dstOff int16, size int32, src asm.Register, srcOff int16) asm.Instructions {
	return asm.Instructions{
		asm.Mov.Reg(asm.R3, src),
		asm.Add.Imm(asm.R3, int32(srcOff)),
		asm.Mov.Reg(asm.R1, dst),
		asm.Add.Imm(asm.R1, int32(dstOff)),
		asm.Mov.Imm(asm.R2, size),
		fn.Call(),
	}
}

// ownerProgram runs at sock:inet_sock_set_state (tp_btf) and remembers who
// connected each TCP socket. inet_sk_error_report mostly runs in softirq
// context, where the current task is whoever the interrupt hit, so the
// error program looks the owner up here instead. The transition to
// SYN_SENT happens inside connect(2), in the connecting thread.
func ownerProgram(pc progConfig) asm.Instructions {
	insns := asm.Instructions{
		// ctx is u64 args[]: sk, oldstate, newstate.
		asm.LoadMem(asm.R2, asm.R1, 16, asm.DWord),
		asm.JNE.Imm32(asm.R2, tcpSynSent, "exit"),
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		asm.StoreMem(asm.RFP, fpKey, asm.R6, asm.DWord),

		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.RFP, fpOwner, asm.R0, asm.DWord),
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(asm.RFP, fpOwner+8, asm.R0, asm.DWord),
		asm.Mov.Reg(asm.R1, asm.RFP),
		asm.Add.Imm(asm.R1, fpOwner+16),
		asm.Mov.Imm(asm.R2, commLen),
		asm.FnGetCurrentComm.Call(),
	}
	if pc.commFilter {
		insns = append(insns, commFilter(fpOwner+16)...)
	}
	return append(insns,
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapOwners),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.Mov.Reg(asm.R3, asm.RFP),
		asm.Add.Imm(asm.R3, fpOwner),
		asm.Mov.Imm(asm.R4, 0), // BPF_ANY: a reused socket address gets its new owner
		asm.FnMapUpdateElem.Call(),

		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
}

// errorProgram runs at sock:inet_sk_error_report (tp_btf), where the kernel
// has just stored an error on a socket: a refused, reset or timed-out
// connection, or an ICMP unreachable. It reads the trusted struct sock
// directly; the verifier checks every load against the kernel's BTF.
//
// Registers: R6 sk, R7 record, R8 errno, R9 owner (or NULL).
func errorProgram(pc progConfig) asm.Instructions {
	o := pc.off
	insns := asm.Instructions{
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		asm.LoadMem(asm.R8, asm.R6, o.skErr, asm.Word),
	}
	insns = append(insns, errnoFilter(asm.R8, pc.errnos)...)
	insns = append(insns,
		asm.StoreMem(asm.RFP, fpKey, asm.R6, asm.DWord),
		asm.LoadMapPtr(asm.R1, 0).WithReference(mapOwners),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, fpKey),
		asm.FnMapLookupElem.Call(),
		asm.Mov.Reg(asm.R9, asm.R0),
	)
	if pc.commFilter {
		// Unknown owner: its name cannot be checked, so it is not wanted.
		insns = append(insns, asm.JEq.Imm(asm.R9, 0, "exit"))
	}
	insns = append(insns, reserve()...)
	insns = append(insns,
		asm.StoreMem(asm.R7, recErrno, asm.R8, asm.Word),
		asm.StoreImm(asm.R7, recOp, int64(OpAsync), asm.Byte),

		asm.JEq.Imm(asm.R9, 0, "no_owner"),
		asm.LoadMem(asm.R1, asm.R9, 0, asm.DWord),
		asm.StoreMem(asm.R7, recPidTgid, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, 8, asm.DWord),
		asm.StoreMem(asm.R7, recCgroup, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, 16, asm.DWord),
		asm.StoreMem(asm.R7, recComm, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R9, 24, asm.DWord),
		asm.StoreMem(asm.R7, recComm+8, asm.R1, asm.DWord),
	)
	if pc.dedup {
		// A blocking connect returns this same error from the syscall a
		// moment later; tell the connect program so it stays silent and
		// the failure is reported once.
		insns = append(insns,
			asm.StoreMem(asm.RFP, fpScratch, asm.R8, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecent),
			asm.Mov.Reg(asm.R2, asm.R9), // the owner value starts with pid_tgid
			asm.Mov.Reg(asm.R3, asm.RFP),
			asm.Add.Imm(asm.R3, fpScratch),
			asm.Mov.Imm(asm.R4, 0),
			asm.FnMapUpdateElem.Call(),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R6, o.skFamily, asm.Half).WithSymbol("no_owner"),
		asm.StoreMem(asm.R7, recSockaddr, asm.R1, asm.Half),
		asm.LoadMem(asm.R2, asm.R6, o.skDport, asm.Half),
		asm.StoreMem(asm.R7, recSockaddr+2, asm.R2, asm.Half),
		asm.JNE.Imm(asm.R1, afInet, "not_v4"),
		asm.LoadMem(asm.R2, asm.R6, o.skDaddr, asm.Word),
		asm.StoreMem(asm.R7, recSockaddr+4, asm.R2, asm.Word),
		asm.Ja.Label("addr_done"),
		asm.Mov.Reg(asm.R1, asm.R1).WithSymbol("not_v4"),
	)
	if o.skV6Daddr >= 0 {
		insns = append(insns, asm.JNE.Imm(asm.R1, afInet6, "addr_done"))
		for i := int16(0); i < 16; i += 4 {
			insns = append(insns,
				asm.LoadMem(asm.R2, asm.R6, o.skV6Daddr+i, asm.Word),
				asm.StoreMem(asm.R7, recSockaddr+8+i, asm.R2, asm.Word),
			)
		}
	}
	insns = append(insns, nop("addr_done"))
	if o.skProtocol >= 0 {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R6, o.skProtocol, asm.Half),
			asm.StoreMem(asm.R7, recProto, asm.R1, asm.Half),
		)
	}
	if o.skNet >= 0 {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.R6, o.skNet, asm.DWord),
			asm.JEq.Imm(asm.R1, 0, "net_done"),
			asm.LoadMem(asm.R1, asm.R1, o.netInum, asm.Word),
			asm.StoreMem(asm.R7, recNetNS, asm.R1, asm.Word),
		)
	}
	insns = append(insns, nop("net_done"))
	return append(insns, epilogue()...)
}

// syscallProgram runs at the raw tracepoint sys_exit (tp_btf), which sees
// every syscall's return on the machine. It is attached as tp_btf rather
// than as syscalls:sys_exit_connect and friends because those need tracefs
// (mounted, and readable only by root), while tp_btf needs only CAP_BPF and
// CAP_PERFMON; the cost is the same, since the per-syscall tracepoints are
// themselves dispatched from this raw tracepoint. A successful syscall
// costs one load and one branch. The destination comes from the user's
// argument registers in pt_regs (see syscallArgOffsets), read only after
// the call is known to be a failed connect, sendto or sendmsg.
//
// Registers: R6 ctx, then pt_regs; R7 record, R8 errno, R9 scratch.
func syscallProgram(pc progConfig, nrs syscallNrs) asm.Instructions {
	o := pc.off
	insns := asm.Instructions{
		// ctx is u64 args[]: struct pt_regs *regs, long ret.
		asm.LoadMem(asm.R8, asm.R1, 8, asm.DWord),
		asm.JSGE.Imm(asm.R8, 0, "exit"),
		asm.LoadMem(asm.R6, asm.R1, 0, asm.DWord),
		asm.Neg.Imm(asm.R8, 0),
	}
	insns = append(insns, errnoFilter(asm.R8, pc.errnos)...)
	insns = append(insns, asm.LoadMem(asm.R1, asm.R6, o.regsNr, o.regsNrSize))
	// Which syscall, and where its destination pointer is: argument 1 for
	// connect (sockaddr) and sendmsg (msghdr, whose first field is
	// msg_name), argument 4 for sendto. Op and pointer go to the stack
	// because helper calls clobber R1-R5.
	for _, c := range []struct {
		nr  int32
		op  Op
		arg int16
	}{{nrs.connect, OpConnect, o.regsArg1}, {nrs.sendto, OpSendto, o.regsArg4}, {nrs.sendmsg, OpSendmsg, o.regsArg1}} {
		label := "not_" + c.op.String()
		insns = append(insns,
			asm.JNE.Imm(asm.R1, c.nr, label),
			asm.StoreImm(asm.RFP, fpOp, int64(c.op), asm.Word),
			asm.LoadMem(asm.R2, asm.R6, c.arg, asm.DWord),
			asm.StoreMem(asm.RFP, fpUptr, asm.R2, asm.DWord),
			asm.Ja.Label("known_op"),
			nop(label),
		)
	}
	insns = append(insns, asm.Ja.Label("exit"), nop("known_op"))

	if pc.commFilter {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, fpComm),
			asm.Mov.Imm(asm.R2, commLen),
			asm.FnGetCurrentComm.Call(),
		)
		insns = append(insns, commFilter(fpComm)...)
	}
	if pc.dedup {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.RFP, fpOp, asm.Word),
			asm.JNE.Imm(asm.R1, int32(OpConnect), "not_recent"),
			asm.FnGetCurrentPidTgid.Call(),
			asm.StoreMem(asm.RFP, fpKey, asm.R0, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecent),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, fpKey),
			asm.FnMapLookupElem.Call(),
			asm.JEq.Imm(asm.R0, 0, "not_recent"),
			asm.LoadMem(asm.R9, asm.R0, 0, asm.DWord),
			asm.LoadMapPtr(asm.R1, 0).WithReference(mapRecent),
			asm.Mov.Reg(asm.R2, asm.RFP),
			asm.Add.Imm(asm.R2, fpKey),
			asm.FnMapDeleteElem.Call(),
			asm.JEq.Reg(asm.R9, asm.R8, "exit"),
			nop("not_recent"),
		)
	}
	insns = append(insns, reserve()...)
	insns = append(insns,
		asm.StoreMem(asm.R7, recErrno, asm.R8, asm.Word),
		asm.LoadMem(asm.R1, asm.RFP, fpOp, asm.Word),
		asm.StoreMem(asm.R7, recOp, asm.R1, asm.Byte),
		asm.FnGetCurrentPidTgid.Call(),
		asm.StoreMem(asm.R7, recPidTgid, asm.R0, asm.DWord),
		asm.FnGetCurrentCgroupId.Call(),
		asm.StoreMem(asm.R7, recCgroup, asm.R0, asm.DWord),
	)
	if pc.commFilter {
		insns = append(insns,
			asm.LoadMem(asm.R1, asm.RFP, fpComm, asm.DWord),
			asm.StoreMem(asm.R7, recComm, asm.R1, asm.DWord),
			asm.LoadMem(asm.R1, asm.RFP, fpComm+8, asm.DWord),
			asm.StoreMem(asm.R7, recComm+8, asm.R1, asm.DWord),
		)
	} else {
		insns = append(insns,
			asm.Mov.Reg(asm.R1, asm.R7),
			asm.Add.Imm(asm.R1, recComm),
			asm.Mov.Imm(asm.R2, commLen),
			asm.FnGetCurrentComm.Call(),
		)
	}

	// Network namespace: current->nsproxy->net_ns->ns.inum. Each read can
	// fail (a task exiting has no nsproxy); a failed read yields 0.
	insns = append(insns, asm.FnGetCurrentTask.Call(), asm.Mov.Reg(asm.R9, asm.R0))
	insns = append(insns, probeRead(asm.FnProbeReadKernel, asm.RFP, fpScratch, 8, asm.R9, o.taskNsproxy)...)
	insns = append(insns,
		asm.LoadMem(asm.R9, asm.RFP, fpScratch, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "net_done"),
	)
	insns = append(insns, probeRead(asm.FnProbeReadKernel, asm.RFP, fpScratch, 8, asm.R9, o.nsproxyNetNS)...)
	insns = append(insns,
		asm.LoadMem(asm.R9, asm.RFP, fpScratch, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "net_done"),
	)
	insns = append(insns, probeRead(asm.FnProbeReadKernel, asm.R7, recNetNS, 4, asm.R9, o.netInum)...)

	// Destination, from user memory.
	insns = append(insns,
		asm.LoadMem(asm.R9, asm.RFP, fpUptr, asm.DWord).WithSymbol("net_done"),
		asm.JEq.Imm(asm.R9, 0, "addr_done"),
		asm.LoadMem(asm.R1, asm.RFP, fpOp, asm.Word),
		asm.JNE.Imm(asm.R1, int32(OpSendmsg), "have_sockaddr"),
	)
	insns = append(insns, probeRead(asm.FnProbeReadUser, asm.RFP, fpScratch, 8, asm.R9, 0)...)
	insns = append(insns,
		asm.LoadMem(asm.R9, asm.RFP, fpScratch, asm.DWord),
		asm.JEq.Imm(asm.R9, 0, "addr_done"),
		nop("have_sockaddr"),
	)
	// Read a sockaddr_in first: the application's buffer may be only 16
	// bytes long, and a read past its end could fault and zero the lot.
	insns = append(insns, probeRead(asm.FnProbeReadUser, asm.R7, recSockaddr, 16, asm.R9, 0)...)
	insns = append(insns,
		asm.LoadMem(asm.R1, asm.R7, recSockaddr, asm.Half),
		asm.JNE.Imm(asm.R1, afInet6, "addr_done"),
	)
	insns = append(insns, probeRead(asm.FnProbeReadUser, asm.R7, recSockaddr, sockaddrLen, asm.R9, 0)...)
	insns = append(insns, nop("addr_done"))
	return append(insns, epilogue()...)
}

// syscallNrs are the numbers of the syscalls the sys_exit program reports,
// from the build's GOARCH (x/sys/unix has them per architecture).
type syscallNrs struct{ connect, sendto, sendmsg int32 }

// collectionSpec builds the maps and programs for cfg.
func collectionSpec(cfg Config, off offsets) *ebpf.CollectionSpec {
	pc := progConfig{
		off:        off,
		commFilter: len(cfg.Comms) > 0,
		dedup:      cfg.SyscallTracing,
	}
	for _, e := range cfg.Errnos {
		pc.errnos = append(pc.errnos, int32(e))
	}
	const license = "Dual MIT/GPL" // bpf_probe_read_user and friends are GPL-only
	spec := &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			mapEvents: {Name: mapEvents, Type: ebpf.RingBuf, MaxEntries: uint32(cfg.RingBufferSize)},
			mapDrops:  {Name: mapDrops, Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 1},
			// 16k sockets in SYN_SENT or later that have not been
			// evicted; LRU keeps it bounded without a close hook.
			mapOwners: {Name: mapOwners, Type: ebpf.LRUHash, KeySize: 8, ValueSize: ownerSize, MaxEntries: 16384},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			progOwner: {
				Name: progOwner, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
				AttachTo: "inet_sock_set_state", License: license, Instructions: ownerProgram(pc),
			},
			progError: {
				Name: progError, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
				AttachTo: "inet_sk_error_report", License: license, Instructions: errorProgram(pc),
			},
		},
	}
	if pc.commFilter {
		spec.Maps[mapComms] = &ebpf.MapSpec{Name: mapComms, Type: ebpf.Hash, KeySize: commLen, ValueSize: 1, MaxEntries: uint32(len(cfg.Comms))}
	}
	if cfg.SyscallTracing {
		spec.Maps[mapRecent] = &ebpf.MapSpec{Name: mapRecent, Type: ebpf.LRUHash, KeySize: 8, ValueSize: 8, MaxEntries: 4096}
		nrs := syscallNrs{connect: unix.SYS_CONNECT, sendto: unix.SYS_SENDTO, sendmsg: unix.SYS_SENDMSG}
		spec.Programs[progSyscall] = &ebpf.ProgramSpec{
			Name: progSyscall, Type: ebpf.Tracing, AttachType: ebpf.AttachTraceRawTp,
			AttachTo: "sys_exit", License: license, Instructions: syscallProgram(pc, nrs),
		}
	}
	return spec
}
