"""Fold the go command's ``-x`` log into TLS contacts: their Go operation and URL, without decryption.

``go -x`` prints ``# get URL`` when a request starts and ``# get URL: 200 OK (0.012s)`` when it
ends. Lines carry no time, so the live runner stamps each one as it arrives on the pipe; a TLS
contact (its ClientHello) then takes the latest request to its host that started before it.
With HTTP/2 one connection carries many requests: the contact gets the one that opened it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace

from ..base.model import Contact
from ..contacts.operations import go_trace_lines

# The go command prints the start line before it dials, so the line always precedes the
# ClientHello; the slack only absorbs the pipe's delivery delay to our reader.
START_SLACK = 0.01


@dataclass(frozen=True, slots=True)
class TimedGet:
    ts: float
    url: str
    host: str
    path: str
    operation: str | None


def parse_get_line(line: str, ts: float) -> TimedGet | None:
    """A request-start line of ``go -x`` output stamped with ``ts``; None for anything else."""
    gets = go_trace_lines(line)
    if len(gets) != 1 or gets[0].done:
        return None
    g = gets[0]
    return TimedGet(ts, g.url, g.host, g.path, g.operation)


def gets_from_text(text: str, ts: float = 0.0) -> list[TimedGet]:
    """Start lines of a whole saved log, all stamped ``ts`` (for logs read after the fact)."""
    return [TimedGet(ts, g.url, g.host, g.path, g.operation)
            for g in go_trace_lines(text) if not g.done]


def apply_go_trace(contacts: Sequence[Contact], gets: Sequence[TimedGet],
                   pids: Collection[int] | None = None) -> list[Contact]:
    """Give TLS contacts (of ``pids`` when given) the operation and URL of the request that opened them."""
    by_host: dict[str, list[TimedGet]] = {}
    for g in sorted(gets, key=lambda g: g.ts):
        by_host.setdefault(g.host, []).append(g)
    out = []
    for c in contacts:
        if c.layer != "tls" or c.operation is not None or c.host not in by_host:
            out.append(c)
            continue
        if pids is not None and (c.process is None or c.process.pid not in pids):
            out.append(c)
            continue
        before = [g for g in by_host[c.host] if g.ts <= c.ts + START_SLACK]
        if not before:
            out.append(c)
            continue
        g = before[-1]
        out.append(replace(c, operation=g.operation, url=g.url,
                           notes=(*c.notes, "operation from the go command's -x log")))
    return out
