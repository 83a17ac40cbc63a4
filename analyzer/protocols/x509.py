"""Server certificates read with ``cryptography`` (never by hand).

The reading itself is in ``x509_read`` and imported on the first certificate: most captures of
Go traffic are TLS 1.3, whose certificates are encrypted, and importing cryptography's X.509
bindings costs a noticeable part of a short run's start-up.
"""

from __future__ import annotations

from .certificate import CertificateInfo


def certificate_info(der: bytes) -> CertificateInfo | None:
    """Parse one DER certificate; None when cryptography cannot read it."""
    from .x509_read import read_certificate

    return read_certificate(der)
