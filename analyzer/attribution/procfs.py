"""The ``procfs`` tier: poll the socket table (psutil) and /proc while a command runs.

Polling sees a socket only if it lives across a poll, so very short connections are missed:
they stay unattributed, never guessed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Mapping

import psutil

from ..base.model import MAX_ANCESTORS, Env, env_from_block
from .joiner import SocketAttributor
from .records import ProcessRecord, SocketRecord

DEFAULT_INTERVAL = 0.02


def read_cmdline(pid: int) -> str | None:
    """The command line of a live process, arguments joined by spaces (None once it is gone)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            raw = fh.read()
    except OSError:
        return None
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    return " ".join(args) if args else None


def read_environ(pid: int) -> Env | None:
    """The recorded variables of a live process as they were at its exec (/proc/PID/environ is
    the block the program started with; later setenv calls do not show), None when unreadable."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as fh:
            return env_from_block(fh.read())
    except OSError:
        return None


def _exe(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/exe").removesuffix(" (deleted)")
    except OSError:
        return None


def process_record(pid: int, ts: float | None = None) -> ProcessRecord | None:
    """What /proc says of ``pid`` now, stamped ``ts`` (default: its start time)."""
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            return ProcessRecord(pid=pid, ppid=p.ppid(), comm=p.name(),
                                 cmdline=" ".join(p.cmdline()) or None, exe=_exe(pid),
                                 uid=p.uids().real, ts=p.create_time() if ts is None else ts,
                                 env=read_environ(pid))
    except (psutil.Error, OSError):
        return None


def process_table() -> list[ProcessRecord]:
    """Every running process (for a tracer that only sees processes started after it)."""
    return [rec for pid in psutil.pids() if (rec := process_record(pid)) is not None]


def chain_records(pid: int, now: float, known: Mapping[int, ProcessRecord]) -> list[ProcessRecord]:
    """``pid`` and its ancestors up to init (or MAX_ANCESTORS), read now; an ancestor already
    read with the same program is not read twice."""
    out: list[ProcessRecord] = []
    cur: int | None = pid
    seen: set[int] = set()
    while cur and cur not in seen and len(out) <= MAX_ANCESTORS:
        seen.add(cur)
        rec = process_record(cur, ts=now)
        if rec is None:
            break
        old = known.get(cur)
        if old is None or (old.cmdline, old.exe) != (rec.cmdline, rec.exe):
            out.append(rec)
        cur = rec.ppid
    return out


def snapshot(now: float) -> list[SocketRecord]:
    """The connected inet sockets of every process, right now."""
    out: list[SocketRecord] = []
    for c in psutil.net_connections(kind="inet"):
        # an unconnected socket has () for an address, a connected one psutil's addr(ip, port)
        # (a named tuple: "is it a tuple" does not tell them apart)
        lip, lport = getattr(c.laddr, "ip", None), getattr(c.laddr, "port", None)
        rip, rport = getattr(c.raddr, "ip", None), getattr(c.raddr, "port", None)
        if c.pid is None or lip is None or rip is None or lport is None or rport is None:
            continue
        out.append(SocketRecord(ts=now, pid=c.pid, transport="tcp" if c.type == 1 else "udp",
                                local=lip, local_port=lport, remote=rip, remote_port=rport,
                                source="procfs"))
    return out


class ProcfsPoller:
    """Polls until stopped; each socket is recorded with the time it was first seen."""

    source = "procfs"

    def __init__(self, interval: float = DEFAULT_INTERVAL) -> None:
        self.interval = interval
        self.attributor = SocketAttributor("procfs")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._seen: set[tuple[int, str, str, int, str, int]] = set()
        self.polls = 0

    def start(self) -> None:
        self.poll_once()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def poll_once(self) -> None:
        self.polls += 1
        now = time.time()
        try:
            records = snapshot(now)
        except (psutil.Error, OSError):
            return
        fresh = []
        for r in records:
            key = (r.pid, r.transport, r.local or "", r.local_port or 0, r.remote, r.remote_port)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(r)
        # the owner and its ancestors as they are at this poll: the nearest the tier gets to
        # the moment of the connect (a parent that execs later is not read again)
        named: set[int] = set()
        for pid in {r.pid for r in fresh}:
            known = self.attributor.processes
            chain = chain_records(pid, now, known)
            self.attributor.add_processes(chain)
            if pid in known or any(rec.pid == pid for rec in chain):
                named.add(pid)
        # a socket whose owner ended before /proc could be read stays unattributed: a bare pid
        # names nothing, and the tier never guesses
        self.attributor.add_sockets(r for r in fresh if r.pid in named)

    def stop(self) -> SocketAttributor:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.poll_once()
        return self.attributor
