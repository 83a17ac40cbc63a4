"""One self-contained HTML page: the answer first, then a timeline, then the tables behind it.

The page loads nothing at view time (plotly.js and the stylesheet are inline, and a
Content-Security-Policy forbids any fetch), so it can be mailed or archived with a capture.
Every value from a capture is escaped here; the only unescaped strings are our own markup.
"""

from __future__ import annotations

import html
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from importlib import resources
from typing import TYPE_CHECKING

from .. import __version__
from ..base.model import CaptureStats, Contact
from .describe import (
    LAYER_ORDER,
    LAYER_TITLE,
    UNATTRIBUTED,
    contact_detail,
    contact_ops,
    contact_process_label,
    endpoint,
    fmt_span,
    fmt_time,
    host_sentences,
    layer_rank,
    process_sort_key,
)

if TYPE_CHECKING:
    from ..pipeline import Report

CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:; font-src data:")


class Safe(str):
    """Markup built here from escaped parts: table cells pass it through unchanged."""


def esc(value: object) -> Safe:
    return Safe(html.escape("" if value is None else str(value), quote=True))


def cell(value: object) -> Safe:
    return value if isinstance(value, Safe) else esc(value)


def layer_badge(layer: str) -> Safe:
    css = f"layer-{layer}" if layer in LAYER_ORDER else ""
    return Safe(f'<span class="layer {css}">{esc(LAYER_TITLE.get(layer, layer))}</span>')


