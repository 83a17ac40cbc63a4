"""Contacts built in the worker that read the capture, when no other capture can change them.

Building contacts (with their findings) after every capture is read costs the main process a
fifth of a capture's time per capture, and pickling a capture's whole evidence back from its
worker costs as much again. A contact depends on other captures only through a few cross-capture
links, all of which a worker can summarise in a few small sets (``Links``):

- a TLS connection without SNI (or a SOCKS request by address) takes its name from the most
  recent DNS answer for its address in *any* capture (``contacts.build.AddressMap``);
- a DNS answer disagreeing with another resolver's answer for the same name and type, in any
  capture, is ``dns-answer-mismatch``;
- a connection to an address a flagged DNS answer gave, in any capture, says so in a note;
- evidence is grouped by flow id and by capture name, which are per capture only while the
  captures' names differ; and a process environment (pcapng comments) can start cause analysis
  for every contact.

``independent()`` says when none of these links crosses a capture; then each capture's contacts
equal the ones the whole set would give, and ``merge_order()`` orders them exactly as the whole set's
sort would. Otherwise the caller builds the contacts from the merged evidence, as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from ..base.model import Contact
from ..events.records import Evidence
from ..findings.access import dns_addresses

# What the findings stage lists a flagged answer's addresses for (see analyzer.findings).
FLAGGED_KINDS = frozenset({"dns-private-answer", "dns-unexpected-answer", "dns-duplicate-response"})
MISMATCH_TYPES = ("A", "AAAA")
_LAYER_RANK = {"dns": 0, "tls": 1, "http": 2, "socks": 3}  # build_contacts' concatenation order


@dataclass
class Links:
    """What one capture could share with another (see the module docstring)."""

    captures: tuple[str, ...] = ()
    answered: dict[str, float] = field(default_factory=dict)       # address -> earliest answer
    lookups: list[tuple[str, float]] = field(default_factory=list)  # (address, time) looked up
    resolvers: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    flagged: set[tuple[str, str]] = field(default_factory=set)      # (name, address), a superset
    connected: set[tuple[str, str]] = field(default_factory=set)    # (host, dst) of tls/http
    processes: bool = False


@dataclass
class FileContacts:
    """One capture's contacts, in its own sorted order, and what it could share with others."""

    contacts: list[Contact]
    links: Links
    evidence: Evidence  # stats and flow processes only: the events stay in the worker
    rendered: list[str] | None = None  # opts.render of each contact


def _norm(name: str) -> str:
    return name.lower().rstrip(".")


def links_of(evidence: Evidence, contacts: Sequence[Contact]) -> Links:
    links = Links(captures=tuple(st.capture for st in evidence.stats),
                  processes=bool(evidence.flow_processes))
    answered = links.answered
    resolvers: dict[tuple[str, str], set[str]] = {}
    for ex in evidence.dns:
        for i, (resp, ts) in enumerate(zip(ex.responses, ex.response_ts, strict=False)):
            for addr in resp.addresses():
                if ts < answered.get(addr, float("inf")):
                    answered[addr] = ts
            if ex.qtype in MISMATCH_TYPES and dns_addresses(resp):
                source = ex.response_sources[i] if i < len(ex.response_sources) else ex.flow.server
                resolvers.setdefault((_norm(ex.qname), ex.qtype), set()).add(source)
    links.resolvers = {key: frozenset(found) for key, found in resolvers.items()}
    for s in evidence.tls:
        if s.client_hello.sni is None and not s.tunnel_host:
            links.lookups.append((s.tunnel_address or s.flow.server, s.ts))
    for so in evidence.socks:
        if so.request.hostname is None and so.request.address:
            links.lookups.append((so.request.address, so.ts))
    # A flagged exchange is a watched one, so a DNS contact of its name carries its finding.
    flagged_names = {_norm(c.dns.qname) for c in contacts if c.layer == "dns" and c.dns is not None
                     and any(f.kind in FLAGGED_KINDS for f in c.findings)}
    if flagged_names:
        for ex in evidence.dns:
            name = _norm(ex.qname)
            if name in flagged_names:
                for resp in ex.responses:
                    links.flagged.update((name, addr) for addr in dns_addresses(resp))
    links.connected = {(_norm(c.host), c.dst) for c in contacts if c.layer in ("tls", "http")}
    return links


def independent(all_links: Sequence[Links]) -> bool:
    """True when no capture's contacts can depend on another capture's evidence."""
    names = [name for links in all_links for name in links.captures]
    if len(set(names)) != len(names) or any(links.processes for links in all_links):
        return False
    for i, mine in enumerate(all_links):
        others = [links for j, links in enumerate(all_links) if j != i]
        for addr, ts in mine.lookups:
            if any(other.answered.get(addr, float("inf")) <= ts for other in others):
                return False
        for other in others:
            if mine.flagged & other.connected:
                return False
    seen: dict[tuple[str, str], frozenset[str]] = {}
    counts: dict[tuple[str, str], int] = {}
    for links in all_links:
        for key, found in links.resolvers.items():
            seen[key] = seen.get(key, frozenset()) | found
            counts[key] = counts.get(key, 0) + 1
    return not any(counts[key] > 1 and len(found) > 1 for key, found in seen.items())


def merge_order(parts: Sequence[Sequence[Contact]]) -> list[tuple[int, int]]:
    """(capture, index) of every contact in the order build_contacts gives the whole set: its
    stable sort by (time, first frame) over every capture's DNS contacts, then every capture's
    TLS ones, and so on (each capture's list is already in its own sorted order)."""
    keyed = [((c.ts, c.frames[:1]), _LAYER_RANK[c.layer], f, i)
             for f, contacts in enumerate(parts) for i, c in enumerate(contacts)]
    keyed.sort()
    return [(k[2], k[3]) for k in keyed]
