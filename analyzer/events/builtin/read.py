"""The built-in engine over one capture: the fast path's record loop, the decoder, the engine."""

from __future__ import annotations

from pathlib import Path

from ...base.model import CaptureStats, ProcessInfo
from ...packets.decode import SUPPORTED_LINKTYPES, Decoder
from ...packets.frames import linktype_name
from ...source.capture_file import RawFrame, ReadState, open_capture
from ...source.open import open_source
from ..records import Evidence, ProgressFn
from . import fastpath
from .engine import Engine


def read_evidence_builtin(path: str | Path, progress: ProgressFn | None = None, *,
                          fast: bool = True) -> Evidence:
    """One capture through the built-in engine.

    ``fast`` (the default) lets analyzer.events.builtin.fastpath skip packets of finished connections
    from their header bytes; ``fast=False`` decodes every packet (the reference the tests
    compare it with: both give the same evidence).
    """
    decoder = Decoder()
    with open_source(path) as (fh, name):
        state = ReadState(name)
        engine = Engine(name)
        warned: set[int] = set()
        # process by (comments, pid): every flow of a process carries the same lines (a parse
        # is pure); bounded, whatever a capture holds
        processes: dict[tuple[tuple[str, ...], int | None], ProcessInfo | None] = {}

        def slow(frame: RawFrame) -> None:
            if frame.linktype not in SUPPORTED_LINKTYPES and frame.linktype not in warned:
                warned.add(frame.linktype)
                state.warnings.append(f"{name}: link type {frame.linktype} is not supported; "
                                      "its packets are skipped")
            seg = decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if seg is None:
                return
            if (frame.comments or frame.pid or frame.process_block) and engine.wants_process(seg):
                # imported here: captures without comments (plain pcap) skip the import
                from ...source.process_comments import process_from_comments

                key = (frame.comments, frame.pid)
                if key in processes:
                    proc = processes[key]
                else:
                    if len(processes) >= 1024:
                        processes.clear()
                    proc = processes[key] = process_from_comments(frame.comments, frame.pid)
                if proc is None and frame.process_block is not None:
                    proc = _apple_process(frame.process_block)
                if proc is not None:
                    engine.note_process(seg, proc)
            engine.feed(seg)

        def tick(packets: int) -> None:
            if progress is not None:
                progress(name, state.bytes_read, packets, engine.exchanges_seen())

        decode, feed = decoder.decode, engine.feed

        def plain(number: int, ts: float, linktype: int, data: bytes, _wire_len: int) -> None:
            # slow() for a classic pcap record of a supported link type: no comment, no process
            seg = decode(number, ts, linktype, data)
            if seg is not None:
                feed(seg)

        if fast:
            packets = fastpath.run(fh, state, engine, slow, tick if progress else None, plain)
        else:
            packets = 0
            for frame in open_capture(fh, state):
                packets += 1
                slow(frame)
                if progress is not None and not packets & 0xFFFF:
                    tick(packets)
        evidence = engine.finish()
    if progress is not None:
        progress(name, state.bytes_read, packets, -1)
    for proto, count in engine.parse_errors.items():
        state.warnings.append(f"{name}: {count} malformed {proto} message(s), first in frame "
                              f"{engine.first_error_frame[proto]}")
    evidence.stats.append(CaptureStats(
        capture=name, packets=packets, bytes=state.bytes_read,
        link_type=", ".join(sorted(linktype_name(t) for t in state.linktypes)) or None,
        warnings=tuple(state.warnings), parse_errors=dict(engine.parse_errors),
        damaged=state.damaged, kernel_drops=state.kernel_drops))
    return evidence


def _apple_process(block: tuple[int, str | None, str | None]) -> ProcessInfo:
    """A macOS ``tcpdump -k`` process information block as a process."""
    pid, name, path = block
    comm = name or (path.rsplit("/", 1)[-1] if path else None)
    return ProcessInfo(pid=pid, comm=comm, cmdline=path, ppid=None, source="pcapng-comment")
