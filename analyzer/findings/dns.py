"""DNS hijack findings, from the query/response exchanges of a capture.

Rules (docs/findings.md has the user's version):
- an answer outside the host's expected ranges -> ``dns-unexpected-answer``; with no ranges
  expected, a public name answered with a private, loopback, link-local or reserved address ->
  ``dns-private-answer``;
- two responses with different answers to one query -> ``dns-duplicate-response`` (an on-path
  injector races the real resolver; identical retransmissions are not flagged);
- a response nobody asked for, or from an address the query was not sent to ->
  ``dns-unsolicited-response``;
- answers for the same name and type from *different resolvers* that share no address ->
  ``dns-answer-mismatch``. One resolver rotating through a CDN's addresses is normal, so answers
  from the same resolver are never compared with each other.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from ..base.model import Finding
from ..base.watchlist import WatchList
from ..events.builtin.intern import Interner
from ..events.records import DnsExchange
from .access import dns_addresses, dns_answer_key, dns_summary
from .addresses import bogon_reason, is_public_name
from .expect import Expectations

ADDRESS_TYPES = ("A", "AAAA")


def _frames(exchange: DnsExchange, responses: list[int] | None = None) -> tuple[int, ...]:
    picked = exchange.response_frames if responses is None else tuple(
        exchange.response_frames[i] for i in responses if i < len(exchange.response_frames))
    query = (exchange.query_frame,) if exchange.query_frame is not None else ()
    return query + tuple(picked)


def _source(exchange: DnsExchange, index: int) -> str:
    if index < len(exchange.response_sources):
        return exchange.response_sources[index]
    return exchange.flow.server


def watched_name(exchange: DnsExchange, watch: WatchList) -> str | None:
    """The name the exchange is about: the query name, or a watched name in its CNAME chain."""
    if watch.matches(exchange.qname):
        return exchange.qname.lower().rstrip(".")
    first = exchange.first_response
    for name in first.cname_chain(exchange.qname) if first is not None else ():
        if watch.matches(name):
            return name.lower().rstrip(".")
    return None


def answer_findings(exchange: DnsExchange, expectations: Expectations,
                    name: str | None = None, texts: Interner | None = None) -> Iterator[Finding]:
    """Addresses that should not be there: outside the expected ranges, or bogons.

    ``texts`` shares equal finding texts: a resolver that hands out a private address does so
    on every query for the name, and each finding would otherwise keep its own copy."""
    share = _own if texts is None else texts  # (an empty Interner is falsy)
    name = name or exchange.qname.lower().rstrip(".")
    expected = expectations.for_host(name)
    ranged = expected is not None and bool(expected.addresses)
    public = not ranged and is_public_name(name)
    for index, response in enumerate(exchange.responses):
        addresses = dns_addresses(response)
        if not addresses:
            continue
        if ranged:
            assert expected is not None
            outside = [a for a in addresses if not expected.address_allowed(a)]
            if outside:
                ranges = ", ".join(str(n) for n in expected.addresses)
                yield Finding("dns", "dns-unexpected-answer",
                              share(f"{name} {exchange.qtype} answered {', '.join(outside)} "
                                    f"(response from {_source(exchange, index)}), "
                                    f"outside the expected ranges {ranges} for {expected.pattern}"),
                              _frames(exchange, [index]))
        elif public:
            bogons = [(a, r) for a in addresses if (r := bogon_reason(a))]
            if bogons:
                listed = ", ".join(f"{a} ({r})" for a, r in bogons)
                yield Finding("dns", "dns-private-answer",
                              share(f"public name {name} {exchange.qtype} answered {listed} "
                                    f"(response from {_source(exchange, index)})"),
                              _frames(exchange, [index]))


def _own(text: str) -> str:
    return text


def duplicate_findings(exchange: DnsExchange) -> Iterator[Finding]:
    if len(exchange.responses) < 2:
        return
    keys = [dns_answer_key(r) for r in exchange.responses]
    if len(set(keys)) < 2:
        return
    parts = [f"#{i + 1} from {_source(exchange, i)}: {dns_summary(r)}"
             for i, r in enumerate(exchange.responses)]
    yield Finding("dns", "dns-duplicate-response",
                  f"{len(exchange.responses)} different responses to one {exchange.qname} "
                  f"{exchange.qtype} query (id {exchange.txid:#06x}; a racing injected answer): "
                  + "; ".join(parts),
                  _frames(exchange))


# A response this soon after the first packet of the capture most likely answers a query sent
# before recording began: said in a note, not raised as spoofing.
CAPTURE_START_GRACE = 2.0


def unsolicited_findings(exchange: DnsExchange, capture_start: float | None = None
                         ) -> Iterator[Finding]:
    if exchange.query_frame is None and exchange.responses:
        first_ts = exchange.response_ts[0] if exchange.response_ts else exchange.ts
        if capture_start is not None and first_ts - capture_start < CAPTURE_START_GRACE:
            return
        yield Finding("dns", "dns-unsolicited-response",
                      f"response for {exchange.qname} {exchange.qtype} (id {exchange.txid:#06x}) "
                      f"from {_source(exchange, 0)} to {exchange.flow.client} with no matching "
                      "query in the capture",
                      _frames(exchange))
        return
    for index in range(len(exchange.responses)):
        source = _source(exchange, index)
        if source != exchange.flow.server:
            yield Finding("dns", "dns-unsolicited-response",
                          f"response for {exchange.qname} {exchange.qtype} came from {source}, "
                          f"but the query was sent to {exchange.flow.server}",
                          _frames(exchange, [index]))


def mismatch_findings(exchanges: list[DnsExchange]) -> dict[int, list[Finding]]:
    """Per exchange index: answers disagreeing with another resolver's answers for the same name."""
    # First only the union of addresses per (name, qtype) and resolver: a name no two resolvers
    # disagree on (nearly every name) needs nothing else, and a capture of a million answers then
    # keeps a few sets rather than one per response.
    union: dict[tuple[str, str], dict[str, set[str]]] = {}
    for ex in exchanges:
        if ex.qtype not in ADDRESS_TYPES:
            continue
        key: tuple[str, str] | None = None
        for r_index, response in enumerate(ex.responses):
            addresses = dns_addresses(response)
            if not addresses:
                continue
            if key is None:
                key = (ex.qname.lower().rstrip("."), ex.qtype)
            by_resolver = union.get(key)
            if by_resolver is None:
                by_resolver = union[key] = {}
            source = _source(ex, r_index)
            found = by_resolver.get(source)
            if found is None:
                by_resolver[source] = set(addresses)
            else:
                found.update(addresses)
    # (name, qtype) -> resolver -> the resolvers it shares no address with, and what they said
    disagree: dict[tuple[str, str], dict[str, list[tuple[str, set[str]]]]] = {}
    for key, by_resolver in union.items():
        if len(by_resolver) < 2:
            continue
        for resolver, mine in by_resolver.items():
            others = [(r, addrs) for r, addrs in by_resolver.items()
                      if r != resolver and not (addrs & mine)]
            if others:
                disagree.setdefault(key, {})[resolver] = others
    out: dict[int, list[Finding]] = defaultdict(list)
    if not disagree:
        return out
    # Then the responses of those names alone, in the order the findings were always listed:
    # by name, then resolver, then response.
    rows: dict[tuple[str, str], dict[str, list[tuple[int, tuple[str, ...], int | None]]]] = {}
    for i, ex in enumerate(exchanges):
        if ex.qtype not in ADDRESS_TYPES:
            continue
        key = (ex.qname.lower().rstrip("."), ex.qtype)
        if key not in disagree:
            continue
        for r_index, response in enumerate(ex.responses):
            addresses = dns_addresses(response)
            if not addresses:
                continue
            frame = ex.response_frames[r_index] if r_index < len(ex.response_frames) else None
            rows.setdefault(key, {}).setdefault(_source(ex, r_index), []).append(
                (i, addresses, frame))
    for key, by_resolver_disagreeing in disagree.items():  # in the order of ``union``
        name, qtype = key
        for resolver, resolver_rows in rows[key].items():
            listed = by_resolver_disagreeing.get(resolver)
            if not listed:
                continue
            other_text = "; ".join(f"{r} said {', '.join(sorted(a))}" for r, a in listed)
            for index, addresses, frame in resolver_rows:
                frames = tuple(f for f in (frame,) if f is not None)
                out[index].append(Finding(
                    "dns", "dns-answer-mismatch",
                    f"{name} {qtype}: {resolver} said {', '.join(sorted(set(addresses)))}, "
                    f"but {other_text} (no address in common)", frames))
    return out


