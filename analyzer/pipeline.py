"""The offline pipeline as one call: captures in, a report out.

source -> packets -> flows + reassembly -> protocol events -> contacts -> attribution ->
findings -> causes -> report. Each stage lives in its own module; this one only wires them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .contacts import build_contacts
from .engine import Engine
from .events import Evidence, FlowRef
from .model import CaptureStats, Contact, ProcessInfo, replace_contact
from .source import fastpath
from .source.capture_file import RawFrame, ReadState, open_capture
from .source.decode import SUPPORTED_LINKTYPES, Decoder
from .source.reader import linktype_name, open_source
from .watchlist import WatchList


class Attributor(Protocol):
    """Something that knows which process owned a connection (a live tracer, or a capture's comments)."""

    def process_for(self, flow: FlowRef, ts: float) -> ProcessInfo | None: ...


@dataclass(frozen=True)
class AnalyzeOptions:
    watch: WatchList = field(default_factory=WatchList.build)
    expect_path: Path | None = None      # expectations TOML merged over the shipped defaults
    config: Any = None                   # an analyzer.config GoConfig, for causes on contacts
    redact: bool = True                  # hide credentials (proxy userinfo, Authorization, Cookie)
    engine: str = "builtin"              # "builtin" (dpkt) or "tshark"
    keylog: Path | None = None
    quiet: bool = True                   # no progress on stderr
    workers: int = 1                     # worker processes for several captures (1: serial)


@dataclass
class Report:
    contacts: list[Contact]
    evidence: Evidence
    warnings: list[str] = field(default_factory=list)

    @property
    def stats(self) -> list[CaptureStats]:
        return self.evidence.stats


ProgressFn = Callable[[str, int, int, int], None]  # (capture, bytes_read, packets, contacts)


def analyze_files(paths: Sequence[str | Path], options: AnalyzeOptions | None = None,
                  attributor: Attributor | None = None,
                  progress: ProgressFn | None = None) -> Report:
    """Analyse captures (paths, directories of captures, or "-" for stdin) into a report.

    With ``options.workers`` > 1 and several captures, each is read in a worker process; the
    evidence is merged in the order given, so the report equals the serial one."""
    from .parallel import expand_paths, read_all

    opts = options or AnalyzeOptions()
    evidence = Evidence()
    warnings: list[str] = []
    files = expand_paths(paths)
    on_file = None
    if progress is not None and hasattr(progress, "files_total"):
        def on_file(done: int, total: int) -> None:
            progress.files_done, progress.files_total = done, total  # type: ignore[attr-defined]
    for ev in read_all(files, opts, progress, on_file):
        evidence.extend(ev)
        for st in ev.stats:
            warnings.extend(st.warnings)
    contacts = contacts_from_evidence(evidence, opts, attributor)
    return Report(contacts, evidence, warnings)


def read_evidence(path: str | Path, opts: AnalyzeOptions,
                  progress: ProgressFn | None = None) -> Evidence:
    """One capture through the chosen engine."""
    if opts.engine == "tshark":
        from .tshark_engine import read_evidence_tshark

        return read_evidence_tshark(path, opts)
    return read_evidence_builtin(path, progress)


def read_evidence_builtin(path: str | Path, progress: ProgressFn | None = None, *,
                          fast: bool = True) -> Evidence:
    """One capture through the built-in engine.

    ``fast`` (the default) lets analyzer.source.fastpath skip packets of finished connections
    from their header bytes; ``fast=False`` decodes every packet (the reference the tests
    compare it with: both give the same evidence).
    """
    decoder = Decoder()
    with open_source(path) as (fh, name):
        state = ReadState(name)
        engine = Engine(name)
        warned: set[int] = set()

        def slow(frame: RawFrame) -> None:
            if frame.linktype not in SUPPORTED_LINKTYPES and frame.linktype not in warned:
                warned.add(frame.linktype)
                state.warnings.append(f"{name}: link type {frame.linktype} is not supported; "
                                      "its packets are skipped")
            seg = decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if seg is None:
                return
            if frame.comments or frame.pid or frame.process_block:
                # imported here: captures without comments (plain pcap) skip the import
                from .attribution.comments import process_from_comments

                proc = process_from_comments(frame.comments, frame.pid)
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




def contacts_from_evidence(evidence: Evidence, opts: AnalyzeOptions,
                           attributor: Attributor | None = None) -> list[Contact]:
    """Contacts, then attribution, findings and causes."""
    contacts = build_contacts(evidence, opts.watch, redact=opts.redact)
    contacts = attribute(contacts, evidence, attributor)
    contacts = _apply_findings(contacts, evidence, opts)
    if opts.config is not None:
        from .config.causes import apply_causes

        contacts = apply_causes(contacts, opts.config, redact_values=opts.redact)
    return contacts


def attribute(contacts: list[Contact], evidence: Evidence,
              attributor: Attributor | None) -> list[Contact]:
    """Give each contact its process: a live tracer first, then the capture's own comments."""
    out = []
    for c in contacts:
        proc = None
        if attributor is not None:
            flow = FlowRef(c.transport, c.src, c.sport, c.dst, c.dport, c.capture or "")
            proc = attributor.process_for(flow, c.ts)
        if proc is None:
            proc = evidence.flow_processes.get(c.flow_id)
        out.append(replace_contact(c, process=proc) if proc is not None else c)
    return out


def _apply_findings(contacts: list[Contact], evidence: Evidence,
                    opts: AnalyzeOptions) -> list[Contact]:
    from .expect import load_expectations
    from .findings import apply_findings

    return apply_findings(contacts, evidence, load_expectations(opts.expect_path), opts.watch)


def _apple_process(block: tuple[int, str | None, str | None]) -> ProcessInfo:
    """A macOS ``tcpdump -k`` process information block as a process."""
    pid, name, path = block
    comm = name or (path.rsplit("/", 1)[-1] if path else None)
    return ProcessInfo(pid=pid, comm=comm, cmdline=path, ppid=None, source="pcapng-comment")
