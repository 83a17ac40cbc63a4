"""The ``ebpf`` tier: a BPF program on kernel tracepoints, system-wide, short-lived sockets included.

The program is written twice, with the same output: the bpftrace script below, and the same
probes in C (``bpf/tracer.bpf.c``) compiled ahead of time at install, loaded by a small libbpf
loader that prints the script's lines (no compiler at run time: ebpf_backend.py says why and
which one runs).

Only tracepoints are used (kprobes are not traceable on every kernel we run on):
- ``syscalls:sys_exit_connect`` / ``sys_exit_sendto`` / ``sys_exit_sendmsg`` / ``sys_exit_sendmmsg``
  read the socket behind the fd after the call, when the kernel has bound the local port: this
  gives the full 4-tuple for TCP connects and for UDP DNS (the Go resolver connects a UDP socket
  and then writes; glibc connects and sends). For ``sendto``/``sendmsg`` with a destination on
  an unconnected UDP socket, the destination saved at entry (user memory) is the peer.
- ``sock:inet_sock_set_state`` SYN_SENT -> ESTABLISHED completes TCP connects made without
  connect(2) (TCP Fast Open through sendto), with the pid remembered at SYN_SENT (the
  ESTABLISHED transition runs in softirq context, where the current task is not the owner).
- ``sched:sched_process_exec`` gives each new program, its parent and uid; its argument vector
  and the Go-relevant part of its environment are read from user memory at
  ``syscalls:sys_enter_execve`` / ``sys_enter_execveat`` (``A`` and ``V`` lines, joined to the
  exec by pid and time).
  The environment is read in the kernel program, not from /proc/PID/environ afterwards: a
  program may exit, or exec again (a shell running its last command in place), before a reader
  thread gets to /proc, and the command line would then be the next program's. The kernel keeps
  variables whose first letter can start a recorded name; Python keeps the exact set.
- ``task:task_newtask`` (a new process, not a thread) and ``sched:sched_process_exit`` (the
  whole group) give forks and exits. The tier's process table keeps every image in time order,
  so each ancestor is known as it was when a child connected, even when the parent execs or
  exits right after (the parent pid itself is read at the connect); an exit stops a pid from
  being named after the ended process when the pid comes back without a fork seen.
Processes already running when tracing starts are read from /proc once, at start.
Each line bpftrace (or the loader) prints is parsed by ``parse_line`` (a pure function);
``fold_events`` turns the events, in kernel time order, into records.
"""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..base.errors import ParseError
from ..base.model import recorded_env
from . import ebpf_backend, tracefs_view
from .joiner import SocketAttributor
from .procfs import process_record, process_table
from .records import ProcessRecord, SocketRecord, comm_of

MAX_ARGS = 32   # argument strings read per exec (the rest becomes "...")
MAX_ENV = 256   # environment entries looked at per exec
# bpftrace cuts each string at BPFTRACE_STRLEN bytes (64 by default, 200 at most in 0.17)
STRLEN = 200
# First letters of the recorded names (GO*, HTTP(S)_PROXY, NO_PROXY, ALL_PROXY and lower case,
# SSL_CERT_*, HOME, XDG_CONFIG_HOME): a cheap filter in the kernel, the exact one in Python.
_FIRST_LETTERS = " || ".join(f"$c == {ord(ch)}" for ch in "GHhNnAaSX")

_SOCK_FMT = r'"S\t%llu\t%d\t%d\t%d\t%d\t%d\t%s\t%d\t%s\t%d\t%s\n"'

