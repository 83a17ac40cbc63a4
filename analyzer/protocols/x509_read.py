"""Reading a DER certificate into a CertificateInfo with ``cryptography`` (see x509.py)."""

from __future__ import annotations

import hashlib
import warnings
from datetime import datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509.oid import NameOID

from .certificate import CertificateInfo

# What cryptography raises on DER it cannot make sense of; it parses lazily, so these can come
# from attribute access long after load_der_x509_certificate succeeded.
_UNREADABLE = (ValueError, TypeError, UnsupportedAlgorithm, x509.InvalidVersion,
               x509.DuplicateExtension, x509.UnsupportedGeneralNameType)


def _first(name: x509.Name, oid: x509.ObjectIdentifier) -> str | None:
    for attr in name.get_attributes_for_oid(oid):
        value = attr.value
        return value if isinstance(value, str) else value.decode("utf-8", "replace")
    return None


def _sans(cert: x509.Certificate) -> tuple[str, ...]:
    try:
        ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    except _UNREADABLE:
        # A broken extension block should not hide the subject and issuer we could read.
        return ()
    san = ext.value
    dns = [name.lower() for name in san.get_values_for_type(x509.DNSName)]
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return tuple(dns + ips)


def _self_signed(cert: x509.Certificate) -> bool:
    if cert.issuer != cert.subject:
        return False
    try:
        cert.verify_directly_issued_by(cert)
    except (InvalidSignature, *_UNREADABLE):
        return False
    return True


def _timestamp(when: datetime) -> float | None:
    try:
        return when.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def read_certificate(der: bytes) -> CertificateInfo | None:
    """Parse one DER certificate; None when cryptography cannot read it."""
    # cryptography warns about oddities (a non-positive serial number, a bad attribute length)
    # while it parses; in a report of someone else's certificate they are noise.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", CryptographyDeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        return _read(der)


def _read(der: bytes) -> CertificateInfo | None:
    try:
        cert = x509.load_der_x509_certificate(der)
        subject, issuer = cert.subject, cert.issuer
        return CertificateInfo(
            subject=subject.rfc4514_string(),
            issuer=issuer.rfc4514_string(),
            subject_cn=_first(subject, NameOID.COMMON_NAME),
            issuer_cn=_first(issuer, NameOID.COMMON_NAME),
            issuer_o=_first(issuer, NameOID.ORGANIZATION_NAME),
            sans=_sans(cert),
            self_signed=_self_signed(cert),
            not_before=_timestamp(cert.not_valid_before_utc),
            not_after=_timestamp(cert.not_valid_after_utc),
            sha256=hashlib.sha256(der).hexdigest(),
        )
    except _UNREADABLE:
        return None
