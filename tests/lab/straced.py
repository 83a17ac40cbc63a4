"""Ground truth about processes from strace, independent of proxytrace's own tracers.

The editor scenarios run the LSP client under
``strace -f -qq -ttt -v -s 4096 -yy -e trace=<STRACE_CALLS> -o FILE``: every exec with its
argv and full environment, every fork/clone (so threads are told from processes and each process
has its parent), and every socket's connect and getsockname (the local port, which names the
connection in the server's and the resolver's logs). ``parse_strace`` turns that output into
processes and connections; ``contact_process`` answers "which process owned local port P".

strace's output is parsed by hand: no maintained Python library reads it, and only a few calls
matter here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

# getsockname gives a Go program's local port; glibc's resolver and curl never call it, but the
# first send on the socket shows its address with -yy.
STRACE_CALLS = "execve,clone,clone3,fork,vfork,connect,getsockname,sendto,sendmsg,sendmmsg"


def strace_argv(out: str) -> list[str]:
    """strace's own arguments, to put before the traced command."""
    return ["strace", "-f", "-qq", "-ttt", "-v", "-s", "4096", "-yy", "-e", f"trace={STRACE_CALLS}",
            "-e", "signal=none", "-o", out]


# Environment variables that decide where Go programs connect: GO*, the proxy variables (also in
# the lower case net/http reads), the CA files, and HOME / XDG_CONFIG_HOME, which locate the
# GOENV file and the telemetry mode file. Written out here rather than imported from the
# analyzer: the ground truth must not depend on the code it checks.
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
_OTHER_VARS = {*_PROXY_VARS, *(n.lower() for n in _PROXY_VARS), "SSL_CERT_FILE", "SSL_CERT_DIR",
               "HOME", "XDG_CONFIG_HOME"}


def go_relevant(name: str) -> bool:
    return name.startswith("GO") or name in _OTHER_VARS


_LINE = re.compile(r"^(?P<pid>\d+) +(?P<ts>\d+\.\d+) (?P<rest>.*)$")
_UNFINISHED = " <unfinished ...>"
_RESUMED = re.compile(r"^<\.\.\. (?P<call>\w+) resumed>(?P<tail>.*)$")
_CALL = re.compile(r"^(?P<call>\w+)\((?P<args>.*)\) += (?P<ret>-?\d+|\?)(?P<err>.*)$")
_STRING = re.compile(r'"((?:[^"\\]|\\.)*)"')
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "v": "\v", "f": "\f", '"': '"', "\\": "\\"}
_SOCKADDR_IN = re.compile(r'sa_family=AF_INET6?, sin6?_port=htons\((?P<port>\d+)\),.*?inet_(?:addr|pton)\((?:AF_INET6, )?"(?P<ip>[^"]+)"')
# The fd and its -yy decoration, which holds "->" ("UDP:[a:p->b:q]"): it ends at the '>' that
# closes the argument.
_FD = re.compile(r"^(?P<fd>\d+)(?:<(?P<deco>.*?)>(?=[,)]))?")
_DECO_PORTS = re.compile(r"^(?:TCP|UDP)v?6?:\[[^\]]*?:(?P<local>\d+)->")


def unquote(text: str) -> str:
    """A C string as strace prints it (\\n, \\", \\\\, \\xNN, octal \\NNN)."""
    i = 0
    raw = bytearray()
    while i < len(text):
        c = text[i]
        if c != "\\":
            raw += c.encode()
            i += 1
            continue
        nxt = text[i + 1] if i + 1 < len(text) else ""
        if nxt in _ESCAPES:
            raw += _ESCAPES[nxt].encode()
            i += 2
        elif nxt == "x":
            raw.append(int(text[i + 2:i + 4], 16))
            i += 4
        elif nxt.isdigit():
            j = i + 1
            while j < len(text) and j < i + 4 and text[j] in "01234567":
                j += 1
            raw.append(int(text[i + 1:j], 8))
            i = j
        else:
            raw += nxt.encode()
            i += 2
    return raw.decode("utf-8", "replace")


def _string_array(text: str) -> list[str]:
    """The strings of an array argument ``["a", "b"]`` (the text starts at its '[')."""
    depth_end = _array_end(text)
    return [unquote(m.group(1)) for m in _STRING.finditer(text[:depth_end])]


def _array_end(text: str) -> int:
    in_str = False
    i = 0
    while i < len(text):
        c = text[i]
        if in_str:
            if c == "\\":
                i += 1
            elif c == '"':
                in_str = False
        elif c == '"':
            in_str = True
        elif c == "]":
            return i + 1
        i += 1
    return len(text)


@dataclass
class Process:
    pid: int
    ppid: int | None
    comm: str
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # the Go-relevant part, at its last exec
    exec_ts: float | None = None
    execs: list[dict[str, Any]] = field(default_factory=list)  # every exec: ts, argv, env

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "ppid": self.ppid, "comm": self.comm, "argv": self.argv,
                "exe": self.execs[-1]["path"] if self.execs else None, "env": self.env,
                "exec_ts": self.exec_ts}


@dataclass
class Connection:
    ts: float
    pid: int                 # the process (thread group), not the thread
    comm: str                # the process's comm at connect time
    proto: str               # "tcp" or "udp"
    remote_ip: str
    remote_port: int
    local_port: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ts": self.ts, "pid": self.pid, "comm": self.comm, "proto": self.proto,
                "remote_ip": self.remote_ip, "remote_port": self.remote_port,
                "local_port": self.local_port}


