// SPDX-License-Identifier: GPL-2.0
/*
 * Loads the ebpf tier's kernel program (tracer.bpf.c, compiled at `make install` and embedded
 * here by `bpftool gen skeleton`) and prints one line per event, exactly as the bpftrace script
 * in ebpf.py does, so the Python reader has one format to parse.
 *
 * Why a hand-written loader rather than bpftrace: bpftrace compiles its script with LLVM at every
 * start (most of a second, more on a busy machine), and 0.17's --aot refuses the script. This
 * binary starts tracing in a few tens of milliseconds.
 *
 * Protocol with ebpf.py (the same as bpftrace's): "R\t" once every probe is attached, then the
 * event lines; SIGINT or SIGTERM ends it after what the ring buffer holds has been printed.
 * Errors are one line on stderr and a non-zero exit (the caller then falls back to bpftrace).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/resource.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <bpf/libbpf.h>
#include <linux/types.h>

#include "tracer.h"
#include "tracer.skel.h"

#define BTF_PATH "/sys/kernel/btf/vmlinux"

static volatile sig_atomic_t stopping;

static void on_signal(int sig)
{
	(void)sig;
	stopping = 1;
}

/* libbpf's messages (a verifier log is hundreds of lines) are kept, not printed: the caller
 * gets one line naming what failed and libbpf's last message; PROXYTRACE_EBPF_DEBUG=1 prints
 * them all. */
static char last_message[256];
static int debug;

static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list args)
{
	if (debug)
		return vfprintf(stderr, fmt, args);
	if (level == LIBBPF_DEBUG || level == LIBBPF_INFO)
		return 0;
	char line[sizeof(last_message)];
	vsnprintf(line, sizeof(line), fmt, args);
	line[strcspn(line, "\n")] = 0;
	if (strncmp(line, "libbpf: ", 8) == 0)  /* the verifier log's own lines have no prefix */
		memcpy(last_message, line, sizeof(line));
	return 0;
}

static void fail(const char *what, int err)
{
	if (last_message[0])
		fprintf(stderr, "proxytrace-ebpf: %s: %s (%s)\n", what, strerror(err), last_message + 8);
	else
		fprintf(stderr, "proxytrace-ebpf: %s: %s\n", what, strerror(err));
}

/*
 * The kernel types the program's CO-RE relocations need, cut from the kernel's BTF at build
 * time (`bpftool gen min_core_btf`, 2 KB instead of 5 MB): libbpf would otherwise parse the
 * whole of /sys/kernel/btf/vmlinux at every start, most of this loader's start-up. Used only
 * while the running kernel is the one it was cut from (kernel.id, `uname -r` and `uname -v` at
 * build time); after a kernel upgrade the full BTF is read as usual.
 */
static const char *small_btf(char *path, size_t len)
{
	char exe[PATH_MAX], id[512], want[sizeof(id)];
	struct utsname u;
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0 || uname(&u) != 0)
		return NULL;
	exe[n] = 0;
	char *slash = strrchr(exe, '/');
	if (!slash)
		return NULL;
	*slash = 0;
	snprintf(path, len, "%s/kernel.id", exe);
	FILE *f = fopen(path, "r");
	if (!f)
		return NULL;
	int ok = fgets(id, sizeof(id), f) != NULL;
	fclose(f);
	snprintf(want, sizeof(want), "%s %s\n", u.release, u.version);
	if (!ok || strcmp(id, want) != 0)
		return NULL;
	snprintf(path, len, "%s/vmlinux.min.btf", exe);
	return access(path, R_OK) == 0 ? path : NULL;
}

static const char *addr(char *buf, size_t len, int family, const __u8 *raw)
{
	if (!inet_ntop(family == AF_INET ? AF_INET : AF_INET6, raw, buf, (socklen_t)len))
		buf[0] = 0;
	return buf;
}

