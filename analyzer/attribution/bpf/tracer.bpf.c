// SPDX-License-Identifier: GPL-2.0
/*
 * The ebpf tier's kernel program, compiled ahead of time (at `make install`) as a CO-RE object.
 *
 * Why this exists next to the bpftrace script in ebpf.py: bpftrace compiles its script with
 * LLVM at every start, which is most of the second a live session spends before it can trace.
 * This file is the same program written once in C; loader.c loads it with libbpf (no compiler
 * at run time) and prints exactly the lines the bpftrace script prints, so ebpf.py parses one
 * format. Keep the two in step: a probe or a field changed in one is changed in the other (the
 * tests run both on the same workload and compare the records).
 *
 * Each event is one ring-buffer record; the loader turns it into one line. Field meanings and
 * the reasons behind each probe are in ebpf.py's docstring.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "tracer.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, RINGBUF_BYTES);
} events SEC(".maps");

/* records the ring buffer had no room for (the loader reports them, as bpftrace does) */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* fd + 1 and the destination of a send, saved at entry (bpftrace's @fd and @to) */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} fds SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} tos SEC(".maps");

/* one line per socket and peer (bpftrace's @once and @udp). LRU maps: when full, the oldest
 * entries go (a socket may then be printed again); bpftrace's full maps refuse new entries, so
 * every later send of a new socket is printed. Either way a record may repeat, none is lost. */
struct once_key {
	__u64 sk;
	__u32 a;
	__u32 b;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct once_key);
	__type(value, __u8);
} once SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct once_key);
	__type(value, __u8);
} udp SEC(".maps");

/* the owner of a socket at SYN_SENT (ESTABLISHED runs in softirq context: bpftrace's @syn) */
struct syn_owner {
	__u32 pid;
	__u32 tid;
	__u32 uid;
	__u32 ppid;
	char comm[COMM_LEN];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct syn_owner);
} syn SEC(".maps");

static __always_inline struct event *reserve(char kind, __u64 ns)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		__u32 zero = 0;
		__u64 *n = bpf_map_lookup_elem(&lost, &zero);
		if (n)
			*n += 1;
		return 0;
	}
	e->kind = kind;
	e->ns = ns;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->flags = 0;
	return e;
}

/* Socket and exec records wake the loader; the argument, environment, fork and exit records
 * before them wait in the buffer for that wake-up (or the loader's next poll, 0.2 s at most):
 * a wake-up per record cost a context switch each, twenty or so per process started. The sync
 * that ends a session is a socket record, so everything before it is read by then. */
static __always_inline void submit(struct event *e)
{
	__u64 flags = (e->kind == 'S' || e->kind == 'E') ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	bpf_ringbuf_submit(e, flags);
}

static __always_inline __u32 parent_tgid(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	return BPF_CORE_READ(task, real_parent, tgid);
}

static __always_inline void fill_owner(struct event *e, __u64 pid_tgid)
{
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)bpf_get_current_uid_gid();
	e->ppid = parent_tgid();
	bpf_get_current_comm(e->comm, sizeof(e->comm));
}

/* -- sockets: connect/sendto/sendmsg/sendmmsg --------------------------------------------- */