@dataclass
class Trace:
    processes: dict[int, Process]
    connections: list[Connection]

    def ancestors(self, pid: int, depth: int = 8) -> list[dict[str, Any]]:
        """The chain above ``pid`` as far as the trace saw it (the traced root's parent is not
        in it), nearest first: pid, comm, argv."""
        chain = []
        proc = self.processes.get(pid)
        while proc is not None and proc.ppid is not None and len(chain) < depth:
            parent = self.processes.get(proc.ppid)
            if parent is None:
                break
            chain.append({"pid": parent.pid, "comm": parent.comm, "argv": parent.argv})
            proc = parent
        return chain

    def by_local_port(self, proto: str, port: int) -> Connection | None:
        hits = [c for c in self.connections if c.proto == proto and c.local_port == port]
        return hits[-1] if hits else None


def _comm(path: str) -> str:
    # The kernel names a process after the basename of the file it execs, cut to 15 bytes.
    return path.rsplit("/", 1)[-1][:15]


def _joined(lines: Iterable[str]) -> Iterable[tuple[int, float, str]]:
    """(tid, ts, "call(args) = ret") with <unfinished ...> / <... resumed> pairs joined."""
    pending: dict[int, str] = {}
    for raw in lines:
        m = _LINE.match(raw.rstrip("\n"))
        if not m:
            continue
        tid, ts, rest = int(m["pid"]), float(m["ts"]), m["rest"]
        if rest.endswith(_UNFINISHED):
            pending[tid] = rest[:-len(_UNFINISHED)]
            continue
        resumed = _RESUMED.match(rest)
        if resumed:
            head = pending.pop(tid, None)
            if head is None:
                continue
            rest = head + resumed["tail"]
        yield tid, ts, rest


def parse_strace(text: str) -> Trace:
    tgid: dict[int, int] = {}
    procs: dict[int, Process] = {}
    sockets: dict[tuple[int, int], Connection] = {}
    connections: list[Connection] = []

    def process_of(tid: int) -> Process:
        pid = tgid.setdefault(tid, tid)
        if pid not in procs:
            procs[pid] = Process(pid, None, "?")
        return procs[pid]

    for tid, ts, text_call in _joined(text.splitlines()):
        m = _CALL.match(text_call)
        if not m:
            continue
        call, args, ret = m["call"], m["args"], m["ret"]
        if ret == "?":
            continue
        retval = int(ret)
        proc = process_of(tid)
        if call in ("clone", "clone3", "fork", "vfork") and retval > 0:
            # The child often runs (and may exec) before strace sees the parent's clone return.
            early = procs.get(retval) if tgid.get(retval) == retval else None
            if "CLONE_THREAD" in args:
                tgid[retval] = proc.pid
                if early is not None:  # a thread seen first, taken for a process: fold it back
                    del procs[retval]
                    for conn in connections:
                        if conn.pid == retval:
                            conn.pid, conn.comm = proc.pid, proc.comm
                    for pid, fd in list(sockets):
                        if pid == retval:
                            sockets[(proc.pid, fd)] = sockets.pop((pid, fd))
            elif early is not None:
                early.ppid = proc.pid
                if not early.execs:
                    early.comm, early.argv, early.env = proc.comm, list(proc.argv), dict(proc.env)
            else:
                tgid[retval] = retval
                procs[retval] = Process(retval, proc.pid, proc.comm, list(proc.argv), dict(proc.env))
        elif call == "execve" and retval == 0:
            path = unquote(_STRING.match(args)[1]) if _STRING.match(args) else "?"
            arrays = args.split(", [", 2)
            argv = _string_array("[" + arrays[1]) if len(arrays) > 1 else []
            env_list = _string_array("[" + arrays[2]) if len(arrays) > 2 else []
            env = dict(item.split("=", 1) for item in env_list if "=" in item)
            # A thread that execs takes over the whole thread group.
            if tgid.get(tid, tid) != tid:
                proc = procs[tgid[tid]]
            proc.comm, proc.argv, proc.exec_ts = _comm(path), argv, ts
            proc.env = {k: v for k, v in env.items() if go_relevant(k)}
            proc.execs.append({"ts": ts, "path": path, "argv": argv, "env": proc.env})
        elif call == "connect":
            fd = _FD.match(args)
            addr = _SOCKADDR_IN.search(args)
            if fd is None or addr is None:
                continue
            deco = fd["deco"] or ""
            proto = "udp" if deco.startswith("UDP") else "tcp"
            conn = Connection(ts, proc.pid, proc.comm, proto, addr["ip"], int(addr["port"]))
            sockets[(proc.pid, int(fd["fd"]))] = conn
            connections.append(conn)
        elif call == "getsockname" and retval == 0:
            fd = _FD.match(args)
            addr = _SOCKADDR_IN.search(args)
            if fd is None or addr is None:
                continue
            conn = sockets.get((proc.pid, int(fd["fd"])))
            if conn is not None and conn.local_port is None:
                conn.local_port = int(addr["port"])
        elif call in ("sendto", "sendmsg", "sendmmsg"):
            fd = _FD.match(args)
            ports = _DECO_PORTS.match(fd["deco"] or "") if fd else None
            conn = sockets.get((proc.pid, int(fd["fd"]))) if fd else None
            if ports and conn is not None and conn.local_port is None:
                conn.local_port = int(ports["local"])
    return Trace(procs, connections)
