"""The offline pipeline as one call: captures in, a report out.

source -> packets -> flows -> protocols -> events -> contacts -> attribution -> findings ->
causes -> report. Each stage is a package of its own (``analyzer.source``, ``analyzer.packets``...);
this one only wires them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..base.model import CaptureStats, Contact, ProcessInfo, replace_contact
from ..contacts.build import build_contacts
from ..events.records import Evidence, FlowRef, ProgressFn
from .options import AnalyzeOptions

if TYPE_CHECKING:
    from ..findings.expect import Expectations
    from .perfile import FileContacts


class Attributor(Protocol):
    """Something that knows which process owned a connection (a live tracer, or a capture's comments)."""

    def process_for(self, flow: FlowRef, ts: float) -> ProcessInfo | None: ...


@dataclass
class Report:
    """What the offline pipeline gives: contacts, the evidence kept, warnings."""

    contacts: list[Contact]
    evidence: Evidence
    warnings: list[str] = field(default_factory=list)
    # each contact's line as AnalyzeOptions.render made it (contacts built per capture), or None
    rendered: list[str] | None = None

    @property
    def stats(self) -> list[CaptureStats]:
        return self.evidence.stats


def analyze_files(paths: Sequence[str | Path], options: AnalyzeOptions | None = None,
                  attributor: Attributor | None = None,
                  progress: ProgressFn | None = None) -> Report:
    """Analyse captures (paths, directories of captures, or "-" for stdin) into a report.

    With ``options.workers`` > 1 and several captures, each is read in a worker process; the
    evidence is merged in the order given, so the report equals the serial one."""
    from .parallel import expand_paths, read_all

    opts = options or AnalyzeOptions()
    warnings: list[str] = []
    files = expand_paths(paths)
    on_file = None
    if progress is not None and hasattr(progress, "files_total"):
        def on_file(done: int, total: int) -> None:
            progress.files_done, progress.files_total = done, total  # type: ignore[attr-defined]
    if _per_file_possible(files, opts, attributor):
        from .perfile import independent, merge_order

        parts = read_all(files, opts, progress, on_file, per_file=file_contacts)
        if independent([part.links for part in parts]):
            evidence = Evidence()
            for part in parts:
                evidence.extend(part.evidence)
                for st in part.evidence.stats:
                    warnings.extend(st.warnings)
            order = merge_order([part.contacts for part in parts])
            contacts = [parts[f].contacts[i] for f, i in order]
            rendered = None
            if all(part.rendered is not None for part in parts):
                rendered = [parts[f].rendered[i] for f, i in order]  # type: ignore[index]
            return Report(contacts, evidence, warnings, rendered)
        # a link crosses captures (see perfile): every capture's evidence again, in one place
    evidence = _merged(read_all(files, opts, progress, on_file), warnings)
    if opts.keep_evidence:
        return Report(contacts_from_evidence(evidence, opts, attributor), evidence, warnings)
    # the report keeps no events: the DNS exchanges go while their contacts are built
    contacts = contacts_from_evidence(evidence, opts, attributor, consume=True)
    kept = Evidence(stats=evidence.stats, flow_processes=evidence.flow_processes)
    return Report(contacts, kept, warnings)


def _merged(parts: list[Evidence], warnings: list[str]) -> Evidence:
    """One capture set's evidence from each capture's, their warnings added to ``warnings``
    (the parts are let go with the list: the merged lists hold the only references)."""
    evidence = Evidence()
    while parts:
        ev = parts.pop(0)
        evidence.extend(ev)
        for st in ev.stats:
            warnings.extend(st.warnings)
    return evidence


def file_contacts(evidence: Evidence, opts: AnalyzeOptions) -> FileContacts:
    """A capture's contacts as if it were the only one, with its links to other captures and,
    with ``opts.render``, its lines (run in the worker that read it; see pipeline.perfile)."""
    from .perfile import FileContacts, links_of

    contacts = contacts_from_evidence(evidence, opts)
    kept = Evidence(stats=evidence.stats, flow_processes=evidence.flow_processes)
    rendered = [opts.render(c) for c in contacts] if opts.render is not None else None
    return FileContacts(contacts, links_of(evidence, contacts), kept, rendered)


def _per_file_possible(files: Sequence[str | Path], opts: AnalyzeOptions,
                       attributor: Attributor | None) -> bool:
    """Contacts may be built per capture in the workers: several captures and workers, no
    evidence asked for, and nothing that reads every contact at once (a tracer's attribution,
    a configuration's causes)."""
    return (not opts.keep_evidence and opts.workers > 1 and len(files) > 1
            and attributor is None and opts.config is None
            and not any(str(p) == "-" for p in files))


def contacts_from_evidence(evidence: Evidence, opts: AnalyzeOptions,
                           attributor: Attributor | None = None, *,
                           consume: bool = False) -> list[Contact]:
    """Contacts, then attribution, findings and causes.

    ``consume``: the DNS exchanges are let go from ``evidence`` as their contacts are built
    and given their findings (``findings.contacts_with_findings``), for a caller that keeps no
    events. The contacts are the same: neither attribution nor findings read what the other
    fills in."""
    if consume:
        from ..findings import contacts_with_findings

        contacts = contacts_with_findings(evidence, opts.watch, _expectations(opts),
                                          redact=opts.redact)
    else:
        contacts = build_contacts(evidence, opts.watch, redact=opts.redact)
    contacts = attribute(contacts, evidence, attributor)
    if opts.redact:
        contacts = _redact_processes(contacts)
    if not consume:
        contacts = _apply_findings(contacts, evidence, opts)
    if opts.config is not None:
        from ..causes.contact import apply_causes  # the configuration the user named wins

        contacts = apply_causes(contacts, opts.config, redact_values=opts.redact)
    elif any(c.process is not None and c.process.env is not None for c in contacts):
        # each contact's own process environment, recorded by a live tracer or read back from
        # the comments of a capture proxytrace wrote
        from ..causes.contact import apply_process_causes

        contacts = apply_process_causes(contacts, None, redact_values=opts.redact)
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


def _redact_processes(contacts: list[Contact]) -> list[Contact]:
    """Credentials in recorded environments and command lines (a proxy URL's password)."""
    if all(c.process is None for c in contacts):
        return contacts  # most captures: nothing to redact, and no 10 ms import of the causes
    from ..causes.proxylist import redact_process

    cache: dict[int, ProcessInfo] = {}
    out = []
    for c in contacts:
        if c.process is None:
            out.append(c)
            continue
        key = id(c.process)
        if key not in cache:
            cache[key] = redact_process(c.process)
        out.append(replace_contact(c, process=cache[key]))
    return out


def _apply_findings(contacts: list[Contact], evidence: Evidence,
                    opts: AnalyzeOptions) -> list[Contact]:
    from ..findings import annotate_contacts

    # in place: the list is this pipeline's own, and each contact replaced is freed at once
    annotate_contacts(contacts, evidence, _expectations(opts), opts.watch)
    return contacts


def _expectations(opts: AnalyzeOptions) -> Expectations:
    from ..findings.expect import load_expectations

    return load_expectations(opts.expect_path)
