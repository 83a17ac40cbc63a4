"""The terminal table: contacts grouped by process, then host, then layer, fitting the terminal.

Rendered with rich so long fields are elided with an ellipsis instead of wrapping. Every value
from a capture goes through ``Text`` (never rich markup) after its control characters are made
visible, so a hostile hostname or path cannot inject markup or terminal escape sequences.
"""

from __future__ import annotations

import io
import os
import shutil
import sys
import textwrap
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import PurePath

from rich.cells import cell_len
from rich.color import ColorSystem
from rich.console import Console
from rich.text import Text

from ..base.model import CaptureStats, Contact
from .describe import (
    LAYER_TITLE,
    UNATTRIBUTED,
    contact_detail,
    contact_ops,
    contact_process_label,
    endpoint,
    fmt_span,
    fmt_time,
    hostport,
    layer_rank,
    process_sort_key,
    summarize_groups,
)

DEFAULT_WIDTH = 80
LAYER_STYLE = {"dns": "cyan", "tls": "green", "http": "magenta", "socks": "yellow"}
FINDING_STYLE = "bold red"
MUTED = "dim"
LineFn = Callable[..., None]
TIME_W, LAYER_W, HOST_MAX, OP_MAX, PROC_MAX = 12, 5, 24, 19, 24
FINDING_LINES = 2
CAUSE_LINES = 3
CAUSE_STYLE = "cyan"


def clean(value: object) -> str:
    """Make control characters visible (``\\x1b`` stays as text, never reaches the terminal)."""
    text = "" if value is None else str(value)
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def render_table(contacts: Sequence[Contact], stats: Sequence[CaptureStats],
                 width: int | None = None, color: bool = False) -> str:
    """Contacts as text for a terminal ``width`` columns wide.

    ``width`` None means the terminal's width when stdout is one, else 80. ``NO_COLOR`` in the
    environment wins over ``color``.
    """
    if width is None:
        width = shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns if sys.stdout.isatty() \
            else DEFAULT_WIDTH
    color = color and not os.environ.get("NO_COLOR")
    console = _Lines(max(width, 20), color)
    line = console.line

    if not contacts:
        line("No contact with a watched host.", "bold")
        _read_summary(line, stats)
        _warnings(line, stats, console.width)
        return _output(console)

    hosts = {c.host for c in contacts}
    unattributed = sum(1 for c in contacts if contact_process_label(c) == UNATTRIBUTED)
    nfind = sum(len(c.findings) for c in contacts)
    head = Text(f"{len(contacts)} contact{'s' if len(contacts) != 1 else ''} with "
                f"{len(hosts)} watched host{'s' if len(hosts) != 1 else ''}", style="bold")
    if nfind:
        head.append(f", {nfind} finding{'s' if nfind != 1 else ''}", style=FINDING_STYLE)
    if unattributed:
        head.append(f", {unattributed} unattributed", style="yellow")
    line(head)
    first, last = min(c.ts for c in contacts), max(c.ts for c in contacts)
    line(Text(fmt_span(first, last), style=MUTED))
    _read_summary(line, stats)

    for label, items in _by_process(contacts):
        console.print()
        line(_process_heading(label, items))
        for text in _contact_lines(items, console.width):
            line(text)
        for text in _cause_lines(items, console.width):
            line(text)

    console.print()
    line("Summary (process × host × layer)", "bold")
    for text in _summary_lines(contacts, console.width):
        line(text)
    if unattributed:
        line(Text(f"{unattributed} of {len(contacts)} contacts have no process: no attribution "
                  "source saw them.", style="yellow"))
    if any(s.warnings or s.damaged or s.kernel_drops for s in stats):
        console.print()
    _warnings(line, stats, console.width)
    return _output(console)


def _output(console: _Lines) -> str:
    return console.getvalue()


def rich_console(width: int, color: bool) -> Console:
    """The rich Console whose output _Lines reproduces (tests compare the two)."""
    return Console(file=io.StringIO(), width=width, force_terminal=color,
                   color_system="standard" if color else None, no_color=not color,
                   markup=False, emoji=False, highlight=False, soft_wrap=False,
                   legacy_windows=False, force_jupyter=False)


_NEWLINE = Text("\n")  # joining through it turns a Text's own style into a span, as rich does


class _Lines:
    """One-line-per-call output, as ``Console.print(text, no_wrap=True, overflow="ellipsis",
    crop=True)`` renders it, without the Console: rich's print machinery (measuring, wrapping,
    the render pipeline) cost about 0.3 ms a line, seconds for a capture with thousands of
    contacts. Text.truncate and Style.render are rich's own, so cropping and colours match
    (tests/report/test_table_render.py checks the output equals the Console's)."""

    def __init__(self, width: int, color: bool) -> None:
        self.width = width
        self.color = color
        self._console = rich_console(width, color) if color else None
        self._out: list[str] = []

    def line(self, text: Text | str, style: str | None = None) -> None:
        text = text.copy() if isinstance(text, Text) else Text(text, style=style or "")
        text.truncate(self.width, overflow="ellipsis")
        if self._console is None:
            self._out.append(text.plain.rstrip("\n") + "\n")
            return
        rendered = [seg.style.render(seg.text, color_system=ColorSystem.STANDARD)
                    if seg.style and not seg.control else seg.text
                    for seg in _NEWLINE.join([text]).render(self._console)]
        self._out.append("".join(rendered) + "\n")

    def print(self) -> None:
        self._out.append("\n")

    def getvalue(self) -> str:
        return "".join(self._out)


