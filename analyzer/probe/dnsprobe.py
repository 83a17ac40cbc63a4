"""Active DNS checks: ask each resolver directly, and judge the answers like a capture's.

The query is built with dpkt and the answer read with our own DNS parser (the same one the
capture engine uses), so a probe and an analysis agree on what an answer says. The socket is
left unconnected and kept open a little after the first answer: a second, different answer to
the same query is the on-path injection race, and an answer from another address is spoofing.
"""

from __future__ import annotations

import ipaddress
import secrets
import socket
import time
from dataclasses import dataclass

import dpkt

from ..base.errors import ParseError, UsageError
from ..base.model import Finding
from ..findings.access import dns_addresses, dns_answer_key, dns_summary
from ..findings.addresses import bogon_reason, is_public_name
from ..findings.expect import Expectations
from ..protocols.dns import DnsMessage, parse_dns

QTYPES = {"A": dpkt.dns.DNS_A, "AAAA": dpkt.dns.DNS_AAAA}


def build_query(name: str, qtype: str, txid: int) -> bytes:
    """A recursive query for ``name`` (RD set, like every stub resolver)."""
    query = dpkt.dns.DNS(id=txid, op=dpkt.dns.DNS_RD, qd=[dpkt.dns.DNS.Q(
        name=name, type=QTYPES[qtype], cls=dpkt.dns.DNS_IN)])
    return bytes(query)


def parse_server(spec: str) -> tuple[str, int]:
    """"1.2.3.4", "1.2.3.4:5353", "::1", "[::1]:53" -> (address, port)."""
    text = spec.strip()
    port = 53
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        if rest.startswith(":"):
            port = _port(spec, rest[1:])
        text = host
    elif text.count(":") == 1:
        text, _, p = text.partition(":")
        port = _port(spec, p)
    try:
        address = str(ipaddress.ip_address(text.split("%", 1)[0]))
    except ValueError:
        raise UsageError(f"--dns {spec!r}: not an IP address (optionally with :PORT)") from None
    if "%" in text:
        address += "%" + text.split("%", 1)[1]
    return address, port


def _port(spec: str, text: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise UsageError(f"--dns {spec!r}: bad port {text!r}")
    return int(text)


@dataclass(frozen=True, slots=True)
class DnsAnswer:
    server: str
    port: int
    qtype: str
    responses: tuple[DnsMessage, ...] = ()
    sources: tuple[str, ...] = ()        # address each response came from
    error: str | None = None             # timeout / unreachable / unparseable

    @property
    def addresses(self) -> tuple[str, ...]:
        return dns_addresses(self.responses[0]) if self.responses else ()


def query(server: str, port: int, name: str, qtype: str, timeout: float,
          linger: float = 0.3) -> DnsAnswer:
    """Send one query over UDP; collect every response with its id for ``linger`` s after the first."""
    txid = secrets.randbelow(0x10000)
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    responses: list[DnsMessage] = []
    sources: list[str] = []
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.sendto(build_query(name, qtype, txid), (server, port))
            deadline = time.monotonic() + timeout
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                try:
                    data, peer = sock.recvfrom(65535)
                except TimeoutError:
                    break
                try:
                    msg = parse_dns(data)
                except ParseError:
                    continue  # not a DNS message; keep waiting for the real one
                if msg.txid != txid or not msg.is_response:
                    continue
                responses.append(msg)
                sources.append(peer[0])
                if len(responses) == 1:
                    deadline = min(deadline, time.monotonic() + linger)
    except OSError as exc:
        return DnsAnswer(server, port, qtype, error=exc.strerror or str(exc))
    if not responses:
        return DnsAnswer(server, port, qtype, error=f"no answer within {timeout:g}s")
    return DnsAnswer(server, port, qtype, tuple(responses), tuple(sources))


def judge_addresses(name: str, addresses: tuple[str, ...], where: str,
                    expectations: Expectations) -> list[Finding]:
    """The passive analysis' answer rules, applied to addresses a probe was given."""
    expected = expectations.for_host(name)
    if expected is not None and expected.addresses:
        outside = [a for a in addresses if not expected.address_allowed(a)]
        if outside:
            ranges = ", ".join(str(n) for n in expected.addresses)
            return [Finding("dns", "dns-unexpected-answer",
                            f"{name} answered {', '.join(outside)} ({where}), outside the "
                            f"expected ranges {ranges} for {expected.pattern}")]
        return []
    if not is_public_name(name):
        return []
    bogons = [(a, r) for a in addresses if (r := bogon_reason(a))]
    if bogons:
        listed = ", ".join(f"{a} ({r})" for a, r in bogons)
        return [Finding("dns", "dns-private-answer",
                        f"public name {name} answered {listed} ({where})")]
    return []


def judge_answer(name: str, answer: DnsAnswer, expectations: Expectations) -> list[Finding]:
    where = f"resolver {answer.server}"
    found: list[Finding] = []
    for msg in answer.responses:
        found.extend(judge_addresses(name, dns_addresses(msg), where, expectations))
    if len({dns_answer_key(m) for m in answer.responses}) > 1:
        parts = "; ".join(f"#{i + 1} from {s}: {dns_summary(m)}"
                          for i, (m, s) in enumerate(zip(answer.responses, answer.sources, strict=True)))
        found.append(Finding("dns", "dns-duplicate-response",
                             f"{len(answer.responses)} different responses to one {name} "
                             f"{answer.qtype} query to {answer.server}: {parts}"))
    for source in dict.fromkeys(answer.sources):
        if source.split("%", 1)[0] != answer.server.split("%", 1)[0]:
            found.append(Finding("dns", "dns-unsolicited-response",
                                 f"answer for {name} {answer.qtype} came from {source}, but the "
                                 f"query was sent to {answer.server}"))
    return list(dict.fromkeys(found))


def disagreements(name: str, by_source: dict[str, tuple[str, ...]]) -> list[Finding]:
    """Sources (resolvers, getaddrinfo) whose addresses for ``name`` share none with another's."""
    sources = {s: frozenset(a) for s, a in by_source.items() if a}
    found: list[Finding] = []
    names = sorted(sources)
    for i, first in enumerate(names):
        for second in names[i + 1:]:
            if not sources[first] & sources[second]:
                found.append(Finding(
                    "dns", "dns-answer-mismatch",
                    f"{name}: {first} said {', '.join(sorted(sources[first]))}, but {second} said "
                    f"{', '.join(sorted(sources[second]))} (no address in common)"))
    return found