static __always_inline int save_fd(struct trace_event_raw_sys_enter *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u64 fd = (__u64)(int)ctx->args[0] + 1;
	bpf_map_update_elem(&fds, &tid, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int enter_connect(struct trace_event_raw_sys_enter *ctx) { return save_fd(ctx); }

SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int enter_sendmmsg(struct trace_event_raw_sys_enter *ctx) { return save_fd(ctx); }

SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	save_fd(ctx);
	__u64 addr = ctx->args[4];
	if (addr) {
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		bpf_map_update_elem(&tos, &tid, &addr, BPF_ANY);
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	save_fd(ctx);
	struct user_msghdr *msg = (struct user_msghdr *)ctx->args[1];
	if (msg) {
		__u64 name = 0;
		bpf_probe_read_user(&name, sizeof(name), &msg->msg_name);
		__u32 tid = (__u32)bpf_get_current_pid_tgid();
		bpf_map_update_elem(&tos, &tid, &name, BPF_ANY);
	}
	return 0;
}

static __always_inline void put_sock(struct sock *sk, __u64 pid_tgid, __u16 proto, __u16 fam,
				     __u16 dport)
{
	struct event *e = reserve('S', bpf_ktime_get_ns());
	if (!e)
		return;
	fill_owner(e, pid_tgid);
	e->proto = proto;
	e->family = fam;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = dport;
	if (fam == AF_INET) {
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		bpf_core_read(e->raddr, 4, &sk->__sk_common.skc_daddr);
	} else {
		bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		bpf_core_read(e->raddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
	submit(e);
}

/* an unconnected UDP socket: the peer is the call's destination (user memory) */
/* The record of a UDP socket's first send to a destination (key: socket, port, address), or
 * NULL when that destination was already reported or the ring buffer is full. */
static __always_inline struct event *udp_dest_event(struct sock *sk, __u64 pid_tgid,
						    struct once_key *key, __u16 family, __u16 port)
{
	__u8 one = 1;
	if (bpf_map_lookup_elem(&udp, key))
		return NULL;
	bpf_map_update_elem(&udp, key, &one, BPF_ANY);
	struct event *e = reserve('S', bpf_ktime_get_ns());
	if (!e)
		return NULL;
	fill_owner(e, pid_tgid);
	e->proto = 17;
	e->family = family;
	e->lport = BPF_CORE_READ(sk, __sk_common.skc_num);
	e->rport = bpf_ntohs(port);
	return e;
}

static __always_inline void put_udp_dest(struct sock *sk, __u64 pid_tgid, __u64 to)
{
	struct sockaddr_in6 sa = {};
	if (bpf_probe_read_user(&sa, sizeof(struct sockaddr_in), (void *)to))
		__builtin_memset(&sa, 0, sizeof(sa));
	struct once_key key = { .sk = (__u64)sk };
	struct event *e;
	if (sa.sin6_family == AF_INET) {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&sa;
		key.a = s4->sin_port;
		key.b = s4->sin_addr.s_addr;
		e = udp_dest_event(sk, pid_tgid, &key, AF_INET, s4->sin_port);
		if (!e)
			return;
		bpf_core_read(e->laddr, 4, &sk->__sk_common.skc_rcv_saddr);
		__builtin_memcpy(e->raddr, &s4->sin_addr.s_addr, 4);
		submit(e);
		return;
	}
	if (bpf_probe_read_user(&sa, sizeof(sa), (void *)to))
		return;
	if (sa.sin6_family != AF_INET6)
		return;
	__u32 *a = sa.sin6_addr.in6_u.u6_addr32;
	key.a = sa.sin6_port;
	key.b = a[0] ^ a[1] ^ a[2] ^ a[3];
	e = udp_dest_event(sk, pid_tgid, &key, AF_INET6, sa.sin6_port);
	if (!e)
		return;
	bpf_core_read(e->laddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
	__builtin_memcpy(e->raddr, sa.sin6_addr.in6_u.u6_addr8, 16);
	submit(e);
}

/* after the call the kernel has bound the local port: read the socket behind the fd */
static __always_inline int on_exit_send(void)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)pid_tgid;
	__u64 *saved = bpf_map_lookup_elem(&fds, &tid);
	if (!saved || *saved == 0)
		return 0;
	__u64 fd = *saved - 1;
	bpf_map_delete_elem(&fds, &tid);
	__u64 to = 0;
	__u64 *t = bpf_map_lookup_elem(&tos, &tid);
	if (t) {
		to = *t;
		bpf_map_delete_elem(&tos, &tid);
	}

	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct file **fdarr = BPF_CORE_READ(task, files, fdt, fd);
	struct file *file = 0;
	bpf_probe_read_kernel(&file, sizeof(file), fdarr + fd);
	struct socket *sock = (struct socket *)BPF_CORE_READ(file, private_data);
	struct sock *sk = BPF_CORE_READ(sock, sk);
	/* 16 bits: IPPROTO_MPTCP (262) must not pass for TCP (6) */
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	__u16 fam = BPF_CORE_READ(sk, __sk_common.skc_family);
	__u16 dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (fam != AF_INET && fam != AF_INET6)
		return 0;
	if ((proto == 6 || proto == 17) && dport != 0) {
		struct once_key key = { .sk = (__u64)sk, .a = dport,
					.b = BPF_CORE_READ(sk, __sk_common.skc_num) };
		if (!bpf_map_lookup_elem(&once, &key)) {
			__u8 one = 1;
			bpf_map_update_elem(&once, &key, &one, BPF_ANY);
			put_sock(sk, pid_tgid, proto, fam, dport);
		}
	}
	if (proto == 17 && dport == 0 && to != 0)
		put_udp_dest(sk, pid_tgid, to);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int exit_connect(void *ctx) { return on_exit_send(); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(void *ctx) { return on_exit_send(); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int exit_sendmsg(void *ctx) { return on_exit_send(); }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int exit_sendmmsg(void *ctx) { return on_exit_send(); }

/* TCP connects made without connect(2) (Fast Open through sendto) */
SEC("tracepoint/sock/inet_sock_set_state")
int set_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	if (ctx->protocol != 6)
		return 0;
	__u64 skaddr = (__u64)ctx->skaddr;
	if (ctx->newstate == TCP_SYN_SENT) {
		__u64 pid_tgid = bpf_get_current_pid_tgid();
		struct syn_owner o = {
			.pid = pid_tgid >> 32,
			.tid = (__u32)pid_tgid,
			.uid = (__u32)bpf_get_current_uid_gid(),
			.ppid = parent_tgid(),
		};
		bpf_get_current_comm(o.comm, sizeof(o.comm));
		bpf_map_update_elem(&syn, &skaddr, &o, BPF_ANY);
		return 0;
	}
	if (ctx->oldstate != TCP_SYN_SENT)
		return 0;
	struct syn_owner *o = bpf_map_lookup_elem(&syn, &skaddr);
	if (!o || o->pid == 0)
		return 0;
	struct event *e = reserve('S', bpf_ktime_get_ns());
	if (e) {
		e->pid = o->pid;
		e->tid = o->tid;
		e->uid = o->uid;
		e->ppid = o->ppid;
		__builtin_memcpy(e->comm, o->comm, sizeof(e->comm));
		e->proto = 6;
		/* the context's arrays are copied with a helper: the verifier refuses a memcpy
		 * through a ctx pointer moved by an offset */
		e->lport = ctx->sport;
		e->rport = ctx->dport;
		if (ctx->family == AF_INET) {
			e->family = AF_INET;
			bpf_probe_read_kernel(e->laddr, 4, ctx->saddr);
			bpf_probe_read_kernel(e->raddr, 4, ctx->daddr);
		} else {
			e->family = AF_INET6;
			bpf_probe_read_kernel(e->laddr, 16, ctx->saddr_v6);
			bpf_probe_read_kernel(e->raddr, 16, ctx->daddr_v6);
		}
		submit(e);
	}
	bpf_map_delete_elem(&syn, &skaddr);
	return 0;
}

/* -- processes ------------------------------------------------------------------------------ */

/* argv and the environment at execve entry (user memory, readable until the exec succeeds).
 * The loops run in bpf_loop (kernel 5.17 and later): the verifier checks each body once instead
 * of every iteration of a bounded loop, which took it 30 ms per program at every start. */
struct exec_walk {
	const char *const *vec;
	__u64 ns;
	__u32 count; /* argument pointers read */
};

static long put_arg(__u32 i, struct exec_walk *w)
{
	const char *p = 0;
	bpf_probe_read_user(&p, sizeof(p), &w->vec[i]);
	if (!p)
		return 1;
	w->count = i + 1;
	struct event *e = reserve('A', w->ns);
	if (!e)
		return 0;
	e->index = i;
	if (bpf_probe_read_user_str(e->str, sizeof(e->str), p) < 0)
		e->str[0] = 0;
	submit(e);
	return 0;
}

static long put_env(__u32 i, struct exec_walk *w)
{
	const char *p = 0;
	bpf_probe_read_user(&p, sizeof(p), &w->vec[i]);
	if (!p)
		return 1;
	/* first letters of the recorded names: a cheap filter; Python keeps the exact set */
	char c = 0;
	bpf_probe_read_user(&c, 1, p);
	if (c != 'G' && c != 'H' && c != 'h' && c != 'N' && c != 'n' && c != 'A' && c != 'a' &&
	    c != 'S' && c != 'X')
		return 0;
	struct event *e = reserve('V', w->ns);
	if (!e)
		return 0;
	if (bpf_probe_read_user_str(e->str, sizeof(e->str), p) < 0)
		e->str[0] = 0;
	submit(e);
	return 0;
}

static __always_inline int on_enter_exec(const char *const *argv, const char *const *envp)
{
	struct exec_walk w = { .vec = argv, .ns = bpf_ktime_get_ns() };

	bpf_loop(MAX_ARGS, put_arg, &w, 0);
	if (w.count == MAX_ARGS) {
		const char *p = 0;
		bpf_probe_read_user(&p, sizeof(p), &argv[MAX_ARGS]);
		struct event *e = p ? reserve('A', w.ns) : 0;
		if (e) {
			e->index = MAX_ARGS;
			e->flags = FLAG_MORE;
			submit(e);
		}
	}
	w.vec = envp;
	bpf_loop(MAX_ENV, put_env, &w, 0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_execve")
int enter_execve(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter_exec((const char *const *)ctx->args[1], (const char *const *)ctx->args[2]);
}

SEC("tracepoint/syscalls/sys_enter_execveat")
int enter_execveat(struct trace_event_raw_sys_enter *ctx)
{
	return on_enter_exec((const char *const *)ctx->args[2], (const char *const *)ctx->args[3]);
}

/* a new process (CLONE_THREAD makes a thread); CLONE_PARENT a sibling */
SEC("tracepoint/task/task_newtask")
int newtask(struct trace_event_raw_task_newtask *ctx)
{
	__u64 flags = ctx->clone_flags;
	if (flags & 0x10000)
		return 0;
	struct event *e = reserve('F', bpf_ktime_get_ns());
	if (!e)
		return 0;
	__u32 self = e->pid;
	e->pid = ctx->pid;
	e->ppid = (flags & 0x8000) ? parent_tgid() : self;
	submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exit")
int process_exit(struct trace_event_raw_sched_process_exit *ctx)
{
	if (!ctx->group_dead)
		return 0;
	struct event *e = reserve('X', bpf_ktime_get_ns());
	if (e)
		submit(e);
	return 0;
}

SEC("tracepoint/sched/sched_process_exec")
int process_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	struct event *e = reserve('E', bpf_ktime_get_ns());
	if (!e)
		return 0;
	fill_owner(e, bpf_get_current_pid_tgid());
	unsigned int off = ctx->__data_loc_filename & 0xFFFF;
	if (bpf_probe_read_kernel_str(e->str, sizeof(e->str), (void *)ctx + off) < 0)
		e->str[0] = 0;
	submit(e);
	return 0;
}
