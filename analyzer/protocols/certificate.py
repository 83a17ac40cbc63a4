"""What a report needs from a server certificate (read by ``x509``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """The parts of a server certificate the report shows."""

    subject: str  # RFC 4514 string
    issuer: str
    subject_cn: str | None
    issuer_cn: str | None
    issuer_o: str | None
    sans: tuple[str, ...]  # DNS names (lower-case) and IP addresses
    self_signed: bool  # issuer == subject and the signature verifies with its own key
    not_before: float | None
    not_after: float | None
    sha256: str