static int on_event(void *ctx, void *data, size_t size)
{
	struct event copy;  /* the ring buffer is mapped read-only here */
	struct event *e = &copy;
	char local[INET6_ADDRSTRLEN], remote[INET6_ADDRSTRLEN];
	(void)ctx;
	if (size < sizeof(copy))
		return 0;
	memcpy(&copy, data, sizeof(copy));
	e->comm[COMM_LEN - 1] = 0;
	e->str[STR_LEN - 1] = 0;
	switch (e->kind) {
	case 'S':
		printf("S\t%llu\t%d\t%d\t%d\t%u\t%d\t%s\t%d\t%s\t%d\t%s\n",
		       (unsigned long long)e->ns, (int)e->pid, (int)e->tid, (int)e->ppid, e->uid,
		       e->proto, addr(local, sizeof(local), e->family, e->laddr), e->lport,
		       addr(remote, sizeof(remote), e->family, e->raddr), e->rport, e->comm);
		break;
	case 'E':
		printf("E\t%llu\t%d\t%d\t%u\t%s\t%s\n", (unsigned long long)e->ns, (int)e->pid,
		       (int)e->ppid, e->uid, e->comm, e->str);
		break;
	case 'A':
		if (e->flags & FLAG_MORE)
			printf("A\t%llu\t%d\t%u\t...\n", (unsigned long long)e->ns, (int)e->pid, e->index);
		else
			printf("A\t%llu\t%d\t%u\t%s\n", (unsigned long long)e->ns, (int)e->pid, e->index,
			       e->str);
		break;
	case 'V':
		printf("V\t%llu\t%d\t%s\n", (unsigned long long)e->ns, (int)e->pid, e->str);
		break;
	case 'F':
		printf("F\t%llu\t%d\t%d\n", (unsigned long long)e->ns, (int)e->pid, (int)e->ppid);
		break;
	case 'X':
		printf("X\t%llu\t%d\n", (unsigned long long)e->ns, (int)e->pid);
		break;
	}
	return 0;
}

static unsigned long long lost_records(struct tracer_bpf *skel)
{
	int ncpu = libbpf_num_possible_cpus();
	unsigned long long total = 0;
	__u32 zero = 0;
	if (ncpu <= 0 || ncpu > 4096)
		return 0;
	__u64 counts[ncpu];
	if (bpf_map__lookup_elem(skel->maps.lost, &zero, sizeof(zero), counts,
				 sizeof(counts[0]) * ncpu, 0))
		return 0;
	for (int i = 0; i < ncpu; i++)
		total += counts[i];
	return total;
}

int main(void)
{
	struct tracer_bpf *skel = NULL;
	struct ring_buffer *rb = NULL;
	struct rlimit unlimited = { RLIM_INFINITY, RLIM_INFINITY };
	struct sigaction sa;
	int err;

	if (geteuid() != 0) {
		fprintf(stderr, "proxytrace-ebpf: needs root (it loads BPF programs)\n");
		return 2;
	}
	if (access(BTF_PATH, R_OK) != 0) {
		fprintf(stderr, "proxytrace-ebpf: the kernel has no BTF (%s is missing)\n", BTF_PATH);
		return 3;
	}
	const char *dbg = getenv("PROXYTRACE_EBPF_DEBUG");
	debug = dbg && dbg[0] && strcmp(dbg, "0") != 0;
	libbpf_set_print(print_libbpf);
	setrlimit(RLIMIT_MEMLOCK, &unlimited);  /* kernels before 5.11 count BPF memory there */

	/* no SA_RESTART: the poll below must return to see the flag */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	/* one write per poll round, not per line; flushed after each round */
	static char outbuf[1 << 16];
	setvbuf(stdout, outbuf, _IOFBF, sizeof(outbuf));

	char btf_path[PATH_MAX];
	LIBBPF_OPTS(bpf_object_open_opts, opts, .btf_custom_path = small_btf(btf_path, sizeof(btf_path)));
	skel = tracer_bpf__open_opts(&opts);
	if (!skel) {
		fail("cannot open the kernel program", errno);
		return 4;
	}
	err = tracer_bpf__load(skel);
	if (err) {
		fail("cannot load the kernel program", -err);
		tracer_bpf__destroy(skel);
		return 4;
	}
	err = tracer_bpf__attach(skel);
	if (err) {
		fail("cannot attach to the tracepoints", -err);
		tracer_bpf__destroy(skel);
		return 4;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.events), on_event, NULL, NULL);
	if (!rb) {
		fail("cannot open the ring buffer", errno);
		tracer_bpf__destroy(skel);
		return 4;
	}
	printf("R\t\n");
	fflush(stdout);

	while (!stopping) {
		err = ring_buffer__poll(rb, 200);
		if (err < 0 && err != -EINTR) {
			fprintf(stderr, "proxytrace-ebpf: reading the ring buffer: %s\n", strerror(-err));
			break;
		}
		if (fflush(stdout) != 0)
			break;  /* the reader has gone */
	}
	/* everything submitted before the signal is printed before the exit */
	ring_buffer__consume(rb);
	fflush(stdout);
	unsigned long long lost = lost_records(skel);
	if (lost)
		fprintf(stderr, "Lost %llu events\n", lost);
	ring_buffer__free(rb);
	tracer_bpf__destroy(skel);
	return 0;
}
