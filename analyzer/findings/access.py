"""Reading the protocol records the engines produce, in the few shapes the findings need.

The findings only need a handful of values (answer addresses, the chosen TLS version, the DER
certificates, a redirect's Location); reading them here keeps each layer's rules free of record
plumbing, and lets hand-built records in tests use the same code path.
"""

from __future__ import annotations

from typing import Any

from ..protocols.certificate import CertificateInfo
from ..protocols.dns import DnsMessage
from ..protocols.tls import ClientHello, ServerFlight

TLS_NAMES = {0x0300: "SSL 3.0", 0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2",
             0x0304: "TLS 1.3"}
_TEXT_VERSIONS = {"ssl3": 0x0300, "ssl3.0": 0x0300, "1.0": 0x0301, "1.1": 0x0302, "1.2": 0x0303,
                  "1.3": 0x0304}


def tls_version_code(value: Any) -> int | None:
    """0x0303 from 0x0303, "TLS 1.2", "TLSv1.2", "1.2" or "tls12"; None when unknown."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value in TLS_NAMES else None
    text = str(value).strip().lower().replace("tlsv", "").replace("tls", "").replace(" ", "")
    if text in _TEXT_VERSIONS:
        return _TEXT_VERSIONS[text]
    if text in ("10", "11", "12", "13"):
        return _TEXT_VERSIONS[text[0] + "." + text[1]]
    return None


def tls_version_name(code: int | None) -> str:
    return TLS_NAMES.get(code or 0, "unknown") if code else "unknown"


# DNS -------------------------------------------------------------------------------------------

def dns_records(msg: DnsMessage) -> list[tuple[str, str]]:
    """(type, value) for each answer record of a DNS message, e.g. ("A", "192.0.2.1")."""
    return [(rr.rtype.upper(), rr.value) for rr in msg.answers]


def dns_addresses(msg: DnsMessage) -> tuple[str, ...]:
    """Addresses of A and AAAA answers, and SVCB/HTTPS address hints."""
    return tuple(a for rr in msg.answers for a in rr.addresses)


def dns_rcode(msg: DnsMessage) -> str | None:
    return msg.rcode


def dns_answer_key(msg: DnsMessage) -> tuple[str | None, frozenset[tuple[str, str]]]:
    """What two responses must share to count as the same answer (order and TTLs ignored)."""
    return dns_rcode(msg), frozenset((t, v.lower().rstrip(".")) for t, v in dns_records(msg))


def dns_summary(msg: DnsMessage) -> str:
    records = dns_records(msg)
    if not records:
        return f"no answer (rcode {dns_rcode(msg) or '?'})"
    return ", ".join(v for _, v in records)


# TLS -------------------------------------------------------------------------------------------

def server_version(flight: ServerFlight | None) -> int | None:
    """The version the server chose (supported_versions wins over the legacy field)."""
    if flight is None or flight.server_hello is None or flight.server_hello.is_hello_retry:
        return None
    return flight.server_hello.version


def client_max_version(hello: ClientHello | None) -> int | None:
    return hello.max_version if hello is not None else None


def certificates(flight: ServerFlight | None) -> tuple[CertificateInfo, ...]:
    """The server's chain, leaf first (empty when encrypted by TLS 1.3 or unseen)."""
    return flight.certificates if flight is not None else ()