def _by_process(contacts: Sequence[Contact]) -> list[tuple[str, list[Contact]]]:
    groups: dict[str, list[Contact]] = defaultdict(list)
    for c in contacts:
        groups[contact_process_label(c)].append(c)
    return sorted(groups.items(),
                  key=lambda kv: process_sort_key(kv[0], min(c.ts for c in kv[1])))


def _process_heading(label: str, items: Sequence[Contact]) -> Text:
    first = items[0]
    heading = Text(clean(label), style="bold yellow" if label == UNATTRIBUTED else "bold")
    proc = first.process
    if proc is not None:
        heading.append(f"  [{proc.source}]", style=MUTED)
        if proc.ancestors:
            # the chain at connect time: go ← gopls ← python
            # (the nearest few: the command line must still fit the heading)
            heading.append(f"  ppid {proc.ppid}  {clean(proc.chain_text(limit=3))}", style=MUTED)
        elif proc.ppid is not None:
            parent = f" ← {clean(proc.parent_comm)}" if proc.parent_comm else ""
            heading.append(f"  ppid {proc.ppid}{parent}", style=MUTED)
        if proc.cmdline:
            heading.append(f"  {clean(proc.cmdline)}", style=MUTED)
    elif first.client_evidence:
        heading.append(f"  {clean(first.client_evidence)}", style=MUTED)
    return heading


