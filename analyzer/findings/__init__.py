"""The findings stage: hijack findings per layer, attached to the contacts they concern.

Each layer's rules live in their own module (``dns``, ``tls``, ``http``) and read the protocol
evidence; this module only finds the evidence behind each contact and fills ``findings`` and
``notes``. It never drops or adds a contact.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TypeVar

from ..base.model import Contact, Finding, replace_contact
from ..base.watchlist import WatchList
from ..events.records import DnsExchange, Evidence, HttpExchange, TlsSession
from . import dns as dns_rules
from . import http as http_rules
from . import tls as tls_rules
from .access import dns_addresses
from .expect import Expectations

__all__ = ["apply_findings", "HIJACK_KINDS"]

# Every finding kind this stage can raise (probe adds ``probe-*`` kinds of its own).
HIJACK_KINDS = (
    "dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response", "dns-answer-mismatch",
    "dns-unsolicited-response", "http-plaintext", "http-downgrade-redirect", "http-offsite-redirect",
    "tls-untrusted-issuer", "tls-sni-cert-mismatch", "tls-self-signed", "tls-version-downgrade",
)

T = TypeVar("T", DnsExchange, TlsSession, HttpExchange)


def _closest(candidates: Sequence[T], contact: Contact) -> T | None:
    """The candidate sharing the contact's frames, else the one nearest in time."""
    if not candidates:
        return None
    frames = set(contact.frames)
    for c in candidates:
        own = set(c.frames if isinstance(c, TlsSession | HttpExchange) else
                  ((c.query_frame,) if c.query_frame is not None else ()) + c.response_frames)
        if frames & own:
            return c
    return min(candidates, key=lambda c: abs(c.ts - contact.ts))


def _by_flow(items: Sequence[T]) -> dict[str, list[T]]:
    out: dict[str, list[T]] = defaultdict(list)
    for item in items:
        out[item.flow.flow_id].append(item)
    return out


def _dedupe(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(dict.fromkeys(findings))


def apply_findings(contacts: list[Contact], evidence: Evidence, expectations: Expectations,
                   watch: WatchList) -> list[Contact]:
    """Return ``contacts`` with hijack findings and notes filled in, in the same order."""
    dns_found = dns_rules.exchange_findings(evidence.dns, expectations, watch,
                                            _capture_starts(evidence))
    dns_index = {id(ex): i for i, ex in enumerate(evidence.dns)}
    dns_flows = _by_flow(evidence.dns)
    tls_flows = _by_flow(evidence.tls)
    http_flows = _by_flow(evidence.http)

    # Addresses a flagged DNS answer handed out, so connections to them can say so.
    flagged: dict[tuple[str, str], Finding] = {}
    for i, found in dns_found.items():
        ex = evidence.dns[i]
        for f in found:
            if f.kind in ("dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response"):
                for response in ex.responses:
                    for address in dns_addresses(response):
                        flagged.setdefault((ex.qname.lower().rstrip("."), address), f)

    out: list[Contact] = []
    for contact in contacts:
        findings: list[Finding] = list(contact.findings)
        notes: list[str] = list(contact.notes)
        flow = contact.flow_id
        if contact.layer == "dns":
            qname = (contact.dns.qname if contact.dns else contact.host).lower().rstrip(".")
            qtype = contact.dns.qtype if contact.dns else None
            same = [ex for ex in dns_flows.get(flow, [])
                    if ex.qname.lower().rstrip(".") == qname and (qtype is None or ex.qtype == qtype)]
            exchange = _closest(same, contact)
            if exchange is not None:
                found = dns_found.get(dns_index[id(exchange)], [])
                findings.extend(found)
                if exchange.query_frame is None and not any(
                        f.kind == "dns-unsolicited-response" for f in found):
                    notes.append("response without its query, at the start of the capture "
                                 "(the query was probably sent before recording began)")
        elif contact.layer == "tls":
            session = _closest(tls_flows.get(flow, []), contact)
            found, extra = tls_rules.session_findings(contact, session, expectations)
            findings.extend(found)
            notes.extend(extra)
            # Requests read from this connection with a key log: their redirects belong to the
            # TLS contact (the https URL is the one the client asked for).
            inner = session.requests if session is not None else ()
            for hx in [*http_flows.get(flow, []), *inner]:
                if hx.request.method.upper() != "CONNECT" and (session is None or hx.ts >= session.ts):
                    findings.extend(http_rules.redirect_findings(contact.host, hx, True, watch))
        elif contact.layer == "http":
            http_exchange = _closest(http_flows.get(flow, []), contact)
            over_tls = _over_tls(contact, http_exchange, tls_flows)
            if not over_tls:
                plain = http_rules.plaintext_finding(contact, http_exchange, watch)
                findings.extend([plain] if plain else [])
                if http_exchange is not None:
                    findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                                 False, watch))
            elif http_exchange is not None and not tls_flows.get(flow):
                findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                             True, watch))
        if contact.layer in ("tls", "http"):
            hit = flagged.get((contact.host.lower().rstrip("."), contact.dst))
            if hit is not None:
                notes.append(f"{contact.dst} came from a DNS answer flagged {hit.kind} "
                             f"(frames {', '.join(map(str, hit.frames)) or '?'})")
        new_findings, new_notes = _dedupe(findings), tuple(dict.fromkeys(notes))
        if new_findings == contact.findings and new_notes == contact.notes:
            out.append(contact)  # nothing found (most contacts): no copy
        else:
            out.append(replace_contact(contact, findings=new_findings, notes=new_notes))
    return out


def _capture_starts(evidence: Evidence) -> dict[str, float]:
    """The earliest event of each capture (the engines do not record the first packet's time)."""
    starts: dict[str, float] = {}
    events: list[DnsExchange | TlsSession | HttpExchange] = [*evidence.dns, *evidence.tls,
                                                             *evidence.http]
    for ev in events:
        cap = ev.flow.capture
        starts[cap] = min(starts.get(cap, ev.ts), ev.ts)
    return starts


def _over_tls(contact: Contact, exchange: HttpExchange | None,
              tls_flows: dict[str, list[TlsSession]]) -> bool:
    """True for a request read from decrypted TLS (a key log), not from clear text."""
    url = (contact.http.url if contact.http else None) or contact.url or ""
    if url.lower().startswith("https://"):
        return True
    if exchange is None or (contact.http and (contact.http.method or "").upper() == "CONNECT"):
        return False
    return any(s.ts <= exchange.ts for s in tls_flows.get(exchange.flow.flow_id, []))
