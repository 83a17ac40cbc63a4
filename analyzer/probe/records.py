"""What one active check found: a row of ``proxytrace probe`` output."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from ..base.model import Finding

ProbeLayer = Literal["dns", "tls", "http", "system"]
Status = Literal["ok", "finding", "unreachable", "info"]

# Kinds that say the network could not be asked, not that it lied: reported, never a gate failure.
NOT_HIJACK = frozenset({"probe-unreachable"})


@dataclass(frozen=True, slots=True)
class ProbeResult:
    host: str | None          # the watched name checked (None for machine-wide checks)
    layer: ProbeLayer
    check: str                # "getaddrinfo", "resolver", "hosts-file", "handshake", "redirects"...
    target: str               # what was asked: a resolver address, "addr:port", a URL
    status: Status
    detail: str
    findings: tuple[Finding, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "layer": self.layer, "check": self.check,
                "target": self.target, "status": self.status, "detail": self.detail,
                "findings": [f.to_dict() for f in self.findings], "data": self.data}

    @property
    def hijack(self) -> bool:
        return any(f.kind not in NOT_HIJACK for f in self.findings)


def result(host: str | None, layer: ProbeLayer, check: str, target: str, detail: str,
           findings: list[Finding] | tuple[Finding, ...] = (), data: dict[str, Any] | None = None,
           status: Status | None = None) -> ProbeResult:
    """A result whose status follows from its findings unless given."""
    found = tuple(findings)
    if status is None:
        status = "finding" if any(f.kind not in NOT_HIJACK for f in found) else \
            "unreachable" if found else "ok"
    return ProbeResult(host, layer, check, target, status, detail, found, data or {})
