"""The findings stage: hijack findings per layer, attached to the contacts they concern.

Each layer's rules live in their own module (``dns``, ``tls``, ``http``) and read the protocol
evidence; this module only finds the evidence behind each contact and fills ``findings`` and
``notes``. It never drops or adds a contact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

from ..base.model import Contact, Finding, replace_contact
from ..base.watchlist import WatchList
from ..events.builtin.intern import Interner
from ..events.records import DnsExchange, Evidence, HttpExchange, TlsSession
from . import dns as dns_rules
from . import http as http_rules
from . import tls as tls_rules
from .access import dns_addresses
from .expect import Expectations

__all__ = ["apply_findings", "annotate_contacts", "HIJACK_KINDS"]

# Every finding kind this stage can raise (probe adds ``probe-*`` kinds of its own).
HIJACK_KINDS = (
    "dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response", "dns-answer-mismatch",
    "dns-unsolicited-response", "http-plaintext", "http-downgrade-redirect", "http-offsite-redirect",
    "tls-untrusted-issuer", "tls-sni-cert-mismatch", "tls-self-signed", "tls-version-downgrade",
)

T = TypeVar("T", DnsExchange, TlsSession, HttpExchange)


def _closest_index(candidates: Sequence[T], contact: Contact) -> int | None:
    """The position of the candidate sharing the contact's frames, else of the one nearest in
    time."""
    if not candidates:
        return None
    frames = set(contact.frames)
    for i, c in enumerate(candidates):
        own = set(c.frames if isinstance(c, TlsSession | HttpExchange) else
                  ((c.query_frame,) if c.query_frame is not None else ()) + c.response_frames)
        if frames & own:
            return i
    return min(range(len(candidates)), key=lambda i: abs(candidates[i].ts - contact.ts))


def _closest(candidates: Sequence[T], contact: Contact) -> T | None:
    """The candidate sharing the contact's frames, else the one nearest in time."""
    i = _closest_index(candidates, contact)
    return None if i is None else candidates[i]


# flow id -> the index of its one item, or of each of its items (most flows carry one exchange:
# a list each would cost more than the rest of the index)
FlowIndex = dict[str, "int | list[int]"]


def _by_flow(items: Sequence[T]) -> FlowIndex:
    out: FlowIndex = {}
    for i, item in enumerate(items):
        key = item.flow.flow_id
        had = out.get(key)
        if had is None:
            out[key] = i
        elif isinstance(had, int):
            out[key] = [had, i]
        else:
            had.append(i)
    return out


def _in_flow(index: FlowIndex, items: Sequence[T], flow: str) -> list[T]:
    """The items of ``flow``, in their order."""
    found = index.get(flow)
    if found is None:
        return []
    if isinstance(found, int):
        return [items[found]]
    return [items[i] for i in found]


