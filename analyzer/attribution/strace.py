"""The ``strace`` tier: the command tree under ``strace -f -yy``, no root needed.

With ``-yy`` strace prints each socket fd with its endpoints once the kernel knows them
(``5<TCP:[127.0.0.1:43384->127.0.0.1:18080]>``). connect(2) is decoded before the local port
exists, but both Go and curl call getsockname(2) right after, and glibc's resolver sends on the
connected socket, so tracing those calls yields every 4-tuple. ``clone`` results give the
process tree (threads share their leader's pid), ``execve`` the command lines and, with ``-v``,
the environment each program started with (``-s 4096`` keeps long values whole).
strace's text is not a format any library parses, hence the small hand-written parser below.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from ..base.model import recorded_env
from .joiner import SocketAttributor
from .records import ProcessRecord, SocketRecord, comm_of

TRACE_CALLS = "connect,sendto,sendmsg,sendmmsg,getsockname,getpeername,execve,clone,clone3,fork,vfork"


def strace_argv(out_path: str, command: Sequence[str], strace: str = "strace") -> list[str]:
    """The strace command line wrapping ``command`` (output to ``out_path``)."""
    return [strace, "-f", "-yy", "-ttt", "-qq", "-v", "-s", "4096", "-e", f"trace={TRACE_CALLS}",
            "-e", "signal=none", "-o", out_path, "--", *command]


def unavailable_reason() -> str | None:
    if shutil.which("strace") is None:
        return "strace is not installed"
    return None


_LINE = re.compile(r"^(?P<tid>\d+)\s+(?P<ts>\d+\.\d+)\s+(?P<rest>.*)$")
_SOCK = re.compile(r"<(?P<proto>TCP|UDP|TCPv6|UDPv6):\[(?P<body>.*?)\]>")
_V4_PAIR = re.compile(r"^(?P<la>[\d.]+):(?P<lp>\d+)->(?P<ra>[\d.]+):(?P<rp>\d+)$")
_V6_PAIR = re.compile(r"^\[(?P<la>[0-9a-fA-F:.]+)\]:(?P<lp>\d+)->\[(?P<ra>[0-9a-fA-F:.]+)\]:(?P<rp>\d+)$")
_V4_LOCAL = re.compile(r"^(?P<la>[\d.]+):(?P<lp>\d+)$")
_V6_LOCAL = re.compile(r"^\[(?P<la>[0-9a-fA-F:.]+)\]:(?P<lp>\d+)$")
_SOCKADDR = re.compile(
    r"\{sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\),.*?"
    r"(?:sin_addr=inet_addr\(\"(?P<v4>[\d.]+)\"\)|inet_pton\(AF_INET6, \"(?P<v6>[0-9a-fA-F:.]+)\")")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"(\.\.\.)?')
_CLONE = re.compile(r"^(?P<call>clone3?|v?fork)\((?P<args>.*)\)\s+=\s+(?P<ret>\d+)\s*$")
_RESUMED = re.compile(r"^<\.\.\. (?P<call>\w+) resumed>(?P<args>.*)\)\s+=\s+(?P<ret>-?\d+)")


@dataclass
class StraceState:
    """What has been read so far: thread -> process, processes, sockets."""

    tgid: dict[int, int] = field(default_factory=dict)        # tid -> pid (thread group leader)
    processes: dict[int, ProcessRecord] = field(default_factory=dict)  # latest image per pid
    images: list[ProcessRecord] = field(default_factory=list)  # every exec and fork, in order
    sockets: list[SocketRecord] = field(default_factory=list)
    pending_clone: dict[int, str] = field(default_factory=dict)  # tid -> clone args while unfinished
    malformed: int = 0
    _seen: set[tuple[int, str, str, int, str, int]] = field(default_factory=set)

    def pid_of(self, tid: int) -> int:
        return self.tgid.get(tid, tid)


def _unescape(s: str) -> str:
    return s.encode().decode("unicode_escape", errors="replace") if "\\" in s else s


def parse_socket(text: str) -> tuple[str, str | None, int | None, str, int] | None:
    """``(transport, local, local_port, remote, remote_port)`` from a ``-yy`` fd decoding."""
    m = _SOCK.search(text)
    if not m:
        return None
    transport = "tcp" if m["proto"].startswith("TCP") else "udp"
    body = m["body"]
    pm = _V4_PAIR.match(body) or _V6_PAIR.match(body)
    if pm:
        return transport, pm["la"], int(pm["lp"]), pm["ra"], int(pm["rp"])
    return None


def _local_only(text: str) -> tuple[str, str, int] | None:
    m = _SOCK.search(text)
    if not m:
        return None
    lm = _V4_LOCAL.match(m["body"]) or _V6_LOCAL.match(m["body"])
    if not lm:
        return None
    return ("tcp" if m["proto"].startswith("TCP") else "udp"), lm["la"], int(lm["lp"])


def feed_line(state: StraceState, line: str) -> None:
    """Fold one line of strace output into ``state`` (unknown lines are ignored)."""
    m = _LINE.match(line.strip())
    if not m:
        if line.strip():
            state.malformed += 1
        return
    tid, ts, rest = int(m["tid"]), float(m["ts"]), m["rest"]
    pid = state.pid_of(tid)
    if rest.startswith("execve("):
        call = parse_execve(rest)
        if call is not None and " = -1 " not in rest:
            path, argv, env = call
            old = state.processes.get(pid)
            _add(state, ProcessRecord(pid=pid, ppid=old.ppid if old else None,
                                      comm=comm_of(path), cmdline=" ".join(argv) or None,
                                      exe=path, uid=old.uid if old else None, ts=ts,
                                      env=recorded_env(env) if env is not None else None))
        return
    cm = _CLONE.match(rest)
    if cm is None and rest.startswith(("clone", "fork", "vfork")) and "<unfinished" in rest:
        state.pending_clone[tid] = rest
        return
    if cm is None:
        rm = _RESUMED.match(rest)
        if rm and rm["call"] in ("clone", "clone3", "fork", "vfork") and tid in state.pending_clone:
            cm_args = state.pending_clone.pop(tid) + rm["args"]
            _record_clone(state, pid, cm_args, int(rm["ret"]), ts)
            return
    if cm is not None:
        _record_clone(state, pid, cm["args"], int(cm["ret"]), ts)
        return
    sock = parse_socket(rest)
    if sock is None:
        # An unconnected send names its peer in the sockaddr argument.
        local = _local_only(rest)
        sa = _SOCKADDR.search(rest)
        if sa is None or not rest.startswith(("sendto(", "sendmsg(", "sendmmsg(")):
            return
        transport = local[0] if local else ("udp" if "<UDP" in rest else "tcp")
        sock = (transport, local[1] if local else None, local[2] if local else None,
                sa["v4"] or sa["v6"], int(sa["port"]))
    transport, la, lp, ra, rp = sock
    key = (pid, transport, la or "", lp or 0, ra, rp)
    if key in state._seen:
        return
    state._seen.add(key)
    proc = state.processes.get(pid)
    state.sockets.append(SocketRecord(ts=ts, pid=pid, tid=tid,
                                      transport="tcp" if transport == "tcp" else "udp",
                                      local=la, local_port=lp, remote=ra, remote_port=rp,
                                      source="strace", comm=proc.comm if proc else None))


def _record_clone(state: StraceState, pid: int, args: str, child: int, ts: float) -> None:
    if child <= 0:
        return
    if "CLONE_THREAD" in args:
        state.tgid[child] = pid
        return
    parent = state.processes.get(pid)
    # A forked child runs the parent's program, with its environment, until it execs.
    _add(state, ProcessRecord(pid=child, ppid=pid, comm=parent.comm if parent else None,
                              cmdline=parent.cmdline if parent else None,
                              exe=parent.exe if parent else None, ts=ts,
                              env=parent.env if parent else None, forked=parent is None))


def _add(state: StraceState, rec: ProcessRecord) -> None:
    state.processes[rec.pid] = rec
    state.images.append(rec)


def _strings(text: str, pos: int) -> tuple[list[str], int] | None:
    """A strace string array ``["a", "b"...]`` starting at ``text[pos]``; None when not one."""
    if text[pos:pos + 1] != "[":
        return None
    out: list[str] = []
    pos += 1
    while pos < len(text):
        if text[pos] == "]":
            return out, pos + 1
        if text.startswith(", ", pos):
            pos += 2
            continue
        if text.startswith("...", pos):  # strace cut the array short
            pos += 3
            continue
        m = _QUOTED.match(text, pos)
        if m is None:
            return None
        out.append(_unescape(m.group(1)) + ("..." if m.group(2) else ""))
        pos = m.end()
    return None


def parse_execve(rest: str) -> tuple[str, list[str], list[tuple[str, str]] | None] | None:
    """``(path, argv, environment)`` of an ``execve(...)`` line; the environment is None without
    ``-v`` (strace then prints ``0x7ffd... /* 35 vars */``)."""
    m = _QUOTED.match(rest, len("execve("))
    if m is None or not rest.startswith(", ", m.end()):
        return None
    argv = _strings(rest, m.end() + 2)
    if argv is None:
        return None
    args, pos = argv
    env: list[tuple[str, str]] | None = None
    if rest.startswith(", [", pos):
        block = _strings(rest, pos + 2)
        if block is not None:
            env = [(k, v) for k, _, v in (e.partition("=") for e in block[0]) if k]
    return _unescape(m.group(1)), args, env


def parse_output(lines: Iterable[str], root_ppid: int | None = None) -> StraceState:
    """Read a whole strace output; the first process gets ``root_ppid`` as its parent."""
    state = StraceState()
    for line in lines:
        feed_line(state, line)
    if root_ppid is not None and state.images:
        # the earliest image (the root's latest one may be later: a shell exec'ing its last command)
        first = min(state.images, key=lambda p: p.ts or 0.0)
        first = state.processes[first.pid]
        if first.ppid is None:
            state.processes[first.pid] = replace(first, ppid=root_ppid)
            state.images = [replace(r, ppid=root_ppid) if r.pid == first.pid and r.ppid is None
                            else r for r in state.images]
    return state


def attributor_from_file(path: str, root_ppid: int | None = None,
                         outer: Sequence[ProcessRecord] = ()) -> SocketAttributor:
    """The tier's attributor; ``outer`` are the processes above the traced tree (strace and
    what started it), read when the command started."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        state = parse_output(fh, root_ppid)
    uid = os.getuid()
    procs = [p if p.uid is not None else replace(p, uid=uid) for p in state.images]
    att = SocketAttributor("strace", state.sockets, [*outer, *procs])
    if state.images:
        att.root_pid = min(state.images, key=lambda p: p.ts or 0.0).pid
    return att
