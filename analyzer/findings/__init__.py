"""The findings stage: hijack findings per layer, attached to the contacts they concern.

Each layer's rules live in their own module (``dns``, ``tls``, ``http``) and read the protocol
evidence; this module only finds the evidence behind each contact and fills ``findings`` and
``notes``. It never drops or adds a contact. ``contacts_with_findings`` also builds them (with
``contacts.build``), one DNS exchange at a time, so that a caller keeping no events holds each
exchange only until its contact is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..base.model import Contact, Finding, contact_with_findings
from ..base.watchlist import WatchList
from ..contacts.build import AddressMap, dns_contact, looked_up, other_contacts, sort_contacts
from ..events.builtin.intern import Interner
from ..events.records import DnsExchange, Evidence, HttpExchange, TlsSession
from . import dns as dns_rules
from . import http as http_rules
from . import tls as tls_rules
from .access import dns_addresses
from .expect import Expectations

__all__ = ["apply_findings", "annotate_contacts", "contacts_with_findings", "HIJACK_KINDS"]

# Every finding kind this stage can raise (probe adds ``probe-*`` kinds of its own).
HIJACK_KINDS = (
    "dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response", "dns-answer-mismatch",
    "dns-unsolicited-response", "http-plaintext", "http-downgrade-redirect", "http-offsite-redirect",
    "tls-untrusted-issuer", "tls-sni-cert-mismatch", "tls-self-signed", "tls-version-downgrade",
)

T = TypeVar("T", DnsExchange, TlsSession, HttpExchange, "DnsExchange | _Answered")
E = TypeVar("E", DnsExchange, TlsSession, HttpExchange)


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


def _by_flow(items: Sequence[E]) -> FlowIndex:
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


def _positions(index: FlowIndex, flow: str) -> list[int]:
    """The positions of ``flow``'s items, in their order."""
    found = index.get(flow)
    if found is None:
        return []
    return [found] if isinstance(found, int) else found


def _in_flow(index: FlowIndex, items: Sequence[E], flow: str) -> list[E]:
    """The items of ``flow``, in their order."""
    return [items[i] for i in _positions(index, flow)]


def _dedupe(findings: list[Finding]) -> tuple[Finding, ...]:
    return tuple(dict.fromkeys(findings))


FLAGGING_KINDS = ("dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response")
NOTE_NO_QUERY = ("response without its query, at the start of the capture "
                 "(the query was probably sent before recording began)")
_UNSET: Any = object()  # an exchange whose findings are not worked out yet


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
    annotator = _Annotator(evidence, expectations, watch)
    for i in range(len(evidence.dns)):
        annotator.dns.flag(i, annotator.flagged)
    for position, contact in enumerate(contacts):
        new = annotator.annotated(contact)
        if new is not contact:
            contacts[position] = new


def contacts_with_findings(evidence: Evidence, watch: WatchList, expectations: Expectations,
                           redact: bool = True) -> list[Contact]:
    """``build_contacts`` then ``annotate_contacts``: the same contacts, with less kept at once.

    Each DNS exchange's contact is built and annotated in turn, and the exchanges of a flow are
    let go once its last one is done: ``evidence.dns`` ends empty. For a caller that needs
    nothing of the DNS exchanges afterwards (on a big capture they are most of the events, and
    their contacts are built while they go).
    """
    amap = AddressMap.from_dns(evidence.dns, looked_up(evidence))
    annotator = _Annotator(evidence, expectations, watch)
    dns = annotator.dns
    evidence.dns.clear()  # the annotator's copy of the list is the only one left
    intern = Interner()
    contacts: list[Contact] = []
    for i in range(len(dns.exchanges)):
        dns.flag(i, annotator.flagged)
        contact = dns_contact(dns.whole(i), watch, intern)
        if contact is not None:
            contacts.append(annotator.annotated(contact))
        dns.done(i)
    # every flagged answer is known now, which the TLS and HTTP contacts' notes need; each is
    # replaced in its list by its annotated copy, as annotate_contacts does (not both kept)
    others = other_contacts(evidence, watch, amap, redact, intern)
    for position, contact in enumerate(others):
        others[position] = annotator.annotated(contact)
    contacts += others
    sort_contacts(contacts)
    return contacts


@dataclass(frozen=True, slots=True)
class _Answered:
    """What is kept of a DNS exchange whose own contact is done, while later contacts of its
    flow may still pick it (its findings are worked out by then): what picking needs."""

    ts: float
    qname: str
    qtype: str
    query_frame: int | None
    response_frames: tuple[int, ...]