# One line per event, tab-separated, the free-form field (comm or file name) last.
SCRIPT = (
    r'BEGIN { printf("R\t\n"); }' "\n"
    "tracepoint:syscalls:sys_enter_connect, tracepoint:syscalls:sys_enter_sendto,\n"
    "tracepoint:syscalls:sys_enter_sendmsg, tracepoint:syscalls:sys_enter_sendmmsg\n"
    "{ @fd[tid] = args->fd + 1; }\n"
    # the destination of a send on an unconnected socket (user memory, read at exit)
    "tracepoint:syscalls:sys_enter_sendto /args->addr != 0/ { @to[tid] = (uint64)args->addr; }\n"
    "tracepoint:syscalls:sys_enter_sendmsg /args->msg != 0/ {\n"
    "  @to[tid] = (uint64)((struct user_msghdr *)uptr(args->msg))->msg_name; }\n"
    "tracepoint:syscalls:sys_exit_connect, tracepoint:syscalls:sys_exit_sendto,\n"
    "tracepoint:syscalls:sys_exit_sendmsg, tracepoint:syscalls:sys_exit_sendmmsg\n"
    "/@fd[tid]/ {\n"
    "  $fd = @fd[tid] - 1; delete(@fd[tid]); $to = @to[tid]; delete(@to[tid]);\n"
    "  $file = *(((struct task_struct *)curtask)->files->fdt->fd + $fd);\n"
    "  $sk = ((struct socket *)$file->private_data)->sk;\n"
    "  $proto = $sk->sk_protocol; $fam = $sk->__sk_common.skc_family;\n"
    "  $dport = bswap($sk->__sk_common.skc_dport);\n"
    "  if (($proto == 6 || $proto == 17) && $dport != 0 && ($fam == 2 || $fam == 10)) {\n"
    "    $ppid = ((struct task_struct *)curtask)->real_parent->tgid;\n"
    "    if (@once[$sk, $dport, $sk->__sk_common.skc_num] == 0) {\n"
    "      @once[$sk, $dport, $sk->__sk_common.skc_num] = 1;\n"
    "      if ($fam == 2) {\n"
    f"        printf({_SOCK_FMT}, nsecs, pid, tid, $ppid, uid, $proto,\n"
    "          ntop(2, $sk->__sk_common.skc_rcv_saddr), $sk->__sk_common.skc_num,\n"
    "          ntop(2, $sk->__sk_common.skc_daddr), $dport, comm);\n"
    "      } else {\n"
    f"        printf({_SOCK_FMT}, nsecs, pid, tid, $ppid, uid, $proto,\n"
    "          ntop(10, $sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8),\n"
    "          $sk->__sk_common.skc_num,\n"
    "          ntop(10, $sk->__sk_common.skc_v6_daddr.in6_u.u6_addr8), $dport, comm);\n"
    "      }\n"
    "    }\n"
    "  }\n"
    # an unconnected UDP socket (sendto/sendmsg with an address): the peer is the call's
    # destination, the local port the one the kernel bound; the local address stays wildcard
    "  if ($proto == 17 && $dport == 0 && $to != 0 && ($fam == 2 || $fam == 10)) {\n"
    "    $sa = (struct sockaddr_in *)uptr($to);\n"
    "    $ppid = ((struct task_struct *)curtask)->real_parent->tgid;\n"
    "    if ($sa->sin_family == 2 && @udp[$sk, $sa->sin_port, $sa->sin_addr.s_addr] == 0) {\n"
    "      @udp[$sk, $sa->sin_port, $sa->sin_addr.s_addr] = 1;\n"
    f"      printf({_SOCK_FMT}, nsecs, pid, tid, $ppid, uid, 17,\n"
    "        ntop(2, $sk->__sk_common.skc_rcv_saddr), $sk->__sk_common.skc_num,\n"
    "        ntop(2, $sa->sin_addr.s_addr), bswap($sa->sin_port), comm);\n"
    "    }\n"
    "    if ($sa->sin_family == 10) {\n"
    "      $s6 = (struct sockaddr_in6 *)uptr($to);\n"
    "      $a = $s6->sin6_addr.in6_u.u6_addr32;\n"
    "      if (@udp[$sk, $s6->sin6_port, $a[0] ^ $a[1] ^ $a[2] ^ $a[3]] == 0) {\n"
    "        @udp[$sk, $s6->sin6_port, $a[0] ^ $a[1] ^ $a[2] ^ $a[3]] = 1;\n"
    f"        printf({_SOCK_FMT}, nsecs, pid, tid, $ppid, uid, 17,\n"
    "          ntop(10, $sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8),\n"
    "          $sk->__sk_common.skc_num, ntop(10, $s6->sin6_addr.in6_u.u6_addr8),\n"
    "          bswap($s6->sin6_port), comm);\n"
    "      }\n"
    "    }\n"
    "  }\n"
    "}\n"
    "tracepoint:sock:inet_sock_set_state /args->protocol == 6 && args->newstate == 2/\n"
    "{ @syn[args->skaddr] = (pid, tid, comm, uid, ((struct task_struct *)curtask)->real_parent->tgid); }\n"
    "tracepoint:sock:inet_sock_set_state\n"
    "/args->protocol == 6 && args->oldstate == 2 && @syn[args->skaddr].0 != 0/ {\n"
    "  $o = @syn[args->skaddr]; delete(@syn[args->skaddr]);\n"
    "  if (args->family == 2) {\n"
    f"    printf({_SOCK_FMT}, nsecs, $o.0, $o.1, $o.4, $o.3, 6, ntop(2, args->saddr), args->sport,\n"
    "      ntop(2, args->daddr), args->dport, $o.2);\n"
    "  } else {\n"
    f"    printf({_SOCK_FMT}, nsecs, $o.0, $o.1, $o.4, $o.3, 6, ntop(10, args->saddr_v6),\n"
    "      args->sport, ntop(10, args->daddr_v6), args->dport, $o.2);\n"
    "  }\n"
    "}\n"
    # argv and the environment at execve entry (user memory, readable until the exec succeeds)
    "tracepoint:syscalls:sys_enter_execve, tracepoint:syscalls:sys_enter_execveat {\n"
    "  $ns = nsecs; $i = 0;\n"
    f"  while ($i < {MAX_ARGS}) {{\n"
    "    $a = *(args->argv + $i); if ($a == 0) { break; }\n"
    r'    printf("A\t%llu\t%d\t%d\t%s\n", $ns, pid, $i, str($a));'
    "\n    $i++;\n  }\n"
    f"  if ($i == {MAX_ARGS} && *(args->argv + $i) != 0) {{\n"
    r'    printf("A\t%llu\t%d\t%d\t...\n", $ns, pid, $i); }'
    "\n  $j = 0;\n"
    f"  while ($j < {MAX_ENV}) {{\n"
    "    $e = *(args->envp + $j); if ($e == 0) { break; }\n"
    "    $c = *(uint8 *)uptr($e);\n"
    f"    if ({_FIRST_LETTERS}) {{\n"
    r'      printf("V\t%llu\t%d\t%s\n", $ns, pid, str($e)); }'
    "\n    $j++;\n  }\n}\n"
    # a new process (CLONE_THREAD 0x10000 makes a thread); CLONE_PARENT (0x8000) a sibling
    "tracepoint:task:task_newtask /(args->clone_flags & 0x10000) == 0/ {\n"
    r'  printf("F\t%llu\t%d\t%d\n", nsecs, args->pid,'
    "\n    (args->clone_flags & 0x8000) ? ((struct task_struct *)curtask)->real_parent->tgid : pid);\n"
    "}\n"
    "tracepoint:sched:sched_process_exit /args->group_dead/ {\n"
    r'  printf("X\t%llu\t%d\n", nsecs, pid);'
    "\n}\n"
    "tracepoint:sched:sched_process_exec {\n"
    r'  printf("E\t%llu\t%d\t%d\t%d\t%s\t%s\n", nsecs, pid,'
    "\n    ((struct task_struct *)curtask)->real_parent->tgid, uid, comm, str(args->filename));\n"
    "}\n"
    "END { clear(@fd); clear(@to); clear(@syn); clear(@once); clear(@udp); }\n"
)

