"""TLS hijack findings, from a ClientHello and the server's first flight.

- ``tls-untrusted-issuer``: the leaf's issuer (CN or O) is not among the issuers expected for the
  host.
- ``tls-self-signed``: the leaf signs itself. Not repeated when the issuer finding already says
  the certificate is wrong; still raised when a self-signed leaf borrows an expected issuer's name.
- ``tls-sni-cert-mismatch``: no SAN (or, without SANs, no CN) of the leaf covers the name asked
  for (the SNI, or the DNS name of the address when the client sent no SNI).
- ``tls-version-downgrade``: the server chose a lower version than the client offered, *and*
  either below TLS 1.2 (nothing current negotiates that with a client offering more, and Go's
  client refuses it by default) or below the host's ``min_tls_version`` expectation. TLS 1.2
  chosen when 1.3 was offered is common (older servers and many middleboxes) and is only flagged
  with an expectation.
TLS 1.3 encrypts the certificate: that is a note on the contact, not a finding.
"""

from __future__ import annotations

import ipaddress

from ..base.model import Contact, Finding
from ..base.watchlist import is_ip_address
from ..events.records import TlsSession
from ..protocols.certificate import CertificateInfo
from .access import (
    certificates,
    client_max_version,
    server_version,
    tls_version_code,
    tls_version_name,
)
from .expect import Expectations, HostExpectation

TLS12 = 0x0303
TLS13 = 0x0304
NOTE_TLS13 = "certificate encrypted (TLS 1.3); use `proxytrace probe` or --keylog"


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact, or one left-most ``*`` label covering exactly one label."""
    pattern = pattern.lower().rstrip(".")
    name = name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    suffix = pattern[1:]
    return name.endswith(suffix) and "." not in name[: -len(suffix)] and len(name) > len(suffix)


def cert_covers(info: CertificateInfo, name: str) -> bool:
    try:
        ip = ipaddress.ip_address(name)
    except ValueError:
        ip = None
    if ip is not None:
        return str(ip) in info.sans
    dns_sans = [s for s in info.sans if not is_ip_address(s)]
    candidates = dns_sans or ([info.subject_cn] if info.subject_cn else [])
    return any(name_matches(p, name) for p in candidates)


def issuer_names(info: CertificateInfo) -> tuple[str, ...]:
    return tuple(n for n in (info.issuer_cn, info.issuer_o) if n)


def certificate_findings(host: str, server: str, leaf: CertificateInfo, asked_name: str | None,
                         sni_sent: bool, expected: HostExpectation | None,
                         frames: tuple[int, ...] = ()) -> list[Finding]:
    """Findings on a leaf certificate presented by ``server`` ("addr:port") for ``host``."""
    found: list[Finding] = []
    untrusted = False
    if expected is not None and expected.issuers and not expected.issuer_allowed(issuer_names(leaf)):
        untrusted = True
        self_note = " (self-signed)" if leaf.self_signed else ""
        found.append(Finding("tls", "tls-untrusted-issuer",
                             f"{host}: certificate issued by {leaf.issuer}{self_note}; expected "
                             f"issuer {' or '.join(expected.issuers)} ({expected.pattern}); "
                             f"server {server}, cert sha256 {leaf.sha256[:16]}", frames))
    if leaf.self_signed and not untrusted:
        found.append(Finding("tls", "tls-self-signed",
                             f"{host}: self-signed certificate {leaf.subject} from {server}, "
                             f"cert sha256 {leaf.sha256[:16]}", frames))
    # A bare address with no SNI names nothing the certificate could be checked against.
    if asked_name and (sni_sent or not is_ip_address(asked_name)) and not cert_covers(leaf, asked_name):
        names = ", ".join(leaf.sans) or (f"CN={leaf.subject_cn}" if leaf.subject_cn else "none")
        how = "the SNI" if sni_sent else "no SNI sent; the name from DNS or CONNECT"
        found.append(Finding("tls", "tls-sni-cert-mismatch",
                             f"{asked_name} ({how}) not covered by the certificate from {server} "
                             f"(names: {names})", frames))
    return found


def version_finding(host: str, server: str, offered: int | None, chosen: int | None,
                    expected: HostExpectation | None, frames: tuple[int, ...] = ()) -> Finding | None:
    if offered is None or chosen is None or chosen >= offered:
        return None
    minimum = tls_version_code(expected.min_tls_version) if expected else None
    if chosen < TLS12:
        why = "below TLS 1.2"
    elif minimum is not None and chosen < minimum:
        why = f"below the {tls_version_name(minimum)} expected for {expected.pattern if expected else '?'}"
    else:
        return None
    return Finding("tls", "tls-version-downgrade",
                   f"{host}: client offered up to {tls_version_name(offered)}, server "
                   f"{server} chose {tls_version_name(chosen)} ({why})", frames)


def session_findings(contact: Contact, session: TlsSession | None,
                     expectations: Expectations) -> tuple[list[Finding], list[str]]:
    """Findings and notes for one TLS contact and its session (None when not in the evidence)."""
    findings: list[Finding] = []
    notes: list[str] = []
    expected = expectations.for_host(contact.host)
    tls = contact.tls
    hello = session.client_hello if session else None
    flight = session.server if session else None
    server_frames = session.server_frames if session else ()
    hello_frames = session.frames if session else contact.frames

    offered = client_max_version(hello) if hello is not None else None
    if offered is None and tls is not None:
        offered = tls_version_code(tls.offered_version)
    chosen = server_version(flight) if flight is not None else None
    if chosen is None and tls is not None and flight is not None:
        chosen = tls_version_code(tls.version)
    downgrade = version_finding(contact.host, f"{contact.dst}:{contact.dport}", offered, chosen, expected, hello_frames + server_frames)
    if downgrade:
        findings.append(downgrade)

    chain = certificates(flight)
    if chain:
        sni = tls.sni if tls and tls.sni else None
        findings.extend(certificate_findings(contact.host, f"{contact.dst}:{contact.dport}",
                                             chain[0], sni or contact.host, sni is not None,
                                             expected, server_frames))
    elif flight is not None and flight.skipped_certificates:
        notes.append("server certificate could not be parsed")
    elif chosen == TLS13:
        notes.append(NOTE_TLS13)
    return findings, notes