class ExchangeRules:
    """The findings of one exchange at a time, with what they need of every exchange (the
    resolver comparison, each capture's start) worked out once, from all of them."""

    def __init__(self, exchanges: list[DnsExchange], expectations: Expectations,
                 watch: WatchList, capture_start: dict[str, float] | None = None) -> None:
        self.expectations, self.watch = expectations, watch
        self.mismatches = mismatch_findings(exchanges)
        starts = self.capture_start = dict(capture_start or {})
        for ex in exchanges:
            starts.setdefault(ex.flow.capture, ex.ts)
            starts[ex.flow.capture] = min(starts[ex.flow.capture], ex.ts)
        self.texts = Interner()

    def findings(self, index: int, ex: DnsExchange) -> tuple[Finding, ...] | None:
        """The findings of ``ex``, the exchange at ``index`` of the list given (None for none,
        or when its name is not watched)."""
        name = watched_name(ex, self.watch)
        if name is None:
            return None
        found = (*answer_findings(ex, self.expectations, name, self.texts),
                 *duplicate_findings(ex),
                 *unsolicited_findings(ex, self.capture_start.get(ex.flow.capture)),
                 *self.mismatches.get(index, ()))
        return found or None


def exchange_findings(exchanges: list[DnsExchange], expectations: Expectations,
                      watch: WatchList, capture_start: dict[str, float] | None = None
                      ) -> list[tuple[Finding, ...] | None]:
    """The findings of each exchange, by its index (None for none), for exchanges whose name is
    watched.

    ``capture_start`` maps a capture name to the time of its first event (estimated from the
    DNS exchanges when not given).
    """
    rules = ExchangeRules(exchanges, expectations, watch, capture_start)
    # a list, not a dict by index: one pointer per exchange on a capture of a million
    return [rules.findings(i, ex) for i, ex in enumerate(exchanges)]