_PROTO = {6: "tcp", 17: "udp"}


@dataclass(frozen=True, slots=True)
class ExecEvent:
    ns: int
    pid: int
    ppid: int
    uid: int
    comm: str
    filename: str


@dataclass(frozen=True, slots=True)
class ArgEvent:
    """One argument of an execve, stamped with the time the call was entered."""

    ns: int
    pid: int
    index: int
    value: str


@dataclass(frozen=True, slots=True)
class EnvEvent:
    """One ``NAME=VALUE`` of an execve's environment (only names the kernel filter let through)."""

    ns: int
    pid: int
    entry: str


@dataclass(frozen=True, slots=True)
class ForkEvent:
    ns: int
    pid: int
    ppid: int


@dataclass(frozen=True, slots=True)
class ExitEvent:
    ns: int
    pid: int


@dataclass(frozen=True, slots=True)
class SockEvent:
    ns: int
    pid: int
    tid: int
    ppid: int
    uid: int
    transport: str
    local: str
    local_port: int
    remote: str
    remote_port: int
    comm: str


Event = SockEvent | ExecEvent | ArgEvent | EnvEvent | ForkEvent | ExitEvent


def _ints(parts: list[str], kind: str, line: str) -> list[int]:
    try:
        return [int(p) for p in parts]
    except ValueError:
        raise ParseError(f"{kind} event with a non-numeric field: {line[:80]!r}") from None


