"""Turn the capture tool's raw file into the final pcapng, each attributed packet carrying its process."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

from ..attribution.joiner import SocketAttributor
from ..base.files import open_private
from ..base.model import Env, GoFiles, ProcessInfo, Transport
from ..causes.proxylist import redact_process
from ..causes.sources import record_go_files
from ..events.records import FlowRef
from ..packets.decode import Decoder
from ..packets.frames import iter_frames_and_segments
from ..pipeline import Attributor
from ..source.capture_file import ReadState
from ..source.open import open_source
from ..source.process_comments import comments_for_process
from .backends import CaptureCounts
from .pcapng_writer import PcapngWriter


class CommentsFn(Protocol):
    """The comments of one packet of ``p``; ``full=False`` for a flow's later packets."""

    def __call__(self, p: ProcessInfo, full: bool = True) -> Sequence[str]: ...


SkipFn = Callable[[str, str, int, bytes], bool]  # (transport, dst, dport, frame data)


@dataclass(frozen=True, slots=True)
class AnnotateResult:
    packets: int
    attributed: int
    path: Path
    skipped: int = 0  # our own marker datagrams (marker.py), left out of the file


def comments_with_exe(attributor: Attributor | None, redact: bool = True) -> CommentsFn:
    """ptcpdump-style comments naming the executable's path when the tracer recorded it, plus
    the environment and ancestor lines, and the Go configuration files the process's go reads
    (``GoFiles:``, read once per distinct go binary and environment); credentials hidden
    unless ``redact`` is False."""
    joiner = attributor if isinstance(attributor, SocketAttributor) else None
    files: dict[tuple[Env, str | None], GoFiles] = {}
    # the lines of a process object, full or cut: the attributor hands out one object per
    # process, and its lines are the same on every packet of its flows
    made: dict[tuple[int, bool], tuple[ProcessInfo, list[str]]] = {}

    def comments(p: ProcessInfo, full: bool = True) -> list[str]:
        hit = made.get((id(p), full))
        if hit is not None and hit[0] is p:  # the object is held: its id is not reused
            return hit[1]
        if len(made) >= 4096:
            made.clear()
        lines = made[(id(p), full)] = (p, _comments(p, full))
        return lines[1]

    def _comments(p: ProcessInfo, full: bool) -> list[str]:
        if not full:  # ptcpdump's lines only: the flow's first packet carried the rest
            p = replace(p, env=None, ancestors=(), go_files=None)
        # after the cut: redacting every ancestor's environment for each packet of a flow was
        # most of the time spent writing the pcapng
        if redact:
            p = redact_process(p)
        # the program the pid ran under this comm (it may have exec'd something else since)
        exe = joiner.exe_for(p.pid, p.comm) if joiner is not None else None
        if p.env is not None and p.go_files is None:
            p = replace(p, go_files=_go_files(files, p.env, exe or p.exe, redact))
        if joiner is None:
            return comments_for_process(p)
        parent_exe = joiner.exe_for(p.ppid, p.parent_comm) if p.ppid is not None else None
        return comments_for_process(p, exe=exe, parent_exe=parent_exe)

    return comments


def _go_files(cache: dict[tuple[Env, str | None], GoFiles], env: Env, exe: str | None,
              redact: bool) -> GoFiles:
    # the go binary is what the process exec'd, as process_config takes it from the Cmd line
    go = exe if exe and exe.startswith("/") and os.path.basename(exe) == "go" else None
    key = (env, go)
    if key not in cache:
        cache[key] = record_go_files(env, go, redact_values=redact)
    return cache[key]


def _lookup(attributor: Attributor, transport: str, src: str, sport: int, dst: str, dport: int,
            ts: float) -> ProcessInfo | None:
    # A packet may travel either way: try it as sent by the client, then as the reply.
    t: Transport = "udp" if transport == "udp" else "tcp"
    proc = attributor.process_for(FlowRef(t, src, sport, dst, dport), ts)
    if proc is None:
        proc = attributor.process_for(FlowRef(t, dst, dport, src, sport), ts)
    return proc


def annotate_capture(raw: Path, out: Path, attributor: Attributor | None,
                     counts: CaptureCounts | None = None, interface: str | None = None,
                     comments_for: CommentsFn | None = None, redact: bool = True,
                     skip: SkipFn | None = None) -> AnnotateResult:
    """Copy every packet of ``raw`` (pcap or pcapng) into ``out`` (pcapng, mode 0600), except
    those ``skip`` names."""
    if comments_for is None:
        comments_for = comments_with_exe(attributor, redact)
    cache: dict[tuple[str, str, int, str, int], ProcessInfo | None] = {}
    # the environment and ancestor lines go on each flow's first attributed packet only (they
    # are a few KB; a module zip is thousands of packets); readers take a flow's first process
    described: set[frozenset[tuple[str, int]]] = set()
    state = ReadState(str(raw))
    decoder = Decoder()
    packets = attributed = skipped = 0
    last_ts = time.time()
    with open_source(raw) as (fh, _name), open_private(out, "wb") as dst:
        writer = PcapngWriter(dst)  # type: ignore[arg-type]
        for frame, seg in iter_frames_and_segments(fh, state, decoder):
            if skip is not None and seg is not None and skip(seg.transport, seg.dst, seg.dport,
                                                              frame.data):
                skipped += 1
                continue
            packets += 1
            last_ts = frame.ts
            writer.interface(frame.linktype, interface)
            proc = None
            if seg is not None and attributor is not None:
                key = (seg.transport, seg.src, seg.sport, seg.dst, seg.dport)
                if key not in cache:
                    cache[key] = _lookup(attributor, *key, ts=seg.ts)
                proc = cache[key]
            if proc is not None and seg is not None:
                attributed += 1
                flow = frozenset(((seg.src, seg.sport), (seg.dst, seg.dport)))
                first = flow not in described
                described.add(flow)
                texts = comments_for(proc, full=first)
                writer.packet(frame.linktype, frame.ts, frame.data, frame.wire_len, texts,
                              pid=proc.pid)
            else:
                writer.packet(frame.linktype, frame.ts, frame.data, frame.wire_len)
        if counts is not None and (counts.received is not None or counts.dropped is not None):
            if packets == 0:
                writer.interface(276, interface)  # an ISB needs an interface to count for
            received = None if counts.received is None else max(0, counts.received - skipped)
            writer.statistics(last_ts, received, counts.dropped)
    return AnnotateResult(packets, attributed, out, skipped)
