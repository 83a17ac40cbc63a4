"""The ``ebpf`` tier: bpftrace on kernel tracepoints, system-wide, short-lived sockets included.

Only tracepoints are used (kprobes are not traceable on every kernel we run on):
- ``syscalls:sys_exit_connect`` / ``sys_exit_sendto`` / ``sys_exit_sendmsg`` / ``sys_exit_sendmmsg``
  read the socket behind the fd after the call, when the kernel has bound the local port: this
  gives the full 4-tuple for TCP connects and for UDP DNS (the Go resolver connects a UDP socket
  and then writes; glibc connects and sends). For ``sendto``/``sendmsg`` with a destination on
  an unconnected UDP socket, the destination saved at entry (user memory) is the peer.
- ``sock:inet_sock_set_state`` SYN_SENT -> ESTABLISHED completes TCP connects made without
  connect(2) (TCP Fast Open through sendto), with the pid remembered at SYN_SENT (the
  ESTABLISHED transition runs in softirq context, where the current task is not the owner).
- ``sched:sched_process_exec`` gives each new program, its parent and uid; the command line is
  read from /proc right away by the reader thread.
Each line bpftrace prints is parsed by ``parse_line`` (a pure function).
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import ParseError
from . import tracefs_view
from .joiner import SocketAttributor
from .procfs import process_record, read_cmdline
from .records import ProcessRecord, SocketRecord, comm_of

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


def parse_line(line: str) -> SockEvent | ExecEvent | None:
    """One line of the script's output; None for bpftrace's own chatter (banner, warnings)."""
    line = line.rstrip("\n")
    if line.startswith("S\t"):
        parts = line.split("\t", 11)
        if len(parts) != 12:
            raise ParseError(f"socket event with {len(parts)} fields: {line[:80]!r}")
        try:
            ns, pid, tid, ppid, uid, proto = (int(p) for p in parts[1:7])
            lport, rport = int(parts[8]), int(parts[10])
        except ValueError:
            raise ParseError(f"socket event with a non-numeric field: {line[:80]!r}") from None
        if proto not in _PROTO:
            raise ParseError(f"socket event with protocol {proto}")
        return SockEvent(ns, pid, tid, ppid, uid, _PROTO[proto], parts[7], lport, parts[9], rport,
                         parts[11])
    if line.startswith("E\t"):
        parts = line.split("\t", 6)
        if len(parts) != 7:
            raise ParseError(f"exec event with {len(parts)} fields: {line[:80]!r}")
        try:
            ns, pid, ppid, uid = (int(p) for p in parts[1:5])
        except ValueError:
            raise ParseError(f"exec event with a non-numeric field: {line[:80]!r}") from None
        return ExecEvent(ns, pid, ppid, uid, parts[5], parts[6])
    return None


def parse_output(text: str, clock_offset: float = 0.0) -> tuple[list[SocketRecord], list[ProcessRecord]]:
    """All records in a saved bpftrace output; ``clock_offset`` turns kernel ns into epoch s."""
    sockets: list[SocketRecord] = []
    procs: list[ProcessRecord] = []
    for line in text.splitlines():
        ev = parse_line(line)
        if ev is not None:
            sock, proc = to_records(ev, clock_offset)
            if sock:
                sockets.append(sock)
            procs.append(proc)
    return sockets, procs


def to_records(ev: SockEvent | ExecEvent, clock_offset: float,
               cmdline: str | None = None) -> tuple[SocketRecord | None, ProcessRecord]:
    ts = ev.ns / 1e9 + clock_offset
    if isinstance(ev, ExecEvent):
        return None, ProcessRecord(pid=ev.pid, ppid=ev.ppid, comm=ev.comm or comm_of(ev.filename),
                                   exe=ev.filename, uid=ev.uid, cmdline=cmdline, ts=ts)
    sock = SocketRecord(ts=ts, pid=ev.pid, tid=ev.tid, transport="udp" if ev.transport == "udp" else "tcp",
                        # port 0: the socket was not bound (a failed connect); only the peer is known
                        local=ev.local, local_port=ev.local_port or None, remote=ev.remote,
                        remote_port=ev.remote_port, source="ebpf", comm=ev.comm)
    return sock, ProcessRecord(pid=ev.pid, ppid=ev.ppid, uid=ev.uid, cmdline=cmdline)


# -- the edge: running bpftrace -----------------------------------------------------------------

TRACEFS = Path("/sys/kernel/tracing")
SYNC_ADDR = ("127.0.0.1", 9)  # the discard port: a UDP connect to it sends nothing
DRAIN = 0.25  # without a sync: bpftrace polls its buffers about this often
BTF = Path("/sys/kernel/btf/vmlinux")


def unavailable_reason() -> str | None:
    """Why the ebpf tier cannot run here, or None when it can."""
    if shutil.which("bpftrace") is None:
        return "bpftrace is not installed"
    if os.geteuid() != 0:
        return "the ebpf tier needs root (bpftrace loads BPF programs)"
    if not BTF.exists():
        return f"the kernel has no BTF ({BTF} is missing)"
    if not (TRACEFS / "events").exists():
        # bpftrace finds tracepoints through tracefs; mount it when the system did not.
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


class BpftraceTracer:
    """Runs the script and folds its events into a ``SocketAttributor`` as they arrive."""

    source = "ebpf"

    def __init__(self, bpftrace: str = "bpftrace") -> None:
        self._argv = [bpftrace, "-q", "-B", "line", "-e", SCRIPT]
        self._proc: subprocess.Popen[str] | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.attributor = SocketAttributor("ebpf")
        self.errors: list[str] = []
        self.parse_errors = 0
        # bpftrace's nsecs is CLOCK_MONOTONIC; captures use the wall clock.
        self._offset = time.time() - time.monotonic()
        self._lock = threading.Lock()
        self._sync_ports: dict[int, threading.Event] = {}  # our own connects (see ``sync``)
        self._closed = False  # after ``stop``: later events are read and dropped
        self._events: Path | None = None  # the narrowed event list while bpftrace starts
        self._sync_failed = False

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self, narrow: bool = True) -> None:
        """Start bpftrace without waiting: compiling the script is most of its start-up (about
        0.7 s), and the caller has other things to do meanwhile. ``narrow``: let it see only
        the tracepoints the script uses (tracefs_view.py), which saves a third of that."""
        _raise_memlock()  # inherited by bpftrace (no preexec_fn: we may be called from a thread)
        argv = self._argv
        # the program is the last argument (a script that is not yields no view: a plain start)
        self._events = tracefs_view.prepare(self._argv[-1]) if narrow else None
        if self._events is not None:
            argv = tracefs_view.wrap(argv, self._events)
        self._ready.clear()
        self.errors = []
        self._proc = subprocess.Popen(  # noqa: S603 - fixed argument list
            argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, errors="replace",
                                      # a terminal's Ctrl-C must not end it before ``stop`` syncs
                                      start_new_session=True)
        self._thread = threading.Thread(target=self._read, args=(self._proc,), daemon=True)
        self._thread.start()
        threading.Thread(target=self._read_stderr, args=(self._proc,), daemon=True).start()

    @property
    def launched(self) -> bool:
        return self._proc is not None

    def _forget_events_file(self) -> None:
        if self._events is not None:
            self._events.unlink(missing_ok=True)  # the bind mount keeps what bpftrace reads

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Return once every probe is attached. bpftrace runs BEGIN before it attaches the
        other probes, but prints BEGIN's line only from its poll loop, which it enters after
        attaching them all: the line means tracing has started."""
        if self._proc is None:
            self.launch()
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                if self._ready.wait(0.02):
                    return
                if self._proc.poll() is None:
                    continue
                if self._events is not None:  # the narrowed view failed: run it as usual
                    self._forget_events_file()
                    self.launch(narrow=False)
                    continue
                time.sleep(0.05)  # its last stderr lines
                raise RuntimeError("bpftrace exited: " + "; ".join(self.errors[-3:]))
            raise RuntimeError("bpftrace did not attach its probes in time")
        finally:
            self._forget_events_file()

    def _read_stderr(self, bpftrace: subprocess.Popen[str]) -> None:
        assert bpftrace.stderr is not None
        for line in bpftrace.stderr:
            line = line.strip()
            if line and not line.startswith("WARNING") and "RLIMIT_MEMLOCK" not in line:
                self.errors.append(line)

    def _read(self, bpftrace: subprocess.Popen[str]) -> None:
        assert bpftrace.stdout is not None
        for line in bpftrace.stdout:
            if self._closed:
                continue  # keep the pipe drained while bpftrace detaches
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
            cmdline = read_cmdline(ev.pid) if ev.pid not in self.attributor.processes or \
                isinstance(ev, ExecEvent) else None
            sock, proc = to_records(ev, self._offset, cmdline)
            parent = None
            if proc.ppid and proc.ppid not in self.attributor.processes:
                parent = process_record(proc.ppid)  # started before tracing: ask /proc
            with self._lock:
                if self._closed:
                    continue
                self.attributor.add_processes([parent, proc] if parent else [proc])
                if sock:
                    self.attributor.add_sockets([sock])

    def _is_sync(self, ev: SockEvent | ExecEvent) -> bool:
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
        """Stop bpftrace whatever it is doing (still compiling, say), with no sync."""
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
        ``wait_exit`` or, once we have exited, by init.
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
            if synced and not wait_exit:
                return self.attributor
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._thread:
            self._thread.join(timeout=10)
        return self.attributor

    def wait_exit(self, timeout: float) -> bool:
        """True once bpftrace has exited (after ``stop``)."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