def _split(line: str, kind: str, n: int) -> list[str]:
    parts = line.split("\t", n - 1)
    if len(parts) != n:
        raise ParseError(f"{kind} event with {len(parts)} fields: {line[:80]!r}")
    return parts


def parse_line(line: str) -> Event | None:
    """One line of the script's output; None for bpftrace's own chatter (banner, warnings)."""
    line = line.rstrip("\n")
    if line.startswith("S\t"):
        parts = _split(line, "socket", 12)
        ns, pid, tid, ppid, uid, proto = _ints(parts[1:7], "socket", line)
        lport, rport = _ints([parts[8], parts[10]], "socket", line)
        if proto not in _PROTO:
            raise ParseError(f"socket event with protocol {proto}")
        return SockEvent(ns, pid, tid, ppid, uid, _PROTO[proto], parts[7], lport, parts[9], rport,
                         parts[11])
    if line.startswith("E\t"):
        parts = _split(line, "exec", 7)
        ns, pid, ppid, uid = _ints(parts[1:5], "exec", line)
        return ExecEvent(ns, pid, ppid, uid, parts[5], parts[6])
    if line.startswith("A\t"):
        parts = _split(line, "argument", 5)
        ns, pid, index = _ints(parts[1:4], "argument", line)
        return ArgEvent(ns, pid, index, parts[4])
    if line.startswith("V\t"):
        parts = _split(line, "environment", 4)
        ns, pid = _ints(parts[1:3], "environment", line)
        return EnvEvent(ns, pid, parts[3])
    if line.startswith("F\t"):
        ns, pid, ppid = _ints(_split(line, "fork", 4)[1:], "fork", line)
        return ForkEvent(ns, pid, ppid)
    if line.startswith("X\t"):
        ns, pid = _ints(_split(line, "exit", 3)[1:], "exit", line)
        return ExitEvent(ns, pid)
    return None


def parse_output(text: str, clock_offset: float = 0.0) -> tuple[list[SocketRecord], list[ProcessRecord]]:
    """All records in a saved bpftrace output; ``clock_offset`` turns kernel ns into epoch s."""
    events = [ev for ev in (parse_line(line) for line in text.splitlines()) if ev is not None]
    return fold_events(events, clock_offset)


