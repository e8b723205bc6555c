// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The BPF programs of package sockwatch. The package documentation (doc.go)
// says why each hook was chosen; the record layout is documented with the
// Go decoder (record_linux.go), and the _Static_asserts below keep the two
// in step. Regenerate the objects with `go generate ./sockwatch/`.

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

// bpf_probe_read_user and bpf_probe_read_kernel are GPL-only helpers.
char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define AF_INET 2
#define AF_INET6 10
#define COMM_LEN 16
#define SOCKADDR_LEN 28 // sizeof(struct sockaddr_in6)
#define SOCKADDR_IN_LEN 16 // sizeof(struct sockaddr_in)
#define MAX_ERRNO 4095

// Op values, as the Go type Op.
enum {
	OP_CONNECT = 1,
	OP_SENDTO = 2,
	OP_SENDMSG = 3,
	OP_ASYNC = 4,
};

// record is one ring-buffer record; see record_linux.go for the layout.
struct record {
	__u64 time; // CLOCK_MONOTONIC ns
	__u64 pid_tgid; // 0: owner unknown
	__u64 cgroup;
	__u32 netns;
	__u32 err; // positive errno
	__u8 op;
	__u8 flags; // reserved, 0
	__u16 protocol; // async only
	__u32 pad0;
	char comm[COMM_LEN];
	__u8 sockaddr[SOCKADDR_LEN];
	__u32 pad1;
};

_Static_assert(__builtin_offsetof(struct record, time) == 0, "recTime");
_Static_assert(__builtin_offsetof(struct record, pid_tgid) == 8, "recPidTgid");
_Static_assert(__builtin_offsetof(struct record, cgroup) == 16, "recCgroup");
_Static_assert(__builtin_offsetof(struct record, netns) == 24, "recNetNS");
_Static_assert(__builtin_offsetof(struct record, err) == 28, "recErrno");
_Static_assert(__builtin_offsetof(struct record, op) == 32, "recOp");
_Static_assert(__builtin_offsetof(struct record, flags) == 33, "recFlags");
_Static_assert(__builtin_offsetof(struct record, protocol) == 34, "recProto");
_Static_assert(__builtin_offsetof(struct record, comm) == 40, "recComm");
_Static_assert(__builtin_offsetof(struct record, sockaddr) == 56, "recSockaddr");
_Static_assert(sizeof(struct record) == 88, "recSize");

// owner is who moved a TCP socket to SYN_SENT: the thread inside connect().
struct owner {
	__u64 pid_tgid;
	__u64 cgroup;
	char comm[COMM_LEN];
	// failed is the errno reported while this connection attempt was
	// still opening (SYN_SENT or SYN_RECV), 0 before: a later report of
	// the same errno, once the attempt has closed, is the same failure
	// (see sockwatch_error).
	__u32 failed;
	__u32 pad;
};

// Set by the loader (CollectionSpec.Variables) before loading. The
// verifier sees their values, so a branch on a false flag is removed
// before the program runs.

// errnos is a bitmap of the reported errnos 1..4095 (Config.Errnos).
volatile const __u64 errnos[(MAX_ERRNO + 1) / 64];
// comm_filter: report only threads whose comm is a key of comms.
volatile const bool comm_filter;
// dedup: the syscall program is attached too; report a blocking connect's
// failure once (see recent).
volatile const bool dedup;
// The syscall numbers of connect, sendto and sendmsg for the build's
// architecture (from golang.org/x/sys/unix).
volatile const __u32 nr_connect, nr_sendto, nr_sendmsg;

// The loader sets max_entries of events (Config.RingBufferSize), comms
// (the number of names) and recent (1 without syscall tracing).
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

// drops counts records the ring buffer had no room for.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1);
} drops SEC(".maps");

// owners maps a socket cookie to the thread that connected the socket.
// The key is the cookie, not the struct sock address: the kernel reuses
// addresses for later, unrelated sockets, while a cookie is never reused
// while the system runs. Entries go when the socket closes or, when it
// closes with an error still to be reported, after that report (see
// sockwatch_owner). LRU eviction bounds the rest: an established socket
// with an error stored but never reported (an ICMP error with IP_RECVERR)
// that then closes normally.
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, struct owner);
	__uint(max_entries, 16384);
} owners SEC(".maps");

// recent maps a socket's cookie to the errno last reported asynchronously
// for it, so that the syscall program stays silent when a connect on that
// same socket returns it (a blocking connect, or a second connect that
// fetches a non-blocking one's result). Keyed by socket, not by thread: a
// non-blocking connect's error, fetched with SO_ERROR, must not silence
// the thread's next connect on another socket that fails at once with the
// same errno (no route).
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__type(key, __u64);
	__type(value, __u64);
	__uint(max_entries, 4096);
} recent SEC(".maps");

// comms holds the process names of Config.Comms.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, char[COMM_LEN]);
	__type(value, __u8);
	__uint(max_entries, 1);
} comms SEC(".maps");

static __always_inline bool wanted_errno(__u64 err)
{
	if (err == 0 || err > MAX_ERRNO)
		return false;
	return errnos[err / 64] & (1ULL << (err % 64));
}

