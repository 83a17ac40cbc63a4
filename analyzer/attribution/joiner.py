"""Join tracer records to flows: ``process_for(flow, ts)`` for the pipeline's attribution stage."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import replace

from ..base.model import MAX_ANCESTORS, Ancestor, AttributionSource, ProcessInfo
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
        self.root_pid: int | None = None  # the traced command's first process, when the tier knows
        self._by_remote: dict[_Key, list[SocketRecord]] = defaultdict(list)
        self._processes: dict[int, ProcessRecord] = {}
        # every program a pid ran, in order: a process that execs (the go command switching to
        # a downloaded toolchain keeps its pid) is named by the program in force at connect time
        self._history: dict[int, list[ProcessRecord]] = defaultdict(list)
        # when each pid ended: a pid seen ending and reused by a process no event announced (a
        # lost fork event) must not be named after the process that ended
        self._exits: dict[int, list[float]] = defaultdict(list)
        self.add_sockets(sockets)
        self.add_processes(processes)

    # -- building -------------------------------------------------------------------------------
    def add_sockets(self, records: Iterable[SocketRecord]) -> None:
        for rec in records:
            key = (rec.transport, normalize_address(rec.remote), rec.remote_port)
            self._by_remote[key].append(rec)

    def add_processes(self, records: Iterable[ProcessRecord]) -> None:
        """Later records about a pid fill in or replace what earlier ones said; each program
        image (exec, fork, first sight) is also kept in the pid's history, in time order."""
        for rec in records:
            if rec.exited:
                if rec.ts is not None:
                    self._exits[rec.pid].append(rec.ts)
                continue
            if rec.is_image:
                history = self._history[rec.pid]
                history.append(rec)
                if len(history) > 1 and rec.ts is not None and \
                        history[-2].ts is not None and history[-2].ts > rec.ts:
                    history.sort(key=lambda r: -1.0 if r.ts is None else r.ts)
            old = self._processes.get(rec.pid)
            if old is None:
                self._processes[rec.pid] = rec
                continue
            self._processes[rec.pid] = _merged(rec, old)

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
        info = self.process_info(rec.pid, rec.comm, at=rec.ts)
        # a pid whose program no tier saw (it ended before /proc could be read) names nothing
        return info if info.comm is not None or info.cmdline is not None else None

    def record_at(self, pid: int, ts: float | None, _depth: int = 0) -> ProcessRecord | None:
        """What ``pid`` was running at ``ts``: its last image before then (merged with what is
        known of the pid), or the latest record when the time is unknown. A forked image is
        resolved to its parent's program at the moment of the fork."""
        latest = self._processes.get(pid)
        history = self._history.get(pid)
        if not history:
            return latest
        if ts is None:
            chosen = history[-1]
        else:
            before = [r for r in history if r.ts is None or r.ts <= ts]  # same clock: no slack
            chosen = before[-1] if before else history[0]
        if ts is not None and chosen.ts is not None and \
                any(chosen.ts <= end < ts for end in self._exits.get(pid, ())):
            return None
        if chosen.forked and chosen.ppid is not None and _depth < 64:
            parent = self.record_at(chosen.ppid, chosen.ts, _depth + 1)
            if parent is not None:
                chosen = replace(chosen, comm=chosen.comm or parent.comm,
                                 cmdline=chosen.cmdline or parent.cmdline,
                                 exe=chosen.exe or parent.exe,
                                 env=chosen.env if chosen.env is not None else parent.env,
                                 uid=chosen.uid if chosen.uid is not None else parent.uid)
        if latest is None:
            return chosen
        return ProcessRecord(pid=pid, ppid=chosen.ppid if chosen.ppid is not None else latest.ppid,
                             comm=chosen.comm or (latest.comm if len(history) < 2 else None),
                             cmdline=chosen.cmdline or (latest.cmdline if len(history) < 2 else None),
                             exe=chosen.exe, env=chosen.env,
                             uid=chosen.uid if chosen.uid is not None else latest.uid,
                             ts=chosen.ts, forked=chosen.forked)

    def exe_for(self, pid: int, comm: str | None) -> str | None:
        """The executable path of the program ``pid`` ran under ``comm`` (latest such exec)."""
        history = self._history.get(pid, [])
        for rec in reversed(history):
            if rec.exe and (comm is None or comm_of(rec.exe) == comm):
                return rec.exe
        latest = self._processes.get(pid)
        return latest.exe if latest and comm is None else None

    def ancestors_at(self, pid: int, ts: float | None) -> tuple[Ancestor, ...]:
        """The parent chain of ``pid`` as it was at ``ts``, nearest first, up to init or
        MAX_ANCESTORS. Each ancestor is the program it ran at ``ts`` (a shell that later execs
        ``sleep`` is still the shell); a pid no tier saw ends the chain as a bare pid."""
        out: list[Ancestor] = []
        seen = {pid}
        rec = self.record_at(pid, ts)
        cur = rec.ppid if rec else None
        while cur and cur not in seen and len(out) < MAX_ANCESTORS:
            seen.add(cur)
            parent = self.record_at(cur, ts)
            if parent is None:
                out.append(Ancestor(pid=cur, comm=None, cmdline=None))
                break
            out.append(Ancestor(pid=cur, comm=parent.comm, cmdline=parent.cmdline,
                                exe=parent.exe, env=parent.env))
            cur = parent.ppid
        return tuple(out)

    def process_info(self, pid: int, comm: str | None = None,
                     at: float | None = None) -> ProcessInfo:
        proc = self.record_at(pid, at)
        ancestors = self.ancestors_at(pid, at)
        parent = ancestors[0] if ancestors else None
        return ProcessInfo(
            pid=pid,
            comm=comm or (proc.comm if proc else None),
            cmdline=proc.cmdline if proc else None,
            ppid=proc.ppid if proc else None,
            source=self.source,
            uid=proc.uid if proc else None,
            parent_comm=parent.comm if parent else None,
            parent_cmdline=parent.cmdline if parent else None,
            ancestors=ancestors,
            env=proc.env if proc else None,
            exe=proc.exe if proc and proc.exe and (comm is None or comm_of(proc.exe) == comm)
            else self.exe_for(pid, comm),
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


def _merged(new: ProcessRecord, old: ProcessRecord) -> ProcessRecord:
    return ProcessRecord(
        pid=new.pid,
        ppid=new.ppid if new.ppid is not None else old.ppid,
        comm=new.comm or old.comm,
        cmdline=new.cmdline or old.cmdline,
        exe=new.exe or old.exe,
        uid=new.uid if new.uid is not None else old.uid,
        ts=new.ts if new.ts is not None else old.ts,
        env=new.env if new.env is not None else old.env,
        forked=new.forked if new.is_image else old.forked,
    )


def _nearest(records: list[SocketRecord], ts: float) -> SocketRecord:
    """The latest record opened before ``ts`` (ports are reused), else the earliest after it."""
    before = [r for r in records if r.ts <= ts + CLOCK_SLACK]
    if before:
        return max(before, key=lambda r: r.ts)
    return min(records, key=lambda r: r.ts)