def _dedupe(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(dict.fromkeys(findings))


def apply_findings(contacts: Sequence[Contact], evidence: Evidence, expectations: Expectations,
                   watch: WatchList) -> list[Contact]:
    """Return ``contacts`` with hijack findings and notes filled in, in the same order (a new
    list; the one given is left as it was)."""
    out = list(contacts)
    annotate_contacts(out, evidence, expectations, watch)
    return out


def annotate_contacts(contacts: list[Contact], evidence: Evidence, expectations: Expectations,
                      watch: WatchList) -> None:
    """``apply_findings`` in place: each contact that gains findings or notes is replaced in
    ``contacts`` by its annotated copy, so the original is freed at once rather than both kept
    until the last contact is done (most contacts of a big capture gain something)."""
    dns = evidence.dns
    dns_found = dns_rules.exchange_findings(dns, expectations, watch, _capture_starts(evidence))
    dns_flows = _by_flow(dns)
    tls_flows = _by_flow(evidence.tls)
    http_flows = _by_flow(evidence.http)

    # Addresses a flagged DNS answer handed out, so connections to them can say so.
    flagged: dict[tuple[str, str], Finding] = {}
    for i, found in enumerate(dns_found):
        if found is None:
            continue
        ex = dns[i]
        for f in found:
            if f.kind in ("dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response"):
                for response in ex.responses:
                    for address in dns_addresses(response):
                        flagged.setdefault((ex.qname.lower().rstrip("."), address), f)

    shared = Interner()  # note tuples: most TLS contacts gain the same one
    for position, contact in enumerate(contacts):
        findings: list[Finding] = list(contact.findings)
        notes: list[str] = list(contact.notes)
        flow = contact.flow_id
        frames = contact.frames
        found_here: tuple[Finding, ...] | None = None
        if contact.layer == "dns":
            qname = (contact.dns.qname if contact.dns else contact.host).lower().rstrip(".")
            qtype = contact.dns.qtype if contact.dns else None
            ids = dns_flows.get(flow)
            candidates = [] if ids is None else [ids] if isinstance(ids, int) else ids
            same = [i for i in candidates if dns[i].qname.lower().rstrip(".") == qname
                    and (qtype is None or dns[i].qtype == qtype)]
            at = _closest_index([dns[i] for i in same], contact)
            if at is not None:
                picked = dns[same[at]]
                found_here = dns_found[same[at]] or ()
                findings.extend(found_here)
                if picked.query_frame is None and not any(
                        f.kind == "dns-unsolicited-response" for f in found_here):
                    notes.append("response without its query, at the start of the capture "
                                 "(the query was probably sent before recording began)")
                # the finding's frames equal the contact's when it covers every response:
                # one tuple for both
                for f in found_here:
                    if f.frames == frames:
                        frames = f.frames
                        break
        elif contact.layer == "tls":
            session = _closest(_in_flow(tls_flows, evidence.tls, flow), contact)
            tls_found, extra = tls_rules.session_findings(contact, session, expectations)
            findings.extend(tls_found)
            notes.extend(extra)
            # Requests read from this connection with a key log: their redirects belong to the
            # TLS contact (the https URL is the one the client asked for).
            inner = session.requests if session is not None else ()
            for hx in [*_in_flow(http_flows, evidence.http, flow), *inner]:
                if hx.request.method.upper() != "CONNECT" and (session is None or hx.ts >= session.ts):
                    findings.extend(http_rules.redirect_findings(contact.host, hx, True, watch))
        elif contact.layer == "http":
            http_exchange = _closest(_in_flow(http_flows, evidence.http, flow), contact)
            over_tls = _over_tls(contact, http_exchange, evidence.tls, tls_flows)
            if not over_tls:
                plain = http_rules.plaintext_finding(contact, http_exchange, watch)
                findings.extend([plain] if plain else [])
                if http_exchange is not None:
                    findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                                 False, watch))
            elif http_exchange is not None and flow not in tls_flows:
                findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                             True, watch))
        if contact.layer in ("tls", "http"):
            hit = flagged.get((contact.host.lower().rstrip("."), contact.dst))
            if hit is not None:
                notes.append(f"{contact.dst} came from a DNS answer flagged {hit.kind} "
                             f"(frames {', '.join(map(str, hit.frames)) or '?'})")
        new_findings, new_notes = _dedupe(findings), tuple(dict.fromkeys(notes))
        if new_findings == contact.findings and new_notes == contact.notes:
            continue  # nothing found (most contacts): no copy
        if found_here and new_findings == found_here:
            new_findings = found_here  # the exchange's own tuple, not a second one
        if new_notes != contact.notes:
            new_notes = shared(new_notes)
        contacts[position] = replace_contact(contact, findings=new_findings, notes=new_notes,
                                             frames=frames)


def _capture_starts(evidence: Evidence) -> dict[str, float]:
    """The earliest event of each capture (the engines do not record the first packet's time)."""
    starts: dict[str, float] = {}
    events: list[DnsExchange | TlsSession | HttpExchange] = [*evidence.dns, *evidence.tls,
                                                             *evidence.http]
    for ev in events:
        cap = ev.flow.capture
        starts[cap] = min(starts.get(cap, ev.ts), ev.ts)
    return starts


def _over_tls(contact: Contact, exchange: HttpExchange | None, sessions: Sequence[TlsSession],
              tls_flows: FlowIndex) -> bool:
    """True for a request read from decrypted TLS (a key log), not from clear text."""
    url = (contact.http.url if contact.http else None) or contact.url or ""
    if url.lower().startswith("https://"):
        return True
    if exchange is None or (contact.http and (contact.http.method or "").upper() == "CONNECT"):
        return False
    return any(s.ts <= exchange.ts for s in _in_flow(tls_flows, sessions, exchange.flow.flow_id))