// reserve returns a zeroed record stamped with the time, or NULL (counted
// in drops) when the ring buffer is full. Ring-buffer memory is not
// cleared by the kernel, and a record must not carry an earlier one's bytes.
static __always_inline struct record *reserve(void)
{
	struct record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&drops, &zero);
		if (n)
			__sync_fetch_and_add(n, 1);
		return NULL;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->time = bpf_ktime_get_ns();
	return r;
}

static __always_inline __u64 cookie_of(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_cookie.counter);
}

// sock_dead reports sock_flag(sk, SOCK_DEAD): the socket is orphaned, no
// error will be reported on it. SOCK_DEAD is bit 0 of sk_flags (enum
// sock_flags), as it has been since Linux 2.6.
static __always_inline bool sock_dead(const struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_flags) & (1UL << 0);
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(sockwatch_owner, const struct sock *sk, int oldstate, int newstate)
{
	if (newstate == TCP_CLOSE) {
		// Most error paths (tcp_done_with_error: a reset, a refused or
		// timed-out connect) store sk_err, move the socket to CLOSE and
		// only then report the error; the error program removes the
		// entry after that report. Without a pending error nothing will
		// look the owner up again; nor for a socket the application has
		// closed (SOCK_DEAD, e.g. an orphan in FIN_WAIT that receives a
		// reset): tcp_done_with_error reports errors only to sockets
		// that still have a user.
		__u64 cookie = cookie_of(sk);
		if (cookie && (BPF_CORE_READ(sk, sk_err) == 0 || sock_dead(sk)))
			bpf_map_delete_elem(&owners, &cookie);
		return 0;
	}
	if (newstate != TCP_SYN_SENT)
		return 0;

	struct owner o = {};
	bpf_get_current_comm(o.comm, sizeof(o.comm));
	if (comm_filter && !bpf_map_lookup_elem(&comms, o.comm))
		return 0;
	o.pid_tgid = bpf_get_current_pid_tgid();
	o.cgroup = bpf_get_current_cgroup_id();
	// The cookie is created here if the socket has none yet.
	__u64 cookie = bpf_get_socket_cookie((void *)sk);
	bpf_map_update_elem(&owners, &cookie, &o, BPF_ANY);
	return 0;
}

SEC("tp_btf/inet_sk_error_report")
int BPF_PROG(sockwatch_error, const struct sock *sk)
{
	__u32 err = BPF_CORE_READ(sk, sk_err);
	__u64 cookie = cookie_of(sk);
	struct owner *o = NULL;
	if (cookie)
		o = bpf_map_lookup_elem(&owners, &cookie);
	__u8 state = BPF_CORE_READ(sk, __sk_common.skc_state);
	bool opening = state == TCP_SYN_SENT || state == TCP_SYN_RECV;

	// One failure of a connection attempt, one event. An ICMP error for
	// a socket in SYN_SENT is reported twice by Linux 6.x (tcp_v4_err,
	// tcp_v6_err): first by ip_icmp_error queueing it on the error queue
	// (sock_queue_err_skb), with sk_err already set and the socket still
	// in SYN_SENT, then by tcp_done_with_error after the socket moved to
	// CLOSE. The first report is the one kept, since older kernels make
	// only that one (they report before tcp_done); the owner entry
	// remembers its errno, and a report of the same errno once the
	// attempt has left SYN_SENT/SYN_RECV is dropped. A new connect on the
	// socket (sockwatch_owner at SYN_SENT) starts a new attempt.
	bool repeat = o && !opening && o->failed && o->failed == err;
	// An unknown owner's name cannot be checked, so it is not wanted.
	bool report = wanted_errno(err) && !repeat && (o || !comm_filter);
	// Remembered before reserving, so that a record the full ring buffer
	// dropped (and counted) is not then delivered by the second report.
	if (report && o && opening)
		o->failed = err;
	struct record *r = report ? reserve() : NULL;
	if (r) {
		r->err = err;
		r->op = OP_ASYNC;
		if (o) {
			r->pid_tgid = o->pid_tgid;
			r->cgroup = o->cgroup;
			__builtin_memcpy(r->comm, o->comm, COMM_LEN);
			if (dedup) {
				__u64 e = err;
				bpf_map_update_elem(&recent, &cookie, &e, BPF_ANY);
			}
		}

		__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
		__be16 dport = BPF_CORE_READ(sk, __sk_common.skc_dport);
		__builtin_memcpy(&r->sockaddr[0], &family, 2);
		__builtin_memcpy(&r->sockaddr[2], &dport, 2);
		if (family == AF_INET) {
			__be32 daddr = BPF_CORE_READ(sk, __sk_common.skc_daddr);
			__builtin_memcpy(&r->sockaddr[4], &daddr, 4);
		} else if (family == AF_INET6 && bpf_core_field_exists(sk->__sk_common.skc_v6_daddr)) {
			BPF_CORE_READ_INTO(&r->sockaddr[8], sk, __sk_common.skc_v6_daddr);
		}
		r->protocol = BPF_CORE_READ(sk, sk_protocol);
		if (bpf_core_field_exists(sk->__sk_common.skc_net.net))
			r->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	}

	// The socket has closed and its error is reported (or was, or its
	// error was taken before this report read it): the owner entry is
	// not needed any more (see sockwatch_owner).
	if (o && state == TCP_CLOSE)
		bpf_map_delete_elem(&owners, &cookie);
	if (r)
		bpf_ringbuf_submit(r, 0);
	return 0;
}