def table(headers: Sequence[str], rows: Iterable[Sequence[object]], numeric: Iterable[int] = (),
          row_classes: Sequence[str] | None = None, css: str = "") -> Safe:
    nums = set(numeric)

    def attrs(i: int) -> str:
        return ' class="num"' if i in nums else ""

    head = "".join(f"<th{attrs(i)}>{esc(h)}</th>" for i, h in enumerate(headers))
    body = []
    for n, row in enumerate(rows):
        klass = row_classes[n] if row_classes and row_classes[n] else ""
        tr = f'<tr class="{klass}">' if klass else "<tr>"
        body.append(tr + "".join(f"<td{attrs(i)}>{cell(v)}</td>" for i, v in enumerate(row))
                    + "</tr>")
    klass = f' class="{css}"' if css else ""
    return Safe(f"<table{klass}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


def render_html(report: Report) -> str:
    contacts = sorted(report.contacts, key=lambda c: c.ts)
    stats = report.stats
    parts = [_head(), "<body>", _header(contacts, stats), _answer(contacts, stats)]
    if contacts:
        from .timeline import timeline_html

        parts.append('<section id="timeline-section"><h2>Timeline</h2>'
                     '<p class="legend-note">One lane per process, one mark per contact, coloured '
                     'by layer; diamonds with a red outline carry findings. Hover for details, drag '
                     'to zoom, double-click to reset.</p>'
                     f"{timeline_html(contacts)}</section>")
    parts += [_findings(contacts), _causes(contacts), _hosts(contacts), _processes(contacts),
              _operations(contacts), _all_contacts(contacts), _captures(stats, report.warnings),
              f"<footer>proxytrace {esc(__version__)} · times are UTC · contacts are evidence "
              "seen in the capture (a DNS query, a TLS ClientHello, an HTTP request)</footer>",
              "</body></html>"]
    return "\n".join(parts) + "\n"


def _head() -> str:
    css = resources.files("analyzer.data").joinpath("report.css").read_text(encoding="utf-8")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>proxytrace report</title><style>{css}</style></head>")


def _header(contacts: Sequence[Contact], stats: Sequence[CaptureStats]) -> str:
    names = ", ".join(s.capture for s in stats) or "no capture"
    when = ""
    if contacts:
        when = f" · {fmt_span(contacts[0].ts, contacts[-1].ts)}"
    nav = "".join(f'<a href="#{a}">{t}</a>' for a, t in (
        ("timeline-section", "Timeline"), ("findings", "Findings"), ("causes", "Causes"),
        ("hosts", "Hosts"), ("processes", "Processes"), ("operations", "Operations"),
        ("contacts", "Contacts"), ("captures", "Captures")))
    return (f"<header><h1>proxytrace report</h1><p class=\"meta\">{esc(names)}{esc(when)}</p>"
            f"<nav>{nav}</nav></header>")


def _answer(contacts: Sequence[Contact], stats: Sequence[CaptureStats]) -> str:
    if not contacts:
        packets = sum(s.packets for s in stats)
        return ('<section id="answer" class="answer" data-plotted-points="0">'
                "<p><b>No contact with a watched host.</b></p>"
                f'<p class="muted">Read {len(stats)} capture{"s" if len(stats) != 1 else ""}, '
                f"{packets} packets.</p></section>")
    items = []
    for sentence in host_sentences(contacts):
        host, _, rest = sentence.partition(" was contacted ")
        items.append(f"<li><b>{esc(host)}</b> was contacted {esc(rest)}</li>")
    nfind = sum(len(c.findings) for c in contacts)
    unattributed = sum(1 for c in contacts if contact_process_label(c) == UNATTRIBUTED)
    counts = [("contacts", len(contacts), ""), ("hosts", len({c.host for c in contacts}), ""),
              ("processes", len({contact_process_label(c) for c in contacts} - {UNATTRIBUTED}), ""),
              ("findings", nfind, "bad" if nfind else ""),
              ("unattributed", unattributed, "warn" if unattributed else "")]
    badges = "".join(f'<span class="{" ".join(["count", k]).strip()}"><b>{n}</b> '
                     f"{esc(_plural(label, n))}</span>" for label, n, k in counts)
    alert = ""
    if nfind:
        kinds = Counter(f.kind for c in contacts for f in c.findings)
        listed = ", ".join(f"{k} ×{n}" for k, n in kinds.most_common())
        alert = f'<p class="alert">Findings: {esc(listed)} (<a href="#findings">details</a>)</p>'
    return (f'<section id="answer" class="answer"><ul>{"".join(items)}</ul>{alert}'
            f'<div class="counts">{badges}</div></section>')


def _time(ts: float) -> Safe:
    return Safe(f'<span class="time">{fmt_time(ts)}</span>')


def _plural(label: str, n: int) -> str:
    singular = {"contacts": "contact", "hosts": "host", "processes": "process",
                "findings": "finding"}
    return singular.get(label, label) if n == 1 else label


def _proc_cell(c: Contact) -> Safe:
    label = contact_process_label(c)
    css = ' class="unattributed"' if label == UNATTRIBUTED else ""
    return Safe(f"<span{css}>{esc(label)}</span>")


def _findings(contacts: Sequence[Contact]) -> str:
    rows = []
    for c in contacts:
        for f in c.findings:
            frames = ", ".join(str(x) for x in (f.frames or c.frames))
            rows.append([_time(c.ts), Safe(f"<b>{esc(c.host)}</b>"), layer_badge(f.layer),
                         Safe(f'<span class="kind">{esc(f.kind)}</span>'), f.detail,
                         _proc_cell(c), Safe(f'<span class="mono">{esc(frames)}</span>'),
                         Safe(f'<span class="mono">{esc(c.flow_id)}</span>')])
    body = (table(["time", "host", "layer", "finding", "evidence", "process", "frames", "flow"], rows)
            if rows else '<p class="muted">No finding: nothing looked hijacked or downgraded.</p>')
    return f'<section id="findings"><h2>Findings</h2>{body}</section>'


def _causes(contacts: Sequence[Contact]) -> str:
    by_cause: dict[str, list[Contact]] = defaultdict(list)
    for c in contacts:
        if c.cause:
            by_cause[c.cause].append(c)
    rows = [[Safe(f'<span class="mono">{esc(cause)}</span>'),
             ", ".join(sorted({c.host for c in items})), len(items),
             ", ".join(sorted({contact_process_label(c) for c in items})),
             ", ".join(sorted({op for c in items for op in contact_ops(c)}))]
            for cause, items in sorted(by_cause.items(), key=lambda kv: -len(kv[1]))]
    body = (table(["setting", "hosts", "contacts", "processes", "operations"], rows, numeric=[2])
            if rows else '<p class="muted">No configuration cause is known for these contacts '
            "(the Go configuration was not given or does not explain them).</p>")
    return f'<section id="causes"><h2>Configuration causes</h2>{body}</section>'


def _hosts(contacts: Sequence[Contact]) -> str:
    by_host: dict[str, list[Contact]] = defaultdict(list)
    for c in contacts:
        by_host[c.host].append(c)
    rows = []
    for host, items in sorted(by_host.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        layers: Counter[str] = Counter(c.layer for c in items)
        rows.append([Safe(f"<b>{esc(host)}</b>"), len(items),
                     *(layers.get(x, 0) or "" for x in LAYER_ORDER),
                     ", ".join(sorted({contact_process_label(c) for c in items})),
                     ", ".join(sorted({op for c in items for op in contact_ops(c)})),
                     sum(len(c.findings) for c in items) or "",
                     _time(items[0].ts), _time(items[-1].ts)])
    body = table(["host", "contacts", "DNS", "TLS", "HTTP", "processes", "operations", "findings",
                  "first", "last"], rows, numeric=[1, 2, 3, 4, 7]) if rows else ""
    return f'<section id="hosts"><h2>Hosts</h2>{body}</section>'


# recorded to find files (GOENV, the CA bundle), not worth a column's space
_QUIET_ENV = frozenset({"HOME", "XDG_CONFIG_HOME", "SSL_CERT_FILE", "SSL_CERT_DIR"})


def _processes(contacts: Sequence[Contact]) -> str:
    by_proc: dict[str, list[Contact]] = defaultdict(list)
    for c in contacts:
        by_proc[contact_process_label(c)].append(c)
    rows = []
    order = sorted(by_proc, key=lambda k: process_sort_key(k, by_proc[k][0].ts))
    for label in order:
        items = by_proc[label]
        proc = items[0].process
        source = proc.source if proc else ("inferred" if items[0].client else "")
        cmdline = proc.cmdline if proc else items[0].client_evidence
        parent: object = ""
        if proc and proc.ancestors:
            # the chain at connect time (go ← gopls ← python), each ancestor's name titled
            # with its pid and command line
            parent = Safe(" ← ".join([esc(proc.comm or "?"), *(
                f'<span title="{esc(f"pid {a.pid}: {a.cmdline or a.comm or chr(63)}")}">'
                f'{esc(a.comm or "?")}</span>' for a in proc.ancestors)]))
        elif proc and proc.ppid is not None:
            parent = f"{proc.parent_comm or '?'} (pid {proc.ppid})"
        env = " ".join(f"{k}={v}" for k, v in (proc.env or ()) if k not in _QUIET_ENV) if proc else ""
        rows.append([_proc_cell(items[0]), source,
                     Safe(f'<span class="mono cmd">{esc(cmdline)}</span>'), parent,
                     Safe(f'<span class="mono cmd">{esc(env)}</span>'), len(items),
                     ", ".join(sorted({c.host for c in items})),
                     " ".join(LAYER_TITLE[x] for x in LAYER_ORDER if any(c.layer == x for c in items)),
                     ", ".join(sorted({op for c in items for op in contact_ops(c)}))])
    body = table(["process", "attribution", "command line", "parent chain", "Go environment",
                  "contacts", "hosts", "layers", "operations"], rows, numeric=[5]) if rows else ""
    return f'<section id="processes"><h2>Processes</h2>{body}</section>'


def _operations(contacts: Sequence[Contact]) -> str:
    groups: dict[tuple[str, str], list[Contact]] = defaultdict(list)
    for c in contacts:
        for op in contact_ops(c) or ("",):
            groups[(op, c.host)].append(c)
    rows = [[Safe(f"<b>{esc(op)}</b>") if op else Safe('<span class="muted">unknown</span>'),
             host, len(items), ", ".join(sorted({contact_process_label(c) for c in items})),
             " ".join(LAYER_TITLE[x] for x in LAYER_ORDER if any(c.layer == x for c in items))]
            for (op, host), items in sorted(groups.items(),
                                            key=lambda kv: (kv[0][0] == "", kv[0][0], kv[0][1]))]
    note = ('<p class="muted">The operation is known when the bytes show it: plaintext HTTP, a TLS '
            "key log, or the go command's own <code>-x</code> log.</p>")
    body = table(["operation", "host", "contacts", "processes", "layers"], rows, numeric=[2]) \
        if rows else ""
    return f'<section id="operations"><h2>Operations</h2>{note if rows else ""}{body}</section>'


def _all_contacts(contacts: Sequence[Contact]) -> str:
    ordered = sorted(contacts, key=lambda c: (c.ts, layer_rank(c.layer)))
    rows = [[_time(c.ts), _proc_cell(c), Safe(f"<b>{esc(c.host)}</b>"), layer_badge(c.layer),
             ", ".join(contact_ops(c)), Safe(f'<span class="cmd">{esc(contact_detail(c))}</span>'),
             Safe(f'<span class="mono">{esc(c.src)}:{c.sport} → {esc(endpoint(c))}</span>'),
             Safe(f'<span class="mono">{esc(c.flow_id)}</span>')] for c in ordered]
    classes = ["has-finding" if c.findings else "" for c in ordered]
    body = table(["time", "process", "host", "layer", "operation", "detail", "connection", "flow"],
                 rows, row_classes=classes) if rows else ""
    return (f'<section id="contacts"><h2>Contacts</h2><details{" open" if len(rows) <= 50 else ""}>'
            f"<summary>All {len(rows)} contacts</summary>{body}</details></section>")


def _captures(stats: Sequence[CaptureStats], warnings: Sequence[str]) -> str:
    rows = []
    for s in stats:
        problems = list(s.warnings)
        if s.damaged and not problems:
            problems.append("the file ends in a truncated or corrupt record")
        if s.kernel_drops:
            problems.append(f"the kernel dropped {s.kernel_drops} packets while capturing")
        rows.append([Safe(f'<span class="mono">{esc(s.capture)}</span>'), s.packets, s.bytes,
                     s.link_type or "", sum(s.parse_errors.values()) or "",
                     Safe("<br>".join(f'<span class="warning">{esc(p)}</span>' for p in problems))])
    body = table(["capture", "packets", "bytes", "link type", "unparsed", "warnings"], rows,
                 numeric=[1, 2, 4])
    # The pipeline repeats capture warnings in the report's own list: show each once.
    seen = {w for s in stats for w in s.warnings}
    extra = "".join(f'<p class="warning">{esc(w)}</p>' for w in warnings if w not in seen)
    return f'<section id="captures"><h2>Captures</h2>{body}{extra}</section>'