def fold_events(events: Iterable[Event], clock_offset: float) -> tuple[list[SocketRecord], list[ProcessRecord]]:
    """Socket and process records from all events of a trace, in any order."""
    folder = EventFolder(clock_offset)
    folder.feed(sorted(events, key=lambda e: e.ns))
    return folder.sockets, folder.processes


class EventFolder:
    """Turns events, fed in kernel time order, into records. Per-CPU buffers reach bpftrace out
    of order, so a reader sorts what it has and feeds only events older than a window. Each exec
    takes the argv and environment of the execve its pid entered last before it (a failed
    execve, a PATH search, leaves lines no exec claims; they are dropped with the next entry)."""

    def __init__(self, clock_offset: float) -> None:
        self.offset = clock_offset
        self.sockets: list[SocketRecord] = []
        self.processes: list[ProcessRecord] = []
        self._args: dict[int, tuple[int, dict[int, str]]] = {}  # pid -> (entry ns, argv)
        self._envs: dict[int, tuple[int, list[str]]] = {}

    def feed(self, events: Iterable[Event]) -> None:
        for ev in events:
            if isinstance(ev, ArgEvent):
                if self._args.get(ev.pid, (None,))[0] != ev.ns:
                    self._args[ev.pid] = (ev.ns, {})
                    self._envs[ev.pid] = (ev.ns, [])
                self._args[ev.pid][1][ev.index] = ev.value
            elif isinstance(ev, EnvEvent):
                if self._envs.get(ev.pid, (None,))[0] != ev.ns:
                    self._envs[ev.pid] = (ev.ns, [])
                self._envs[ev.pid][1].append(ev.entry)
            elif isinstance(ev, ExecEvent):
                self.processes.append(self._exec(ev))
            elif isinstance(ev, ForkEvent):
                self.processes.append(ProcessRecord(pid=ev.pid, ppid=ev.ppid,
                                                    ts=ev.ns / 1e9 + self.offset, forked=True))
            elif isinstance(ev, ExitEvent):
                self.processes.append(ProcessRecord(pid=ev.pid, ts=ev.ns / 1e9 + self.offset,
                                                    exited=True))
            elif isinstance(ev, SockEvent):
                sock, proc = to_records(ev, self.offset)
                self.sockets.append(sock)
                self.processes.append(proc)

    def _exec(self, ev: ExecEvent) -> ProcessRecord:
        argv = self._args.pop(ev.pid, None)
        env = self._envs.pop(ev.pid, None)
        cmdline = " ".join(_marked(argv[1][i]) for i in sorted(argv[1])) if argv else None
        pairs = [tuple(_marked(e).split("=", 1)) for e in env[1] if "=" in e] if env else []
        return ProcessRecord(pid=ev.pid, ppid=ev.ppid, comm=ev.comm or comm_of(ev.filename),
                             exe=ev.filename, uid=ev.uid, cmdline=cmdline or None,
                             ts=ev.ns / 1e9 + self.offset,
                             env=recorded_env(pairs) if argv or env else None)  # type: ignore[arg-type]

    def take(self) -> tuple[list[SocketRecord], list[ProcessRecord]]:
        """The records made so far (and forget them)."""
        out = self.sockets, self.processes
        self.sockets, self.processes = [], []
        return out


def _marked(text: str) -> str:
    """A string bpftrace cut at STRLEN - 1 bytes ends in "..." (the rest is not known)."""
    return text + "..." if len(text.encode()) >= STRLEN - 1 else text


# Events are folded once they are this much older than the newest one seen: far more than the
# time bpftrace takes to drain every CPU's buffer.
REORDER_WINDOW_NS = 2_000_000_000
FOLD_EVERY = 4096


