"""Process information carried inside pcapng files (the ``pcapng-comment`` tier).

Two producers are understood:
- ptcpdump's packet comments, which proxytrace also writes: one ``opt_comment`` per context,
  ``PID: 99722\\nCmd: /usr/bin/curl\\nArgs: curl https://kernel.org``, ``ThreadId: ..\\nThreadName: ..``,
  ``UserId: 1000`` (newer versions add ``\\nGroupId: ..``) and
  ``ParentPID: 18840\\nParentCmd: /usr/bin/bash\\nParentArgs: -bash``. Older ptcpdump wrote
  ``Command:`` where newer writes ``Cmd:``. The standard ``epb_processid_threadid`` option (EPB
  option 8) carries the pid without a comment.
- macOS ``tcpdump -k``: Apple's Process Information Block (block type 0x80000001: a 32-bit pid
  and options, name = 2, path = 3, UUID = 4) referenced from each packet by the EPB options
  0x8001 (process) and 0x8003 (effective process) as an index among the section's PIBs.
These are small key/value and TLV layouts no maintained library decodes, so they are parsed here.

proxytrace adds lines after ptcpdump's three in the first comment, each one JSON value on one
line so that line-based readers (ptcpdump's own, Wireshark's ``frame.comment``) are unaffected:
``Env: {"GOPROXY": "off"}`` (the process's recorded variables at exec) and
``Ancestors: [{"pid": 1, "comm": "gopls", "cmdline": "...", "exe": "...", "env": {...}}, ...]``
(the parent chain at connect time, nearest first), and when the process's go configuration
files were read at capture time a third, ``GoFiles: {"goroot": "/usr/local/go", "files":
{"/usr/local/go/go.env": "GOPROXY=https://proxy.golang.org,direct\\n...", "/root/.config/go/env":
null}}`` (each file's Go variable lines, null for a file that did not exist), so that a capture
analysed on another machine is explained by the files of the machine that made it.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ..base.errors import ParseError
from ..base.model import MAX_ANCESTORS, Ancestor, Env, GoFiles, ProcessInfo, recorded_env

EPB_PROCESSID_THREADID = 8
APPLE_PIB_BLOCK = 0x80000001
APPLE_EPB_PIB_INDEX = 0x8001
APPLE_EPB_E_PIB_INDEX = 0x8003
_PIB_NAME, _PIB_PATH = 2, 3


def _fields(comment: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in comment.replace("\r\n", "\n").split("\n"):
        key, sep, value = line.partition(":")
        if sep:
            out.setdefault(key.strip(), value.strip())
    return out


def _int(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        n = int(value)
    except ValueError:
        return None
    return n if n >= 0 else None


def process_from_comments(comments: Sequence[str], epb_pid: int | None) -> ProcessInfo | None:
    """The process a packet's comments (ptcpdump's or ours) or its EPB pid name; None if neither."""
    merged: dict[str, str] = {}
    for comment in comments:
        for key, value in _fields(comment).items():
            merged.setdefault(key, value)
    pid = _int(merged.get("PID"))
    if pid is None:
        pid = epb_pid if epb_pid else None
    if pid is None:
        return None
    exe = merged.get("Cmd") or merged.get("Command") or None
    args = merged.get("Args") or None
    parent_exe = merged.get("ParentCmd") or merged.get("ParentCommand") or None
    ancestors = _ancestors(merged.get("Ancestors"))
    nearest = ancestors[0] if ancestors else None
    ppid = _int(merged.get("ParentPID"))
    return ProcessInfo(
        pid=pid,
        comm=_comm(exe, args),
        cmdline=args or exe,
        ppid=ppid if ppid is not None else (nearest.pid if nearest else None),
        source="pcapng-comment",
        uid=_int(merged.get("UserId")),
        parent_comm=_comm(parent_exe, merged.get("ParentArgs")) or (nearest.comm if nearest else None),
        parent_cmdline=merged.get("ParentArgs") or parent_exe or (nearest.cmdline if nearest else None),
        ancestors=ancestors,
        env=_env(merged.get("Env")),
        exe=exe if exe and exe.startswith("/") else None,
        go_files=_go_files(merged.get("GoFiles")),
    )


def _json_value(value: str | None) -> Any:
    """The JSON value of one of our comment lines; None when the line is absent or malformed."""
    if value is None:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _go_files(value: str | None) -> GoFiles | None:
    """A ``GoFiles:`` line's JSON object; None when absent or malformed."""
    data = _json_value(value)
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    goroot = data.get("goroot")
    files = data["files"]
    # a damaged line is not taken for the capturing machine's files: read them here instead
    if not (goroot is None or isinstance(goroot, str)) or \
            not all(v is None or isinstance(v, str) for v in files.values()):
        return None
    return GoFiles(goroot or None, tuple(sorted((str(k), v) for k, v in files.items())))


def go_files_line(files: GoFiles) -> str:
    """The ``GoFiles:`` line for ``files`` (one JSON value, on one line)."""
    return "GoFiles: " + json.dumps({"goroot": files.goroot, "files": dict(files.files)},
                                    ensure_ascii=False)


def _env(value: str | None) -> Env | None:
    """An ``Env:`` line's JSON object; None when absent or not an object of strings."""
    data = _json_value(value)
    return _env_of(data)


def _env_of(data: object) -> Env | None:
    if not isinstance(data, dict):
        return None
    return recorded_env((str(k), str(v)) for k, v in data.items() if isinstance(v, str))