def _contact_lines(items: Sequence[Contact], width: int) -> list[Text]:
    """One line per contact, plus one per finding spanning the operation and detail columns.

    Laid out by hand rather than with a rich ``Table``: a finding needs the whole right half of
    the line, and a table cannot span columns.
    """
    host_w = max(min(max(cell_len(clean(c.host)) for c in items), HOST_MAX, max(10, width // 4)),
                 len("host"))
    op_w = min(max(max(cell_len(_ops(c)) for c in items), len("operation")),
               OP_MAX)
    fixed = TIME_W + 1 + host_w + 1 + LAYER_W + 1 + op_w + 1
    detail_w = max(width - fixed, 8)
    lines = [_row([("time", MUTED, TIME_W), ("host", MUTED, host_w), ("layer", MUTED, LAYER_W),
                   ("operation", MUTED, op_w), ("detail", MUTED, detail_w)], width)]
    hosts_first: dict[str, float] = {}
    for c in items:
        hosts_first[c.host] = min(c.ts, hosts_first.get(c.host, c.ts))
    ordered = sorted(items, key=lambda c: (hosts_first[c.host], c.host, layer_rank(c.layer), c.ts))
    prev_host = None
    for c in ordered:
        host = clean(c.host) if c.host != prev_host else ""
        prev_host = c.host
        detail = clean(contact_detail(c, ja4=False)) or clean(endpoint(c))
        if c.via_proxy is not None:
            detail += f" via proxy {clean(hostport(c.via_proxy.address, c.via_proxy.port))}"
        mark = FINDING_STYLE if c.findings else ""
        lines.append(_row([
            (fmt_time(c.ts), MUTED, TIME_W),
            (host, "bold", host_w),
            (LAYER_TITLE.get(c.layer, c.layer), LAYER_STYLE.get(c.layer, ""), LAYER_W),
            (_ops(c), mark or ("" if contact_ops(c) else MUTED), op_w),
            (detail, mark, detail_w),
        ], width))
        for f in c.findings:
            lines.extend(_finding_lines(clean(f.kind), clean(f.detail), width))
    return lines


def _cause_lines(items: Sequence[Contact], width: int) -> list[Text]:
    """Under a process's contacts, why it made them: each distinct cause once, per host in order
    of first contact, at most CAUSE_LINES lines each (the HTML and jsonl carry them whole)."""
    seen: dict[tuple[str, str], None] = {}
    for c in sorted(items, key=lambda c: c.ts):
        if c.cause:
            seen.setdefault((c.host, c.cause), None)
    out: list[Text] = []
    room = max(width - 4, 10)
    for host, cause in seen:
        words = textwrap.wrap(f"why {host}: {cause}", width=room, break_on_hyphens=False,
                              break_long_words=True)
        if len(words) > CAUSE_LINES:
            words = words[:CAUSE_LINES - 1] + [" ".join(words[CAUSE_LINES - 1:])]
        for i, part in enumerate(words[:CAUSE_LINES]):
            text = Text(("  " if i == 0 else "    ") + clean(part), style=CAUSE_STYLE)
            text.truncate(width, overflow="ellipsis")
            out.append(text)
    return out


def _finding_lines(kind: str, detail: str, width: int) -> list[Text]:
    """A finding under its contact, from the host column on: at most two lines, then elided.

    The detail is the evidence, so it gets more room than a table cell, but never a paragraph.
    """
    indent = " " * (TIME_W + 1)
    room = max(width - len(indent) - 2, 10)
    words = textwrap.wrap(f"! {kind}: {detail}", width=room, break_on_hyphens=False,
                          break_long_words=True)
    if len(words) > FINDING_LINES:
        rest = " ".join(words[FINDING_LINES - 1:])
        words = words[:FINDING_LINES - 1] + [rest]
    out = []
    for i, part in enumerate(words[:FINDING_LINES]):
        text = Text(indent + ("" if i == 0 else "  "))
        if i == 0:
            head = f"! {kind}"
            text.append(part[:len(head)], style=FINDING_STYLE)
            text.append(part[len(head):], style="red")
        else:
            text.append(part, style="red")
        text.truncate(width, overflow="ellipsis")
        out.append(text)
    return out


def _ops(contact: Contact) -> str:
    return clean(", ".join(contact_ops(contact)) or "-")


def _row(cells: Sequence[tuple[str, str, int]], width: int) -> Text:
    row = Text()
    for i, (value, style, cell_w) in enumerate(cells):
        part = Text(value, style=style)
        part.truncate(cell_w, overflow="ellipsis", pad=i < len(cells) - 1)
        if i:
            row.append(" ")
        row.append_text(part)
    row.truncate(width, overflow="ellipsis")
    row.rstrip()
    return row


def _summary_lines(contacts: Sequence[Contact], width: int) -> list[Text]:
    rows = summarize_groups(contacts)
    proc_w = max(min(max(cell_len(clean(r.process)) for r in rows), PROC_MAX, max(10, width * 3 // 10)),
                 len("process"))
    host_w = max(min(max(cell_len(clean(r.host)) for r in rows), HOST_MAX, max(10, width // 4)),
                 len("host"))
    count_w = max(len(str(r.count)) for r in rows) + 1
    find_w = max(len(str(r.findings)) for r in rows) + 1
    ops_w = max(width - (proc_w + host_w + LAYER_W + count_w + find_w + 5), 6)
    lines = [_row([("process", MUTED, proc_w), ("host", MUTED, host_w), ("layer", MUTED, LAYER_W),
                   ("n".rjust(count_w), MUTED, count_w), ("!".rjust(find_w), MUTED, find_w),
                   ("operations", MUTED, ops_w)], width)]
    prev_proc = None
    for r in rows:
        proc_style = "yellow" if r.process == UNATTRIBUTED else ""
        finds = str(r.findings).rjust(find_w) if r.findings else ""
        lines.append(_row([
            (clean(r.process) if r.process != prev_proc else "", proc_style, proc_w),
            (clean(r.host), "bold", host_w),
            (LAYER_TITLE.get(r.layer, r.layer), LAYER_STYLE.get(r.layer, ""), LAYER_W),
            (str(r.count).rjust(count_w), "", count_w),
            (finds, FINDING_STYLE, find_w),
            (clean(", ".join(r.operations) or "-"), "" if r.operations else MUTED, ops_w),
        ], width))
        prev_proc = r.process
    return lines


def _read_summary(line: LineFn, stats: Sequence[CaptureStats]) -> None:
    for s in stats:
        size = _human_bytes(s.bytes)
        errors = sum(s.parse_errors.values())
        extra = f", {errors} unparsed message{'s' if errors != 1 else ''}" if errors else ""
        line(Text(f"read {clean(_short(s.capture))}: {s.packets} packet{'s' if s.packets != 1 else ''}, "
                  f"{size}{extra}",
                  style=MUTED))


def _short(capture: str) -> str:
    # The file name: full paths of captures would push the counts off an 80-column line.
    return PurePath(capture).name or capture


def _warnings(line: LineFn, stats: Sequence[CaptureStats], width: int) -> None:
    """Warnings wrap (with a hanging indent) rather than lose their end: they are the point."""
    for s in stats:
        problems = list(s.warnings)
        if s.damaged and not problems:
            problems.append("the file ends in a truncated or corrupt record")
        if s.kernel_drops:
            problems.append(f"the kernel dropped {s.kernel_drops} packets while capturing")
        for w in problems:
            text = clean(w)
            if s.capture not in text:
                text = f"{clean(_short(s.capture))}: {text}"
            text = text.replace(s.capture, _short(s.capture))
            for part in textwrap.wrap("warning: " + text, width=max(width, 20),
                                      subsequent_indent="  ", break_on_hyphens=False):
                line(Text(part, style="yellow"))


def _human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"