def to_records(ev: SockEvent, clock_offset: float) -> tuple[SocketRecord, ProcessRecord]:
    ts = ev.ns / 1e9 + clock_offset
    sock = SocketRecord(ts=ts, pid=ev.pid, tid=ev.tid, transport="udp" if ev.transport == "udp" else "tcp",
                        # port 0: the socket was not bound (a failed connect); only the peer is known
                        local=ev.local, local_port=ev.local_port or None, remote=ev.remote,
                        remote_port=ev.remote_port, source="ebpf", comm=ev.comm)
    # the parent at connect time (a later exit reparents the process)
    return sock, ProcessRecord(pid=ev.pid, ppid=ev.ppid, uid=ev.uid)


# -- the edge: running the tracer (the loader built at install, or bpftrace) -------------------

TRACEFS = Path("/sys/kernel/tracing")
SYNC_ADDR = ("127.0.0.1", 9)  # the discard port: a UDP connect to it sends nothing
DRAIN = 0.25  # without a sync: bpftrace polls its buffers about this often
BTF = Path("/sys/kernel/btf/vmlinux")


def unavailable_reason() -> str | None:
    """Why the ebpf tier cannot run here, or None when it can."""
    if ebpf_backend.first_choice() is None:
        return ebpf_backend.missing_reason()
    if os.geteuid() != 0:
        return "the ebpf tier needs root (it loads BPF programs)"
    if not BTF.exists():
        return f"the kernel has no BTF ({BTF} is missing)"
    if not (TRACEFS / "events").exists():
        # bpftrace and libbpf find tracepoints through tracefs; mount it when the system did not.
        subprocess.run(  # noqa: S603 - fixed argument list
            ["mount", "-t", "tracefs", "nodev", str(TRACEFS)],
                       capture_output=True, check=False)
        if not (TRACEFS / "events").exists():
            return f"tracefs is not mounted at {TRACEFS}"
    return None


