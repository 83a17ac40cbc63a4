"""Join tracer records to flows: ``process_for(flow, ts)`` for the pipeline's attribution stage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from ..base.model import AttributionSource, ProcessInfo
from ..events.records import FlowRef
from .records import ProcessRecord, SocketRecord, comm_of, normalize_address

# A tracer's clock and the capture's clock are both CLOCK_REALTIME-derived but read at different
# moments; a record up to this many seconds after the first packet still counts as its socket.
CLOCK_SLACK = 2.0
_WILDCARD = ("0.0.0.0", "::", "", None)

_Key = tuple[str, str, int]  # (transport, remote address, remote port)


class SocketAttributor:
    """Answers which process owned a flow, from one tier's socket and process records."""

    def __init__(self, source: AttributionSource, sockets: Iterable[SocketRecord] = (),
                 processes: Iterable[ProcessRecord] = ()) -> None:
        self.source = source
        self._by_remote: dict[_Key, list[SocketRecord]] = defaultdict(list)
        self._processes: dict[int, ProcessRecord] = {}
        # every program a pid ran, in order: a process that execs (the go command switching to
        # a downloaded toolchain keeps its pid) is named by the program in force at connect time
        self._history: dict[int, list[ProcessRecord]] = defaultdict(list)
        self.add_sockets(sockets)
        self.add_processes(processes)

    # -- building -------------------------------------------------------------------------------
    def add_sockets(self, records: Iterable[SocketRecord]) -> None:
        for rec in records:
            key = (rec.transport, normalize_address(rec.remote), rec.remote_port)
            self._by_remote[key].append(rec)

    def add_processes(self, records: Iterable[ProcessRecord]) -> None:
        """Later records about a pid fill in or replace what earlier ones said."""
        for rec in records:
            if rec.exe or rec.cmdline:
                self._history[rec.pid].append(rec)
            old = self._processes.get(rec.pid)
            if old is None:
                self._processes[rec.pid] = rec
                continue
            self._processes[rec.pid] = ProcessRecord(
                pid=rec.pid,
                ppid=rec.ppid if rec.ppid is not None else old.ppid,
                comm=rec.comm or old.comm,
                cmdline=rec.cmdline or old.cmdline,
                exe=rec.exe or old.exe,
                uid=rec.uid if rec.uid is not None else old.uid,
                ts=rec.ts if rec.ts is not None else old.ts,
            )

    @property
    def sockets(self) -> list[SocketRecord]:
        return [r for recs in self._by_remote.values() for r in recs]

    @property
    def processes(self) -> dict[int, ProcessRecord]:
        return dict(self._processes)

    # -- queries --------------------------------------------------------------------------------
    def socket_for(self, flow: FlowRef, ts: float) -> SocketRecord | None:
        """The record of the socket that carried ``flow`` at ``ts``, or None when unseen."""
        key = (flow.transport, normalize_address(flow.server), flow.server_port)
        client = normalize_address(flow.client)
        exact = [r for r in self._by_remote.get(key, ())
                 if r.local_port == flow.client_port
                 and (r.local in _WILDCARD or normalize_address(r.local or "") == client)]
        if exact:
            return _nearest(exact, ts)
        # A record without a local port (an unconnected UDP send seen before the kernel bound the
        # port) is used only when it is the single candidate near that time: never a guess
        # between two processes.
        loose = [r for r in self._by_remote.get(key, ())
                 if r.local_port is None and abs(r.ts - ts) <= CLOCK_SLACK]
        if len({r.pid for r in loose}) == 1:
            return _nearest(loose, ts)
        return None

    def process_for(self, flow: FlowRef, ts: float) -> ProcessInfo | None:
        rec = self.socket_for(flow, ts)
        if rec is None:
            return None
        return self.process_info(rec.pid, rec.comm, at=rec.ts)

    def record_at(self, pid: int, ts: float | None) -> ProcessRecord | None:
        """What ``pid`` was running at ``ts``: its last exec before then (merged with what is
        known of the pid), or the latest record when the time is unknown."""
        latest = self._processes.get(pid)
        history = self._history.get(pid)
        if ts is None or not history or len(history) < 2:
            return latest
        before = [r for r in history if r.ts is None or r.ts <= ts]  # same clock: no slack
        chosen = before[-1] if before else history[0]
        if latest is None:
            return chosen
        return ProcessRecord(pid=pid, ppid=chosen.ppid if chosen.ppid is not None else latest.ppid,
                             comm=chosen.comm or latest.comm,
                             cmdline=chosen.cmdline or latest.cmdline, exe=chosen.exe,
                             uid=chosen.uid if chosen.uid is not None else latest.uid,
                             ts=chosen.ts)

    def exe_for(self, pid: int, comm: str | None) -> str | None:
        """The executable path of the program ``pid`` ran under ``comm`` (latest such exec)."""
        history = self._history.get(pid, [])
        for rec in reversed(history):
            if rec.exe and (comm is None or comm_of(rec.exe) == comm):
                return rec.exe
        latest = self._processes.get(pid)
        return latest.exe if latest and comm is None else None

    def process_info(self, pid: int, comm: str | None = None,
                     at: float | None = None) -> ProcessInfo:
        proc = self.record_at(pid, at)
        parent = self._processes.get(proc.ppid) if proc and proc.ppid is not None else None
        return ProcessInfo(
            pid=pid,
            comm=comm or (proc.comm if proc else None),
            cmdline=proc.cmdline if proc else None,
            ppid=proc.ppid if proc else None,
            source=self.source,
            uid=proc.uid if proc else None,
            parent_comm=parent.comm if parent else None,
            parent_cmdline=parent.cmdline if parent else None,
        )

    def in_tree(self, pid: int, root: int) -> bool:
        """True when ``pid`` is ``root`` or one of its descendants (by the parent links seen)."""
        seen: set[int] = set()
        cur: int | None = pid
        while cur is not None and cur not in seen:
            if cur == root:
                return True
            seen.add(cur)
            proc = self._processes.get(cur)
            cur = proc.ppid if proc else None
        return False


def _nearest(records: list[SocketRecord], ts: float) -> SocketRecord:
    """The latest record opened before ``ts`` (ports are reused), else the earliest after it."""
    before = [r for r in records if r.ts <= ts + CLOCK_SLACK]
    if before:
        return max(before, key=lambda r: r.ts)
    return min(records, key=lambda r: r.ts)