class _DnsSide:
    """The DNS exchanges behind DNS contacts, by flow, with each one's findings worked out when
    first asked for. ``done(i)`` lets an exchange go once no contact left can ask for it."""

    def __init__(self, evidence: Evidence, expectations: Expectations, watch: WatchList) -> None:
        self.exchanges: list[DnsExchange | _Answered | None] = list(evidence.dns)
        self.rules = dns_rules.ExchangeRules(evidence.dns, expectations, watch,
                                             _capture_starts(evidence))
        self.flows = _by_flow(evidence.dns)
        self.found: list[tuple[Finding, ...] | None] = [_UNSET] * len(self.exchanges)

    def exchange(self, i: int) -> DnsExchange | _Answered:
        ex = self.exchanges[i]
        assert ex is not None, "a DNS exchange asked for after its flow was done"
        return ex

    def whole(self, i: int) -> DnsExchange:
        ex = self.exchanges[i]
        assert isinstance(ex, DnsExchange), "a DNS exchange asked for after its contact was done"
        return ex

    def found_at(self, i: int) -> tuple[Finding, ...] | None:
        found = self.found[i]
        if found is _UNSET:
            found = self.found[i] = self.rules.findings(i, self.whole(i))
        return found

    def flag(self, i: int, flagged: dict[tuple[str, str], Finding]) -> None:
        """The addresses exchange ``i``'s flagged answers handed out, so connections to them can
        say so (asked in the exchanges' order: the first finding for an address wins)."""
        found = self.found_at(i)
        if not found:
            return
        ex = self.whole(i)
        for f in found:
            if f.kind in FLAGGING_KINDS:
                for response in ex.responses:
                    for address in dns_addresses(response):
                        flagged.setdefault((ex.qname.lower().rstrip("."), address), f)

    def for_contact(self, contact: Contact) -> tuple[tuple[Finding, ...], bool] | None:
        """The findings of the exchange behind a DNS contact (the one of its flow, name and type
        sharing its frames, else the nearest in time) and whether to note that its query was not
        seen; None when there is no such exchange."""
        qname = (contact.dns.qname if contact.dns else contact.host).lower().rstrip(".")
        qtype = contact.dns.qtype if contact.dns else None
        same = [i for i in _positions(self.flows, contact.flow_id) if (ex := self.exchange(i)).qname.lower().rstrip(".") == qname
                and (qtype is None or ex.qtype == qtype)]
        at = _closest_index([self.exchange(i) for i in same], contact)
        if at is None:
            return None
        found = self.found_at(same[at]) or ()
        no_query = self.exchange(same[at]).query_frame is None and not any(
            f.kind == "dns-unsolicited-response" for f in found)
        return found, no_query

    def done(self, i: int) -> None:
        """Exchange ``i``'s contact is done (and its findings worked out, by ``flag``): keep only
        what a later contact of its flow needs to pick it, and when it is the last exchange of
        its flow, let the whole flow go (the contacts of a flow ask only for its exchanges)."""
        ex = self.whole(i)
        key = ex.flow.flow_id
        ids = _positions(self.flows, key)
        if not ids or ids[-1] != i:
            self.exchanges[i] = _Answered(ex.ts, ex.qname, ex.qtype, ex.query_frame,
                                          ex.response_frames)
            return
        del self.flows[key]
        for j in ids:
            self.exchanges[j] = None
            self.found[j] = None


class _Annotator:
    """The findings and notes of one contact at a time."""

    def __init__(self, evidence: Evidence, expectations: Expectations, watch: WatchList) -> None:
        self.dns = _DnsSide(evidence, expectations, watch)
        self.tls, self.http = evidence.tls, evidence.http
        self.tls_flows, self.http_flows = _by_flow(evidence.tls), _by_flow(evidence.http)
        self.expectations, self.watch = expectations, watch
        # Addresses a flagged DNS answer handed out (filled by _DnsSide.flag before any TLS or
        # HTTP contact is annotated).
        self.flagged: dict[tuple[str, str], Finding] = {}
        self.shared = Interner()  # note tuples: most TLS contacts gain the same one

    def annotated(self, contact: Contact) -> Contact:
        """``contact`` with its findings and notes (itself when it gains none)."""
        findings: list[Finding] = list(contact.findings)
        notes: list[str] = list(contact.notes)
        flow = contact.flow_id
        frames = contact.frames
        found_here: tuple[Finding, ...] | None = None
        watch, expectations = self.watch, self.expectations
        if contact.layer == "dns":
            behind = self.dns.for_contact(contact)
            if behind is not None:
                found_here, no_query = behind
                findings.extend(found_here)
                if no_query:
                    notes.append(NOTE_NO_QUERY)
                # the finding's frames equal the contact's when it covers every response:
                # one tuple for both
                for f in found_here:
                    if f.frames == frames:
                        frames = f.frames
                        break
        elif contact.layer == "tls":
            session = _closest(_in_flow(self.tls_flows, self.tls, flow), contact)
            tls_found, extra = tls_rules.session_findings(contact, session, expectations)
            findings.extend(tls_found)
            notes.extend(extra)
            # Requests read from this connection with a key log: their redirects belong to the
            # TLS contact (the https URL is the one the client asked for).
            inner = session.requests if session is not None else ()
            for hx in [*_in_flow(self.http_flows, self.http, flow), *inner]:
                if hx.request.method.upper() != "CONNECT" and (session is None or hx.ts >= session.ts):
                    findings.extend(http_rules.redirect_findings(contact.host, hx, True, watch))
        elif contact.layer == "http":
            http_exchange = _closest(_in_flow(self.http_flows, self.http, flow), contact)
            over_tls = _over_tls(contact, http_exchange, self.tls, self.tls_flows)
            if not over_tls:
                plain = http_rules.plaintext_finding(contact, http_exchange, watch)
                findings.extend([plain] if plain else [])
                if http_exchange is not None:
                    findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                                 False, watch))
            elif http_exchange is not None and flow not in self.tls_flows:
                findings.extend(http_rules.redirect_findings(contact.host, http_exchange,
                                                             True, watch))
        if contact.layer in ("tls", "http"):
            hit = self.flagged.get((contact.host.lower().rstrip("."), contact.dst))
            if hit is not None:
                notes.append(f"{contact.dst} came from a DNS answer flagged {hit.kind} "
                             f"(frames {', '.join(map(str, hit.frames)) or '?'})")
        new_findings, new_notes = _dedupe(findings), tuple(dict.fromkeys(notes))
        if new_findings == contact.findings and new_notes == contact.notes:
            return contact  # nothing found (most contacts): no copy
        if found_here and new_findings == found_here:
            new_findings = found_here  # the exchange's own tuple, not a second one
        if new_notes != contact.notes:
            new_notes = self.shared(new_notes)
        return contact_with_findings(contact, new_findings, new_notes, frames)


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
