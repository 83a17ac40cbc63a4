"""``--deny HOST``: a CI gate that fails when a denied host was contacted."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..base.model import Contact
from ..base.watchlist import WatchList


@dataclass(frozen=True, slots=True)
class Violation:
    contact: Contact
    pattern: str

    def reason(self) -> str:
        c = self.contact
        who = (f"{c.process.comm or '?'} (pid {c.process.pid})" if c.process
               else "an unattributed process")
        op = f" [{c.operation}]" if c.operation else ""
        return (f"denied host {c.host} contacted over {c.layer}{op} by {who} "
                f"({c.src}:{c.sport} -> {c.dst}:{c.dport})")

    def github_annotation(self) -> str:
        # Workflow commands: '%', CR and LF in the message must be escaped.
        msg = self.reason().replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return f"::error title=proxytrace deny {self.pattern}::{msg}"


def check_denied(contacts: Iterable[Contact], deny: Sequence[str]) -> list[Violation]:
    """One violation per contact whose host matches a ``--deny`` name or ``*.pattern``."""
    if not deny:
        return []
    rules = [(name, WatchList.build([name])) for name in deny]
    out = []
    for c in contacts:
        for name, rule in rules:
            if rule.matches(c.host):
                out.append(Violation(c, name))
                break
    return out
