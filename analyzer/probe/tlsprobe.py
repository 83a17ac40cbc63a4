"""Active TLS checks: the chain a server presents, and whether it verifies, and against what.

Three handshakes per address: one without verification to see whatever the server presents
(an interception proxy included), then one verifying against the system store (what the go
command trusts: SSL_CERT_FILE / SSL_CERT_DIR, then the distribution bundle) and one against
certifi (Mozilla's public roots). A chain trusted only by the system store ends at a locally
added CA: that is what TLS-inspecting middleboxes install, so it is named as an interception CA.
"""

from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass

from ..base.model import Finding
from ..findings.expect import Expectations
from ..findings.tls import TLS13, certificate_findings, issuer_names, version_finding
from ..protocols.certificate import CertificateInfo
from ..protocols.x509 import certificate_info

_VERSIONS = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True, slots=True)
class Handshake:
    version: int | None
    chain: tuple[CertificateInfo, ...]      # as presented, leaf first
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Verification:
    store: str                # "system" or "certifi"
    ok: bool
    message: str              # the verifier's reason on failure
    anchor: str | None = None  # subject of the trust anchor the verified chain ends at


def _der_chain(sock: ssl.SSLSocket) -> list[bytes]:
    # Python 3.13 made the presented chain public; 3.11/3.12 have it on the C object.
    getter = getattr(sock, "get_unverified_chain", None) or getattr(
        getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    if getter is not None:
        out = []
        for cert in getter() or ():
            out.append(cert if isinstance(cert, bytes) else cert.public_bytes(ssl._ssl.ENCODING_DER))  # type: ignore[attr-defined]
        if out:
            return out
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _anchor(sock: ssl.SSLSocket) -> str | None:
    getter = getattr(sock, "get_verified_chain", None) or getattr(
        getattr(sock, "_sslobj", None), "get_verified_chain", None)
    if getter is None:
        return None
    chain = getter() or []
    if not chain:
        return None
    last = chain[-1]
    der = last if isinstance(last, bytes) else last.public_bytes(ssl._ssl.ENCODING_DER)  # type: ignore[attr-defined]
    info = certificate_info(der)
    return info.subject if info else None


def handshake(address: str, port: int, sni: str, timeout: float) -> Handshake:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as sock:
            chain = tuple(c for c in (certificate_info(d) for d in _der_chain(sock)) if c)
            return Handshake(_VERSIONS.get(sock.version() or ""), chain)
    except (OSError, ssl.SSLError) as exc:
        return Handshake(None, (), _error_text(exc))


def verify(address: str, port: int, sni: str, timeout: float, store: str,
           cafile: str | None) -> Verification:
    ctx = ssl.create_default_context(cafile=cafile) if cafile else ssl.create_default_context()
    try:
        with socket.create_connection((address, port), timeout=timeout) as raw, \
                ctx.wrap_socket(raw, server_hostname=sni) as sock:
            return Verification(store, True, "verified", _anchor(sock))
    except ssl.SSLCertVerificationError as exc:
        return Verification(store, False, exc.verify_message or str(exc))
    except (OSError, ssl.SSLError) as exc:
        return Verification(store, False, _error_text(exc))


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timed out"
    return getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)


def judge(host: str, server: str, shake: Handshake, checks: list[Verification],
          expectations: Expectations) -> tuple[list[Finding], list[str]]:
    """Findings and notes for one handshake (the same certificate rules as a capture's)."""
    findings: list[Finding] = []
    notes: list[str] = []
    expected = expectations.for_host(host)
    downgrade = version_finding(host, server, TLS13, shake.version, expected)
    if downgrade:
        findings.append(downgrade)
    if not shake.chain:
        return findings, notes
    leaf = shake.chain[0]
    findings.extend(certificate_findings(host, server, leaf, host, True, expected))
    by_store = {v.store: v for v in checks}
    system, public = by_store.get("system"), by_store.get("certifi")
    has_issuers = expected is not None and bool(expected.issuers)
    if system and public and system.ok and not public.ok:
        text = (f"{host}: chain from {server} ends at {system.anchor or leaf.issuer}, trusted by "
                f"this machine's store but by no public root (certifi): an interception CA")
        if has_issuers and expected is not None and expected.issuer_allowed(issuer_names(leaf)):
            notes.append(text + "; accepted: its issuer is expected for the host")
        elif has_issuers:
            notes.append(text)  # the issuer finding already says the certificate is wrong
        else:
            findings.append(Finding("tls", "tls-interception-ca", text))
    elif system and public and not system.ok and not public.ok and not has_issuers \
            and not leaf.self_signed:
        findings.append(Finding("tls", "tls-untrusted-issuer",
                                f"{host}: certificate from {server} issued by {leaf.issuer} "
                                f"verifies against neither the system store ({system.message}) "
                                f"nor certifi ({public.message})"))
    return list(dict.fromkeys(findings)), notes