// fd_sock returns the socket open as fd in the current task, or NULL.
static __always_inline const struct sock *fd_sock(__u64 fd)
{
	struct task_struct *task = (void *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = NULL;
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return NULL;
	// The syscall failed with a network errno, so fd is a socket and
	// private_data its struct socket.
	struct socket *sock = BPF_CORE_READ(f, private_data);
	if (!sock)
		return NULL;
	return BPF_CORE_READ(sock, sk);
}

SEC("tp_btf/sys_exit")
int BPF_PROG(sockwatch_sys, struct pt_regs *regs, long ret)
{
	if (ret >= 0)
		return 0;
	__u64 err = -ret;
	if (!wanted_errno(err))
		return 0;

	// The syscall number and arguments, from the user's registers: at
	// sys_exit only the return value's register has been overwritten.
	__u64 nr, fd, arg1, arg4;
	struct pt_regs___x86 *x86 = (void *)regs;
	struct pt_regs___arm64 *arm64 = (void *)regs;
	if (bpf_core_field_exists(x86->orig_ax)) {
		// di, si, dx, r10, r8, r9; the number in orig_ax.
		nr = BPF_CORE_READ(x86, orig_ax);
		fd = BPF_CORE_READ(x86, di);
		arg1 = BPF_CORE_READ(x86, si);
		arg4 = BPF_CORE_READ(x86, r8);
	} else if (bpf_core_field_exists(arm64->syscallno)) {
		// x0..x5, x0 overwritten by the return value (kept in orig_x0).
		nr = (__u32)BPF_CORE_READ(arm64, syscallno);
		fd = BPF_CORE_READ(arm64, orig_x0);
		arg1 = BPF_CORE_READ(arm64, regs[1]);
		arg4 = BPF_CORE_READ(arm64, regs[4]);
	} else {
		return 0;
	}

	__u8 op;
	__u64 uaddr; // user pointer to the destination sockaddr, or 0
	if (nr == nr_connect) {
		op = OP_CONNECT;
		uaddr = arg1;
	} else if (nr == nr_sendto) {
		op = OP_SENDTO;
		uaddr = arg4;
	} else if (nr == nr_sendmsg) {
		op = OP_SENDMSG;
		uaddr = 0;
		// msg_name is the first field of struct msghdr.
		if (arg1 && bpf_probe_read_user(&uaddr, sizeof(uaddr), (void *)arg1))
			uaddr = 0;
	} else {
		return 0;
	}

	char comm[COMM_LEN] = {};
	bpf_get_current_comm(comm, sizeof(comm));
	if (comm_filter && !bpf_map_lookup_elem(&comms, comm))
		return 0;

	__u64 pid_tgid = bpf_get_current_pid_tgid();
	if (dedup && op == OP_CONNECT) {
		// The socket's cookie exists if the owner program saw it reach
		// SYN_SENT (bpf_get_socket_cookie), which every async report
		// the error program recorded in recent follows.
		const struct sock *sk = fd_sock(fd);
		__u64 cookie = sk ? cookie_of(sk) : 0;
		__u64 *prev = cookie ? bpf_map_lookup_elem(&recent, &cookie) : NULL;
		if (prev) {
			__u64 was = *prev;
			bpf_map_delete_elem(&recent, &cookie);
			if (was == err)
				return 0;
		}
	}

	// Only IPv4 and IPv6 are network errors: a connect to a dead local
	// daemon's Unix socket is not. The family comes from the sockaddr the
	// application passed, or from the socket itself when it passed none.
	__u16 family = 0;
	if (uaddr) {
		if (bpf_probe_read_user(&family, sizeof(family), (void *)uaddr))
			return 0;
	} else {
		// A send without a destination, on a connected socket.
		const struct sock *sk = fd_sock(fd);
		if (sk)
			family = BPF_CORE_READ(sk, __sk_common.skc_family);
	}
	if (family != AF_INET && family != AF_INET6)
		return 0;

	struct record *r = reserve();
	if (!r)
		return 0;
	r->err = err;
	r->op = op;
	r->pid_tgid = pid_tgid;
	r->cgroup = bpf_get_current_cgroup_id();
	__builtin_memcpy(r->comm, comm, COMM_LEN);
	struct task_struct *task = (void *)bpf_get_current_task();
	r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
	if (uaddr) {
		// A sockaddr_in only, for AF_INET: the application's buffer may
		// be 16 bytes long, and a read past its end could fault.
		if (family == AF_INET)
			bpf_probe_read_user(r->sockaddr, SOCKADDR_IN_LEN, (void *)uaddr);
		else
			bpf_probe_read_user(r->sockaddr, SOCKADDR_LEN, (void *)uaddr);
	}
	bpf_ringbuf_submit(r, 0);
	return 0;
}
