/* SPDX-License-Identifier: (MIT OR GPL-2.0) */
/*
 * vmlinux.h for sockwatch.c: the kernel types the programs use, trimmed
 * from `bpftool btf dump file /sys/kernel/btf/vmlinux format c` (Linux
 * 6.18, amd64). Every type and member below is spelled as bpftool printed
 * it; members the programs do not read are left out. That is safe because
 * every struct is marked preserve_access_index: clang records each access
 * as a CO-RE relocation by member name, and the loader (cilium/ebpf)
 * resolves it against the running kernel's BTF, so the offsets here are
 * never used as such. A member that is missing or of another size in the
 * running kernel makes loading fail with the member's name.
 *
 * Why trimmed, not the whole dump: the whole dump is 2.8 MB and 134,000
 * lines, changes with every kernel build, and would have to be regenerated
 * in lock-step with the objects; this file is reviewable, and
 * the objects depend only on it, sockwatch.c and the clang version.
 * To add a type, copy it from a fresh dump and keep only what is read.
 */
#ifndef __VMLINUX_H__
#define __VMLINUX_H__

typedef signed char __s8;
typedef unsigned char __u8;
typedef short int __s16;
typedef short unsigned int __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long int __s64;
typedef long long unsigned int __u64;
typedef __u8 u8;
typedef __u16 u16;
typedef __s32 s32;
typedef __u32 u32;
typedef __s64 s64;
typedef __u64 u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;

enum {
	false = 0,
	true = 1,
};

enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_RINGBUF = 27,
};

enum {
	BPF_ANY = 0,
};

enum {
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_CLOSE = 7,
};

#pragma clang attribute push (__attribute__((preserve_access_index)), apply_to = record)

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be16 u6_addr16[8];
		__be32 u6_addr32[4];
	} in6_u;
};

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

typedef struct {
	s64 counter;
} atomic64_t;

struct sock_common {
	union {
		struct {
			__be32 skc_daddr;
			__be32 skc_rcv_saddr;
		};
	};
	union {
		struct {
			__be16 skc_dport;
			__u16 skc_num;
		};
	};
	short unsigned int skc_family;
	volatile unsigned char skc_state;
	possible_net_t skc_net;
	struct in6_addr skc_v6_daddr;
	atomic64_t skc_cookie;
	union {
		long unsigned int skc_flags;
	};
};

struct sock {
	struct sock_common __sk_common;
	int sk_err;
	u16 sk_protocol;
};

struct socket {
	struct sock *sk;
};

struct file {
	void *private_data;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

struct nsproxy {
	struct net *net_ns;
};

struct task_struct {
	struct files_struct *files;
	struct nsproxy *nsproxy;
};

/*
 * struct pt_regs differs per architecture. The programs are compiled once
 * for every architecture, so each layout is a CO-RE flavour (the part after
 * "___" is ignored when matching against the kernel's struct pt_regs) and
 * the program asks, with bpf_core_field_exists, which one the kernel has.
 */
struct pt_regs___x86 {
	long unsigned int r8;
	long unsigned int si;
	long unsigned int di;
	long unsigned int orig_ax;
};

struct pt_regs___arm64 {
	union {
		struct {
			u64 regs[31];
		};
	};
	u64 orig_x0;
	s32 syscallno;
};

#pragma clang attribute pop

#endif /* __VMLINUX_H__ */
