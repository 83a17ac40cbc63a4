"""Short human descriptions of contacts, shared by the terminal table and the HTML report.

Both human formats must say the same thing about a contact (who, what, why), so the wording lives
here once; the renderers only decide layout and colour.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from ..base.model import Contact, ProcessInfo

LAYER_ORDER = ("dns", "tls", "http", "socks")
LAYER_TITLE = {"dns": "DNS", "tls": "TLS", "http": "HTTP", "socks": "SOCKS"}
UNATTRIBUTED = "unattributed"


def fmt_time(ts: float) -> str:
    """Wall-clock time of day in UTC with milliseconds (the date is shown once, in the header)."""
    dt = datetime.fromtimestamp(ts, UTC)
    return dt.strftime("%H:%M:%S.") + f"{dt.microsecond // 1000:03d}"


def fmt_datetime(ts: float) -> str:
    """Date and time of day (UTC, no zone suffix: callers say UTC once)."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d ") + fmt_time(ts)


def fmt_span(first: float, last: float) -> str:
    """``2026-11-18 11:06:40.010 to 11:06:44.500 UTC``; the date is repeated when it changes."""
    same_day = datetime.fromtimestamp(first, UTC).date() == datetime.fromtimestamp(last, UTC).date()
    return f"{fmt_datetime(first)} to {fmt_time(last) if same_day else fmt_datetime(last)} UTC"


def process_label(proc: ProcessInfo | None, client: str | None = None) -> str:
    """``go (pid 4121)``; an inferred client is labelled as such; otherwise ``unattributed``."""
    if proc is not None:
        name = proc.comm or _program(proc.cmdline) or "?"
        return f"{name} (pid {proc.pid})"
    if client:
        return f"{client} (inferred)"
    return UNATTRIBUTED


def contact_process_label(contact: Contact) -> str:
    return process_label(contact.process, contact.client)


def _program(cmdline: str | None) -> str | None:
    if not cmdline:
        return None
    first = cmdline.split()[0] if cmdline.split() else ""
    return first.rsplit("/", 1)[-1] or None


def process_sort_key(label: str, first_ts: float) -> tuple[int, float, str]:
    """Attributed processes first, in order of first contact; unattributed last."""
    return (1 if label == UNATTRIBUTED else 0, first_ts, label)


def contact_ops(contact: Contact) -> tuple[str, ...]:
    """Go operations on the contact's connection, each once, in order (a decrypted TLS
    connection carries several; ``operation`` alone is the first or only one)."""
    ops = [op for op in (*contact.operations, contact.operation) if op]
    return tuple(dict.fromkeys(ops))


def contact_detail(contact: Contact, ja4: bool = True) -> str:
    """What the layer shows, in one short line (no operation, no findings)."""
    if contact.layer == "dns" and contact.dns is not None:
        d = contact.dns
        if d.answers:
            return f"{d.qtype} → {', '.join(d.answers)}"
        if d.rcode and d.rcode != "NOERROR":
            return f"{d.qtype} {d.rcode}"
        return f"{d.qtype} (no answer seen)" if d.rcode is None else f"{d.qtype} (empty answer)"
    if contact.layer == "tls" and contact.tls is not None:
        t = contact.tls
        parts = []
        if not t.sni:
            parts.append("no SNI, address from DNS" if t.name_from_dns else "no SNI")
        if t.version:
            parts.append(t.version)
        if t.alpn:
            parts.append("/".join(t.alpn))
        if t.cert_issuer:
            parts.append(f"issuer {t.cert_issuer}")
        if ja4 and t.ja4:
            parts.append(t.ja4)
        return " ".join(parts) or "ClientHello"
    if contact.layer == "http" and contact.http is not None:
        h = contact.http
        text = " ".join(p for p in (h.method, h.path) if p)
        if h.status is not None:
            text += f" → {h.status}"
        if h.location:
            text += f" {h.location}"
        return text or "request"
    if contact.layer == "socks" and contact.notes:
        return contact.notes[0]  # the request and the proxy's answer
    return ""


def hostport(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def endpoint(contact: Contact) -> str:
    return f"{contact.transport} {hostport(contact.dst, contact.dport)}"


def join_words(words: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if not words:
        return ""
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " and " + words[-1]


@dataclass(frozen=True, slots=True)
class GroupSummary:
    """Contacts of one process with one host at one layer."""

    process: str
    host: str
    layer: str
    count: int
    first_ts: float
    last_ts: float
    operations: tuple[str, ...]
    findings: int


def summarize_groups(contacts: Iterable[Contact]) -> list[GroupSummary]:
    """One row per process x host x layer, processes in order of first contact."""
    groups: dict[tuple[str, str, str], list[Contact]] = defaultdict(list)
    for c in contacts:
        groups[(contact_process_label(c), c.host, c.layer)].append(c)
    first_by_proc: dict[str, float] = {}
    first_by_host: dict[tuple[str, str], float] = {}
    for (proc, host, _), items in groups.items():
        first = min(c.ts for c in items)
        first_by_proc[proc] = min(first, first_by_proc.get(proc, first))
        first_by_host[(proc, host)] = min(first, first_by_host.get((proc, host), first))
    rows = []
    for (proc, host, layer), items in groups.items():
        ops = Counter(op for c in items for op in contact_ops(c))
        rows.append(GroupSummary(
            process=proc, host=host, layer=layer, count=len(items),
            first_ts=min(c.ts for c in items), last_ts=max(c.ts for c in items),
            operations=tuple(op for op, _ in ops.most_common()),
            findings=sum(len(c.findings) for c in items),
        ))
    rows.sort(key=lambda r: (process_sort_key(r.process, first_by_proc[r.process]),
                             first_by_host[(r.process, r.host)], r.host, layer_rank(r.layer)))
    return rows


def layer_rank(layer: str) -> int:
    return LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER)


def host_sentences(contacts: Sequence[Contact]) -> list[str]:
    """The answer first: one sentence per watched host, busiest host first.

    ``proxy.golang.org was contacted 3 times, by go (pid 4121) through DNS and TLS, because
    GOSUMDB=...``
    """
    by_host: dict[str, list[Contact]] = defaultdict(list)
    for c in contacts:
        by_host[c.host].append(c)
    out = []
    for host, items in sorted(by_host.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        procs = Counter(contact_process_label(c) for c in items)
        named = [p for p, _ in procs.most_common() if p != UNATTRIBUTED]
        if len(named) > 3:
            extra = len(named) - 3
            named = named[:3] + [f"{extra} more process{'es' if extra != 1 else ''}"]
        unattributed = procs.get(UNATTRIBUTED, 0)
        if unattributed == 1:
            named.append("an unattributed process")
        elif unattributed:
            named.append(f"unattributed processes ({unattributed} contacts)")
        who = join_words(named)
        layers = sorted({c.layer for c in items}, key=layer_rank)
        times = "once" if len(items) == 1 else ("twice" if len(items) == 2 else f"{len(items)} times")
        text = (f"{host} was contacted {times}, by {who} through "
                f"{join_words([LAYER_TITLE.get(x, x) for x in layers])}")
        ops = sorted({op for c in items for op in contact_ops(c)})
        if ops:
            text += f" ({join_words(ops)})"
        causes = sorted({c.cause for c in items if c.cause})
        if causes:
            text += f", because {join_words(causes)}"
        nfind = sum(len(c.findings) for c in items)
        if nfind:
            kinds = sorted({f.kind for c in items for f in c.findings})
            text += f"; {nfind} finding{'s' if nfind != 1 else ''}: {', '.join(kinds)}"
        out.append(text + ".")
    return out