def _ancestors(value: str | None) -> tuple[Ancestor, ...]:
    """An ``Ancestors:`` line's JSON list; entries without an integer pid end it."""
    data = _json_value(value)
    if data is None:
        return ()
    out: list[Ancestor] = []
    for item in data if isinstance(data, list) else ():
        pid = item.get("pid") if isinstance(item, dict) else None
        if not isinstance(pid, int) or isinstance(pid, bool) or pid < 0:
            break
        text = {k: item.get(k) if isinstance(item.get(k), str) else None
                for k in ("comm", "cmdline", "exe")}
        out.append(Ancestor(pid=pid, comm=text["comm"], cmdline=text["cmdline"], exe=text["exe"],
                            env=_env_of(item.get("env"))))
        if len(out) == MAX_ANCESTORS:
            break
    return tuple(out)


def _comm(exe: str | None, args: str | None) -> str | None:
    # The kernel's comm is the exec'd file's base name cut to 15 bytes.
    name = exe or (args.split(" ", 1)[0] if args else None)
    if not name:
        return None
    return os.path.basename(name).encode()[:15].decode(errors="ignore") or None


def comments_for_process(p: ProcessInfo, exe: str | None = None,
                         parent_exe: str | None = None) -> list[str]:
    """The comments ptcpdump would write for ``p`` (one per context), so both tools' files read alike.

    ``exe`` is the executable's path (ptcpdump's ``Cmd``) when the tracer knew it.
    """
    args = _one_line(p.cmdline or p.comm or "")
    cmd = _one_line(exe or p.exe or _exe_of(p.cmdline, p.comm))
    main = f"PID: {p.pid}\nCmd: {cmd}\nArgs: {args}"
    if p.env is not None:
        main += "\nEnv: " + json.dumps(dict(p.env), ensure_ascii=False)
    if p.ancestors:
        main += "\nAncestors: " + json.dumps([a.to_dict() for a in p.ancestors],
                                             ensure_ascii=False)
    if p.go_files is not None:
        main += "\n" + go_files_line(p.go_files)
    out = [main]
    if p.uid is not None:
        out.append(f"UserId: {p.uid}")
    if p.ppid:
        pargs = _one_line(p.parent_cmdline or p.parent_comm or "")
        nearest = p.ancestors[0] if p.ancestors and p.ancestors[0].pid == p.ppid else None
        pexe = parent_exe or (nearest.exe if nearest else None) or \
            _exe_of(p.parent_cmdline, p.parent_comm)
        out.append(f"ParentPID: {p.ppid}\n"
                   f"ParentCmd: {_one_line(pexe)}\n"
                   f"ParentArgs: {pargs}")
    return out


def _one_line(text: str) -> str:
    # one field per line: an argument holding a newline must not start a field of its own
    return text.replace("\r", " ").replace("\n", " ")


def _exe_of(cmdline: str | None, comm: str | None) -> str:
    first = cmdline.split(" ", 1)[0] if cmdline else ""
    return first or comm or ""


def pack_processid_threadid(pid: int, tid: int | None = None, little_endian: bool = True) -> bytes:
    """The value of the ``epb_processid_threadid`` option: 32-bit pid, 32-bit tid."""
    return struct.pack("<II" if little_endian else ">II", pid & 0xFFFFFFFF, (tid or pid) & 0xFFFFFFFF)


def unpack_processid_threadid(data: bytes, little_endian: bool = True) -> tuple[int, int]:
    if len(data) < 8:
        raise ParseError(f"epb_processid_threadid of {len(data)} bytes (8 expected)")
    pid, tid = struct.unpack("<II" if little_endian else ">II", data[:8])
    return pid, tid


# -- Apple ``tcpdump -k`` --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ApplePib:
    pid: int
    name: str | None
    path: str | None


def parse_apple_pib(body: bytes, little_endian: bool = True) -> ApplePib:
    """A Process Information Block body (after type and length, before the trailing length)."""
    if len(body) < 4:
        raise ParseError(f"Apple process information block of {len(body)} bytes")
    order = "<" if little_endian else ">"
    (pid,) = struct.unpack(order + "I", body[:4])
    name = path = None
    pos = 4
    while pos + 4 <= len(body):
        code, length = struct.unpack(order + "HH", body[pos:pos + 4])
        pos += 4
        if code == 0:
            break
        if pos + length > len(body):
            raise ParseError(f"Apple process information option {code} overruns its block")
        value = body[pos:pos + length]
        pos += (length + 3) & ~3
        if code == _PIB_NAME:
            name = value.rstrip(b"\0").decode("utf-8", errors="replace")
        elif code == _PIB_PATH:
            path = value.rstrip(b"\0").decode("utf-8", errors="replace")
    return ApplePib(pid, name, path)


def process_from_apple(pibs: Sequence[ApplePib], pib_index: int | None,
                       effective_index: int | None = None) -> ProcessInfo | None:
    """The process an EPB's Apple options point at (the effective process when it is a delegate)."""
    index = pib_index if pib_index is not None else effective_index
    if index is None or not 0 <= index < len(pibs):
        return None
    pib = pibs[index]
    comm = pib.name or (os.path.basename(pib.path) if pib.path else None)
    return ProcessInfo(pid=pib.pid, comm=comm, cmdline=pib.path, ppid=None, source="pcapng-comment")