def _raise_memlock() -> None:
    try:
        resource.setrlimit(resource.RLIMIT_MEMLOCK, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    except (ValueError, OSError):
        pass  # bpftrace then reports its own clear error


class EbpfTracer:
    """Runs the kernel program (the built loader, or bpftrace with the script) and keeps its
    events; ``stop`` folds them into a ``SocketAttributor``."""

    source = "ebpf"

    def __init__(self, bpftrace: str = "bpftrace", backend: str | None = None) -> None:
        # "core" (the loader built at install) or "bpftrace"; see ebpf_backend.py
        self.backend = backend or ebpf_backend.first_choice() or ebpf_backend.BPFTRACE
        self._bpftrace_argv = [bpftrace, "-q", "-B", "line", "-e", SCRIPT]
        # why the loader gave way to bpftrace, when it did (for the run's notes)
        self.fallback_note: str | None = None
        self._env = {**os.environ, "BPFTRACE_STRLEN": str(STRLEN)}
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.attributor = SocketAttributor("ebpf")
        self.errors: list[str] = []
        self.parse_errors = 0
        # bpftrace's nsecs is CLOCK_MONOTONIC; captures use the wall clock.
        self._offset = time.time() - time.monotonic()
        self._events: list[Event] = []    # not yet folded (newer than the reorder window)
        self._folder = EventFolder(self._offset)
        self._next_fold = FOLD_EVERY
        self._sockets: list[SocketRecord] = []
        self._procs: list[ProcessRecord] = []
        self._known: set[int] = set()      # pids whose program the events or /proc told
        self._fallback: list[ProcessRecord] = []
        self._table: list[ProcessRecord] = []
        self._table_thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._sync_ports: dict[int, threading.Event] = {}  # our own connects (see ``sync``)
        self._closed = False  # after ``stop``: later events are read and dropped
        self._view: Path | None = None  # the narrowed tracepoint list while bpftrace starts
        self._sync_failed = False

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    @property
    def program(self) -> str:
        return "proxytrace-ebpf" if self.backend == ebpf_backend.CORE else "bpftrace"

    def launch(self, narrow: bool = True) -> None:
        """Start the tracer without waiting: bpftrace's compiling the script is most of its
        start-up (about 0.7 s), and the caller has other things to do meanwhile. ``narrow``:
        let bpftrace see only the tracepoints the script uses (tracefs_view.py), which saves a
        third of that. The built loader starts in a few tens of milliseconds."""
        _raise_memlock()  # inherited by the tracer (no preexec_fn: we may be called from a thread)
        if self.backend == ebpf_backend.CORE:
            argv = [str(ebpf_backend.LOADER)]
            self._view = None
        else:
            argv = self._bpftrace_argv
            # the program is the last argument (a script that is not yields no view: a plain start)
            self._view = tracefs_view.prepare(argv[-1]) if narrow else None
            if self._view is not None:
                argv = tracefs_view.wrap(argv, self._view)
        self._ready.clear()
        self.errors = []
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argument list
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace", env=self._env,
                                      # a terminal's Ctrl-C must not end it before ``stop`` syncs
                                      start_new_session=True)
        self._thread = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._thread.start()
        threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True).start()

    @property
    def launched(self) -> bool:
        return self._proc is not None

    def _forget_events_file(self) -> None:
        if self._view is not None:
            self._view.unlink(missing_ok=True)  # the bind mount keeps what bpftrace reads

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once every probe is attached. bpftrace runs BEGIN before it attaches the
        other probes, but prints BEGIN's line only from its poll loop, which it enters after
        attaching them all: the line means tracing has started. The loader prints the same
        line once it has attached every program. A loader that exits first (a kernel that
        refuses the object) gives way to bpftrace unless the environment forces it."""
        if self._proc is None:
            self.launch()
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._ready.wait(0.02):
                    # processes already running: read once, now that every later exec is traced
                    self._table_thread = threading.Thread(target=self._read_table, daemon=True)
                    self._table_thread.start()
                    return
                if self._proc.poll() is None:
                    continue
                if self._view is not None:  # the narrowed view failed: run it as usual
                    self._forget_events_file()
                    self.launch(narrow=False)
                    continue
                time.sleep(0.05)  # its last stderr lines
                why = f"{self.program} exited: " + "; ".join(self.errors[-3:])
                if self.backend == ebpf_backend.CORE and ebpf_backend.can_fall_back():
                    self.fallback_note = f"ebpf tier: {why}; tracing with bpftrace instead"
                    self.backend = ebpf_backend.BPFTRACE
                    self.launch()
                    continue
                raise RuntimeError(why)
            raise RuntimeError(f"{self.program} did not attach its probes in time")
        finally:
            self._forget_events_file()

    def _read_table(self) -> None:
        self._table = process_table()

    def _read_stderr(self, tracer: subprocess.Popen[str]) -> None:
        assert tracer.stderr is not None
        for line in tracer.stderr:
            line = line.strip()
            if line and not line.startswith("WARNING") and "RLIMIT_MEMLOCK" not in line:
                self.errors.append(line)

    def _read(self, tracer: subprocess.Popen[str]) -> None:
        assert tracer.stdout is not None
        for line in tracer.stdout:
            if self._closed:
                continue  # keep the pipe drained while the tracer detaches
            if line.startswith("R\t"):
                self._ready.set()
                continue
            try:
                ev = parse_line(line)
            except ParseError:
                self.parse_errors += 1
                continue
            if ev is None or self._is_sync(ev):
                continue
            with self._lock:
                if self._closed:
                    continue
                self._events.append(ev)
                if len(self._events) >= self._next_fold:
                    self._fold(final=False)
                    self._next_fold = len(self._events) + FOLD_EVERY
                if isinstance(ev, ExecEvent | ForkEvent):
                    self._known.add(ev.pid)
                elif isinstance(ev, SockEvent) and ev.pid not in self._known:
                    # a process neither exec'd nor forked under tracing, and perhaps not in the
                    # table of running processes yet: read it now, while it runs
                    self._known.add(ev.pid)
                    for pid in (ev.pid, ev.ppid):
                        rec = process_record(pid)
                        if rec is not None:
                            self._fallback.append(rec)

    def _is_sync(self, ev: Event) -> bool:
        if not isinstance(ev, SockEvent) or ev.pid != os.getpid() or ev.remote != SYNC_ADDR[0]:
            return False
        seen = self._sync_ports.get(ev.local_port)
        if seen is not None:
            seen.set()
        return seen is not None

    def sync(self, timeout: float = 2.0) -> bool:
        """True once every event that happened before the call has been read.

        A UDP connect of our own (it sends nothing) is traced like any other; bpftrace reads the
        per-CPU buffers in rounds, so an event on another CPU may come in the same round as
        ours, just after it: the second connect's line comes only after that round is done.
        """
        if self._sync_failed:
            return False  # it did not work before: do not wait for it again
        for _ in range(2):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    # bound first: its port must be known before the reader can see it
                    probe.bind((SYNC_ADDR[0], 0))
                    seen = self._sync_ports[probe.getsockname()[1]] = threading.Event()
                    probe.connect(SYNC_ADDR)
                    if not seen.wait(timeout):
                        self._sync_failed = True
                        return False
            except OSError:
                self._sync_failed = True
                return False  # no loopback (a network namespace without it)
        return True

    def abort(self) -> None:
        """Stop the tracer whatever it is doing (bpftrace still compiling, say), with no sync."""
        self._forget_events_file()
        if self._proc and self._proc.poll() is None:
            self._proc.send_signal(2)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def stop(self, wait_exit: bool = True) -> SocketAttributor:
        """Stop tracing and return what was traced up to the call.

        bpftrace does not print the events still in its buffers when SIGINT ends it, so
        ``sync`` first shows every event up to now was read (without loopback: a pause for one
        more of its polls). Detaching a dozen tracepoints then takes the kernel about a second:
        with ``wait_exit=False`` (after a successful sync) the tracer sends SIGINT and returns
        at once; bpftrace finishes on its own, its later events dropped, and is reaped by
        ``wait_exit`` or, once we have exited, by init. The loader prints what its ring buffer
        holds before it exits, but takes the same path: one way to stop either.
        """
        self._forget_events_file()  # when stopped before it was ready
        if self._proc and self._proc.poll() is None:
            synced = self.sync()
            if synced:
                with self._lock:
                    self._closed = True
            else:
                time.sleep(DRAIN)
            self._proc.send_signal(2)
            if not (synced and not wait_exit):
                try:
                    self._proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                if self._thread:
                    self._thread.join(timeout=10)
        elif self._thread:
            self._thread.join(timeout=10)
        if self._table_thread:
            self._table_thread.join(timeout=30)
        with self._lock:  # the reader adds nothing once closed (or once bpftrace has exited)
            self._closed = True
            self._fold(final=True)
        # the table of running processes first: what events say about a pid comes later
        self.attributor.add_processes(self._table)
        self.attributor.add_processes(self._fallback)
        self.attributor.add_processes(self._procs)
        self.attributor.add_sockets(self._sockets)
        return self.attributor


    def _fold(self, final: bool) -> None:
        """Fold the events older than the reorder window (all of them when ``final``), so a long
        capture keeps records, not every line bpftrace printed."""
        self._events.sort(key=lambda e: e.ns)
        cut = len(self._events)
        if not final:
            horizon = self._events[-1].ns - REORDER_WINDOW_NS
            cut = next((i for i, e in enumerate(self._events) if e.ns >= horizon), cut)
        self._folder.feed(self._events[:cut])
        del self._events[:cut]
        sockets, procs = self._folder.take()
        self._sockets.extend(sockets)
        self._procs.extend(procs)

    def wait_exit(self, timeout: float) -> bool:
        """True once bpftrace has exited (after ``stop``)."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
