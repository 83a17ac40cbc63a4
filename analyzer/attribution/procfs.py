"""The ``procfs`` tier: poll the socket table (psutil) and /proc while a command runs.

Polling sees a socket only if it lives across a poll, so very short connections are missed:
they stay unattributed, never guessed.
"""

from __future__ import annotations

import threading
import time

import psutil

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


def process_record(pid: int) -> ProcessRecord | None:
    try:
        p = psutil.Process(pid)
        with p.oneshot():
            return ProcessRecord(pid=pid, ppid=p.ppid(), comm=p.name(),
                                 cmdline=" ".join(p.cmdline()) or None, exe=None,
                                 uid=p.uids().real, ts=p.create_time())
    except (psutil.Error, OSError):
        return None


def snapshot(now: float) -> list[SocketRecord]:
    """The connected inet sockets of every process, right now."""
    out: list[SocketRecord] = []
    for c in psutil.net_connections(kind="inet"):
        laddr, raddr = c.laddr, c.raddr
        if not raddr or not laddr or c.pid is None or isinstance(raddr, tuple) \
                or isinstance(laddr, tuple):
            continue
        out.append(SocketRecord(ts=now, pid=c.pid, transport="tcp" if c.type == 1 else "udp",
                                local=laddr.ip, local_port=laddr.port, remote=raddr.ip,
                                remote_port=raddr.port, source="procfs"))
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
        try:
            records = snapshot(time.time())
        except (psutil.Error, OSError):
            return
        fresh = []
        for r in records:
            key = (r.pid, r.transport, r.local or "", r.local_port or 0, r.remote, r.remote_port)
            if key not in self._seen:
                self._seen.add(key)
                fresh.append(r)
        self.attributor.add_sockets(fresh)
        known = self.attributor.processes
        for pid in {r.pid for r in fresh} - set(known):
            rec = process_record(pid)
            if rec:
                self.attributor.add_processes([rec])
                if rec.ppid and rec.ppid not in known:
                    parent = process_record(rec.ppid)
                    if parent:
                        self.attributor.add_processes([parent])

    def stop(self) -> SocketAttributor:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.poll_once()
        return self.attributor
