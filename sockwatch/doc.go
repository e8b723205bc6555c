// Package sockwatch reports the socket operations of every process on the
// machine that fail with a connectivity error, using eBPF, without touching
// the applications: "python3[4242] connect 10.0.0.5:443: network is
// unreachable". Most robot software never tells anyone why its sends fail;
// the kernel knows, and this package asks it.
//
// A [Watcher] delivers one [Event] per failure: process and thread ID,
// thread name, errno, operation, destination address and port, network
// namespace, cgroup, and the kernel's monotonic timestamp. It filters in the
// kernel, by errno ([Config.Errnos]) and optionally by process name
// ([Config.Comms]), so successful calls and uninteresting processes cost no
// ring-buffer space, and optionally in user space by cgroup
// ([Config.Cgroups]) and destination ([Config.Destinations]); see Filters
// below. The Monitor classifies the events ([Event.Err] works with
// classify.Classify) and correlates them with link state; this package
// does neither.
//
// # What is observed
//
// Asynchronous errors are always observed: sock:inet_sk_error_report fires
// when the kernel stores an error on a socket after the call that caused
// it returned. That is how a non-blocking connect (Go's, and every event
// loop's) learns ECONNREFUSED, ETIMEDOUT or EHOSTUNREACH, and how an
// established connection learns of a reset. That tracepoint often runs in
// softirq context, where the current task is whoever the interrupt hit, so
// a second program at sock:inet_sock_set_state remembers which thread moved
// each TCP socket to SYN_SENT (inside its connect call) and the error is
// attributed to it. Sockets that never went through connect while the
// Watcher ran (accepted sockets, connected UDP) get PID 0.
//
// Synchronous errors (ENETUNREACH from connect or sendto when no route
// matches, and the UDP sends of robots' telemetry) are returned by the
// syscall itself and leave no trace on the socket. [Config.SyscallTracing]
// adds a program at the raw tracepoint sys_exit that reports failed
// connect, sendto and sendmsg. It is off by default: once any syscall
// tracepoint is enabled the kernel sends every syscall of every process
// through its slow path, about 78 ns each on the development VM (getppid 213 vs 135 ns). Within
// the program a successful syscall costs one load and one branch; the
// destination is read from the application's argument registers in
// pt_regs only after a failure, so there is no sys_enter program and no
// per-call map update.
//
// Without either program, [ReadNoRoutes] reads the kernel's OutNoRoutes
// counters, which count every failed route lookup in a namespace and need
// no privilege: a coarse fallback when [New] fails.
//
// # One event per failure
//
// A failed connection attempt is one event, whatever the order in which
// the kernel's reports and the application's thread run. Two doubles are
// removed, both in the kernel, because only there are the socket and the
// order of its reports known:
//
//   - An ICMP error (EHOSTUNREACH when nobody answers ARP, ENETUNREACH or
//     EHOSTUNREACH from a router) for a socket in SYN_SENT is reported
//     twice by Linux 6.x: tcp_v4_err (tcp_v6_err) stores sk_err, then
//     ip_icmp_error queues the error on the socket's error queue, whose
//     sock_queue_err_skb fires inet_sk_error_report with the socket still
//     in SYN_SENT, then tcp_done_with_error moves the socket to CLOSE and
//     fires it again. Whether the second report still sees the errno
//     depends on the application: a thread that takes the error
//     (SO_ERROR, or the return of a blocking connect, both through
//     sock_error, which clears sk_err) between the two reports leaves it
//     0; a thread that runs later, as on a busy machine, does not. A
//     blocking connect's thread always runs later: it can return only
//     once it holds the socket lock, which the kernel keeps from storing
//     the error to the second report. So the owner entry of the socket
//     remembers the errno reported while the attempt was still opening
//     (SYN_SENT or SYN_RECV), and a report of the same errno after that
//     is dropped; the next connect on the socket, a new attempt, clears
//     it. The first report is the one kept: kernels before the
//     tcp_done_with_error rework report only once, before tcp_done,
//     with the socket in SYN_SENT. User space could not do this: the two
//     records differ only in the socket state, which a record does not
//     carry, and nothing bounds how far apart they arrive.
//   - A blocking connect that fails with an error the kernel stored on
//     the socket (ECONNREFUSED, EHOSTUNREACH) returns it as well, which
//     the syscall program would report. The error program tells the
//     syscall program, through a small LRU map keyed by the socket's
//     cookie, to stay silent when a connect on that socket returns that
//     errno. The order is fixed by the same socket lock: the kernel
//     stores and reports the error holding it (in softirq, or in
//     release_sock for a packet that arrived while the thread held it),
//     and the woken thread takes it before reading the error, so the
//     error program has always run when the connect returns. Keyed by
//     socket, not by thread: a non-blocking connect's error, fetched with
//     SO_ERROR, does not silence the thread's next connect on another
//     socket.
//
// TestIntegrationHostUnreachable forces each order: a blocking connect,
// and a non-blocking one whose thread fetches the error only after the
// socket closed (getsockopt TCP_INFO takes the socket lock).
//
// # Requirements
//
// Linux 5.15 or later (sock:inet_sk_error_report appeared in 5.15) with
// BTF (/sys/kernel/btf/vmlinux, CONFIG_DEBUG_INFO_BTF=y), and CAP_BPF plus
// CAP_PERFMON, or root. Syscall tracing reads the argument registers and
// supports amd64 and arm64. All
// programs attach as tp_btf (BPF_TRACE_RAW_TP), which needs no tracefs, so
// a service can run as a non-root user with
// AmbientCapabilities=CAP_BPF CAP_PERFMON. Kprobes, fentry and fexit are
// not used: robot kernels may lack them, and fentry is refused (EPERM) on
// the lockdown kernel this was developed on. When something is missing,
// [New] returns an error wrapping [ErrNotSupported] or [ErrPermission]
// whose text names it (for example "missing CAP_BPF, CAP_PERFMON"), and
// nothing stays loaded. The caller runs on without sockwatch.
//
// # The programs: C, CO-RE, bpf2go
//
// The three programs are C, in bpf/sockwatch.c, compiled by bpf2go (the
// cilium/ebpf version go.mod requires) into sockwatch_bpfel.o and
// sockwatch_bpfeb.o, which are embedded by the generated
// sockwatch_bpfel.go and sockwatch_bpfeb.go. The objects are committed, so
// `go build` needs no clang; `go generate ./sockwatch/` rebuilds them
// (clang, libbpf-dev), and CI rebuilds them and fails if they differ.
// Kernel structures are read with BPF_CORE_READ against bpf/vmlinux.h,
// which is trimmed from bpftool's dump of the kernel's BTF to the members
// the programs read; every access is a CO-RE relocation that cilium/ebpf
// resolves by name against the running kernel's BTF at load time, so a
// member that moved is found and one that is missing fails loading with
// its name. [New] specialises the programs through
// CollectionSpec.Variables (volatile const in C): the errno set is a
// 4096-bit bitmap, and the process-name filter, the dedup and the syscall
// numbers are constants the verifier sees, so unconfigured code is
// removed at load time.
//
// Why each hook:
//
//   - sock:inet_sk_error_report, as tp_btf: the one place every
//     asynchronous socket error passes, with the struct sock as a typed
//     argument. The error is read from the socket (sk_err).
//   - sock:inet_sock_set_state, as tp_btf: the transition to SYN_SENT
//     runs inside connect(2), in the connecting thread, which is the only
//     moment the owner of a client socket is known; the transition to
//     CLOSE is where its entry is removed. The owners map is keyed by the
//     socket cookie (bpf_get_socket_cookie), not the struct sock address:
//     the kernel reuses those addresses for later sockets, and a cookie is
//     never reused. Most close paths (a reset, a refused or timed-out
//     connect) store the error, move the socket to CLOSE and then report
//     the error, so an entry whose socket has an error pending stays for
//     that report, which removes it.
//   - the raw tracepoint sys_exit, as tp_btf: it sees the return value and,
//     in pt_regs, the user's argument registers, so no sys_enter program
//     and no per-call map update is needed. It is tp_btf rather than
//     syscalls:sys_exit_connect and friends because those need tracefs
//     (mounted, and readable only by root), while tp_btf needs only
//     CAP_BPF and CAP_PERFMON; the cost is the same, since the
//     per-syscall tracepoints are themselves dispatched from this one. The
//     struct pt_regs layout is chosen by CO-RE (bpf_core_field_exists on
//     the amd64 and arm64 flavours). Only AF_INET and AF_INET6 are
//     reported: the family is read first from the sockaddr the application
//     passed, or, for a send without one, from the socket behind the file
//     descriptor, so a connect to a dead local daemon's Unix socket is not
//     a network error.
//
// Events go to user space through one BPF ring buffer (not perf buffers):
// one buffer shared by all CPUs keeps the order and the memory bounded.
// Event times: the kernel stamps CLOCK_MONOTONIC; [Watcher.Run] converts
// it with the wall clock read again for every batch of records it reads
// (and every 256 records within a batch that a storm keeps from ending),
// so a wall-clock step (NTP's first sync on a robot without a real-time
// clock) dates the events after it correctly.
//
// # Filters
//
// Errnos and Comms are filtered in the kernel: the errno set is one bitmap
// test, and the process-name filter one hash-map lookup on the thread's
// comm. Cgroups and Destinations are
// filtered in user space, in the ring-buffer reader of [Watcher.Run],
// before an event is delivered; what they reject is counted in
// [Stats.Filtered], never in Stats.Events. User space was chosen because it
// is simpler and costs almost nothing where it runs: only failures reach
// the ring buffer, and a map lookup and a few prefix compares per failure
// are small next to reading and decoding its record. In the kernel, the
// destination filter would need an LPM-trie lookup per address family
// in each program that writes records, and a per-CPU
// counter to keep Filtered exact; the cgroup filter alone would be one more
// map lookup, but splitting the two filters between kernel and user space
// would split their accounting too. The price is ring-buffer space: events
// that will be filtered out are still queued, so a flood of other failures
// can fill the buffer and make the kernel drop (and count) events that
// would have matched. Comms, which runs in the kernel, is the filter to add
// when the machine has noisy processes.
//
// # Ordering, overflow and lifetime
//
// Events arrive in the order the kernel queued them in one ring buffer
// ([Config.RingBufferSize]). A reader that falls behind never slows the
// applications: the kernel drops new events and counts them, and
// [Watcher.Stats] reports the count, so Events + Filtered + Dropped is
// every failure that passed the in-kernel filters. [Watcher.Run] owns the
// Events channel and closes it when it returns; [Watcher.Close] detaches
// every program and unloads every map (the kernel frees the last of them
// after an RCU grace period).
//
// # Limitations
//
//   - Asynchronous errors of sockets that never went through TCP connect
//     while the Watcher ran (accepted connections, connected UDP sockets,
//     connections opened before New) have PID 0, no name and no cgroup,
//     and are dropped when [Config.Comms] or [Config.Cgroups] is set. So
//     has the ECONNRESET an application causes itself by closing a
//     connected socket with SO_LINGER 0: the kernel moves the socket to
//     CLOSE (and its owner entry goes) before it stores that error.
//   - [Config.Cgroups] matches the cgroup a process is in, not the
//     cgroups above it: naming a slice does not select the services in it.
//   - With SyscallTracing, a connected UDP socket that gets an ICMP
//     unreachable produces two events: the asynchronous one (PID 0) and the
//     ECONNREFUSED its next send returns (no destination, since a send on a
//     connected socket names none). Only TCP connection attempts are
//     de-duplicated, and the ICMP double (above) only for sockets whose
//     owner is known: one still in SYN_SENT from a connect made before
//     New can be reported twice.
//   - write(2), writev(2) and sendmmsg(2) on sockets are not traced: write
//     would put a program on every file write, and errors on a connected
//     TCP socket also surface asynchronously.
//   - 32-bit (compat) syscalls of a 64-bit kernel are not recognised.
//
// # What it never does
//
// It never writes to sockets, never changes kernel settings, never reads
// payloads (only the destination sockaddr the application passed), and
// never keeps state beyond two bounded LRU maps.
package sockwatch
