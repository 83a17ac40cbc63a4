"""What a report needs from a server certificate, read with ``cryptography`` (never by hand).

The reading itself is in ``x509_read`` and imported on the first certificate: most captures of
Go traffic are TLS 1.3, whose certificates are encrypted, and importing cryptography's X.509
bindings costs a noticeable part of a short run's start-up.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CertificateInfo:
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


def certificate_info(der: bytes) -> CertificateInfo | None:
    """Parse one DER certificate; None when cryptography cannot read it."""
    from .x509_read import read_certificate

    return read_certificate(der)
