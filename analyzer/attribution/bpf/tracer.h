/* The record the kernel program (tracer.bpf.c) sends the loader (loader.c) for each event. */
#ifndef PROXYTRACE_TRACER_H
#define PROXYTRACE_TRACER_H

#define RINGBUF_BYTES (16 * 1024 * 1024)
#define COMM_LEN 16
/* bpftrace's str() with BPFTRACE_STRLEN=200 (ebpf.py's STRLEN): 199 bytes and the NUL */
#define STR_LEN 200
#define MAX_ARGS 32  /* argument strings read per exec (the rest becomes "...") */
#define MAX_ENV 256  /* environment entries looked at per exec */
#define FLAG_MORE 1  /* an 'A' record standing for the arguments not read */

#ifndef AF_INET
#define AF_INET 2
#define AF_INET6 10
#endif

/* kind: the line's first letter, as the bpftrace script prints it (S, E, A, V, F, X) */
struct event {
	__u64 ns;
	__u32 pid;
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 index;
	__u16 lport;
	__u16 rport;
	__u16 family;
	__u8 proto;
	__u8 flags;
	char kind;
	__u8 laddr[16];
	__u8 raddr[16];
	char comm[COMM_LEN];
	char str[STR_LEN];
};

#endif
