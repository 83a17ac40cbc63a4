"""DNS findings on hand-built exchanges whose messages are real DNS bytes."""

from __future__ import annotations

import ipaddress

from analyzer.base.watchlist import WatchList
from analyzer.events.records import Evidence
from analyzer.findings import annotate_contacts, apply_findings
from analyzer.findings.addresses import bogon_reason, is_public_name
from analyzer.findings.expect import Expectations, HostExpectation

from .helpers import dns_contact, exchange

WATCH = WatchList.build()
NO_EXPECT = Expectations()
LAB = Expectations((HostExpectation("proxy.golang.org",
                                    (ipaddress.ip_network("10.77.0.0/16"),), ()),))


def run(*exchanges, expectations=NO_EXPECT, watch=WATCH):  # type: ignore[no-untyped-def]
    evidence = Evidence(dns=list(exchanges))
    contacts = [dns_contact(ex) for ex in exchanges]
    out = apply_findings(contacts, evidence, expectations, watch)
    assert [c.flow_id for c in out] == [c.flow_id for c in contacts]  # never drops or adds
    return [[f.kind for f in c.findings] for c in out], out


def test_public_name_with_private_answer() -> None:
    kinds, out = run(exchange("proxy.golang.org", [["10.1.2.3"]]))
    assert kinds == [["dns-private-answer"]]
    finding = out[0].findings[0]
    assert finding.layer == "dns"
    assert "10.1.2.3 (private)" in finding.detail and finding.frames == (1, 2)


def test_public_answer_is_clean() -> None:
    assert run(exchange("proxy.golang.org", [["142.250.74.81"]]))[0] == [[]]


def test_expected_ranges_replace_the_bogon_rule() -> None:
    inside = exchange("proxy.golang.org", [["10.77.0.5"]])
    outside = exchange("proxy.golang.org", [["172.31.0.10"]], port=40001, ts=101)
    kinds, out = run(inside, outside, expectations=LAB)
    assert kinds == [[], ["dns-unexpected-answer"]]
    assert "10.77.0.0/16" in out[1].findings[0].detail


def test_duplicate_response_race() -> None:
    kinds, out = run(exchange("sum.golang.org", [["6.6.6.6"], ["142.251.1.1"]]))
    assert kinds == [["dns-duplicate-response"]]
    assert "6.6.6.6" in out[0].findings[0].detail and out[0].findings[0].frames == (1, 2, 3)


def test_identical_retransmitted_answers_are_not_a_race() -> None:
    assert run(exchange("sum.golang.org", [["142.251.1.1"], ["142.251.1.1"]]))[0] == [[]]


def test_unsolicited_responses() -> None:
    spoofed = exchange("go.dev", [["216.239.32.21"]], sources=["203.0.113.66"], port=40002)
    orphan = exchange("go.dev", [["216.239.32.21"]], query_frame=None, ts=110.0)
    kinds, out = run(spoofed, orphan)
    assert kinds == [["dns-unsolicited-response"], ["dns-unsolicited-response"]]
    assert "203.0.113.66" in out[0].findings[0].detail
    assert "no matching query" in out[1].findings[0].detail


def test_orphan_response_at_capture_start_is_a_note() -> None:
    orphan = exchange("go.dev", [["216.239.32.21"]], query_frame=None, ts=100.0)
    later = exchange("go.dev", [["216.239.32.21"]], port=40005, ts=100.5)
    kinds, out = run(orphan, later)
    assert kinds == [[], []]
    assert any("before recording began" in n for n in out[0].notes)


def test_mismatch_between_resolvers_only() -> None:
    a = exchange("go.dev", [["216.239.32.21"]], resolver="192.0.2.53")
    b = exchange("go.dev", [["31.13.64.35"]], resolver="192.0.2.54", port=40003, ts=102)
    kinds, _ = run(a, b)
    assert kinds == [["dns-answer-mismatch"], ["dns-answer-mismatch"]]
    # One resolver rotating through a CDN's addresses is normal.
    c = exchange("go.dev", [["216.239.34.21"]], port=40004, ts=103)
    assert run(a, c)[0] == [[], []]


def test_mismatch_names_every_disagreeing_resolver() -> None:
    a = exchange("go.dev", [["216.239.32.21"]], resolver="192.0.2.53")
    b = exchange("go.dev", [["31.13.64.36", "31.13.64.35"]], resolver="192.0.2.54", port=40003,
                 ts=101)
    c = exchange("go.dev", [["216.239.34.21"]], resolver="192.0.2.53", port=40004, ts=102)
    d = exchange("go.dev", [["31.13.64.36"]], resolver="192.0.2.55", port=40005, ts=103)
    kinds, out = run(a, b, c, d)
    assert kinds == [["dns-answer-mismatch"]] * 4
    first = "216.239.32.21, 216.239.34.21"
    others = "192.0.2.54 said 31.13.64.35, 31.13.64.36; 192.0.2.55 said 31.13.64.36"
    assert [c.findings[0].detail for c in out] == [
        f"go.dev A: 192.0.2.53 said 216.239.32.21, but {others} (no address in common)",
        f"go.dev A: 192.0.2.54 said 31.13.64.35, 31.13.64.36, but 192.0.2.53 said {first} "
        "(no address in common)",
        f"go.dev A: 192.0.2.53 said 216.239.34.21, but {others} (no address in common)",
        f"go.dev A: 192.0.2.55 said 31.13.64.36, but 192.0.2.53 said {first} "
        "(no address in common)",
    ]
    assert [c.findings[0].frames for c in out] == [(2,)] * 4


def test_mismatch_of_one_exchange_by_resolver_then_response() -> None:
    # An injected response from another address races the resolver's: each response is
    # compared as its source's answer.
    a = exchange("go.dev", [["216.239.32.21"], ["31.13.64.35"]],
                 sources=["192.0.2.53", "198.51.100.9"])
    b = exchange("go.dev", [["216.239.34.21"]], port=40003, ts=101)
    _, out = run(a, b)
    mismatches = [(f.detail, f.frames) for f in out[0].findings if f.kind == "dns-answer-mismatch"]
    assert mismatches == [
        ("go.dev A: 192.0.2.53 said 216.239.32.21, but 198.51.100.9 said 31.13.64.35 "
         "(no address in common)", (2,)),
        ("go.dev A: 198.51.100.9 said 31.13.64.35, but 192.0.2.53 said 216.239.32.21, "
         "216.239.34.21 (no address in common)", (3,)),
    ]
    assert [f.kind for f in out[1].findings] == ["dns-answer-mismatch"]


def test_annotating_in_place_equals_a_new_list() -> None:
    exchanges = [exchange("proxy.golang.org", [["10.1.2.3"]], port=40000 + i, ts=100.0 + i)
                 for i in range(3)] + [exchange("go.dev", [["216.239.32.21"]], port=40010)]
    evidence = Evidence(dns=exchanges)
    contacts = [dns_contact(ex) for ex in exchanges]
    given = list(contacts)
    copied = apply_findings(contacts, evidence, NO_EXPECT, WATCH)
    assert contacts == given and all(a is b for a, b in zip(contacts, given, strict=True))
    annotate_contacts(contacts, evidence, NO_EXPECT, WATCH)
    assert contacts == copied
    assert [len(c.findings) for c in contacts] == [1, 1, 1, 0]
    assert contacts[3] is given[3]  # nothing found: the same contact, not a copy


def test_equal_findings_share_their_text() -> None:
    # A resolver answering a private address does so for every query: one text for all.
    exchanges = [exchange("proxy.golang.org", [["10.1.2.3"]], port=40000 + i, ts=100.0 + i)
                 for i in range(3)]
    _, out = run(*exchanges)
    texts = [c.findings[0].detail for c in out]
    assert texts[0] == "public name proxy.golang.org A answered 10.1.2.3 (private) " \
        "(response from 192.0.2.53)"
    assert texts[1] is texts[0] and texts[2] is texts[0]
    # the finding's frames are the contact's: one tuple
    assert all(c.frames == (1, 2) and c.frames is c.findings[0].frames for c in out)


def test_unwatched_names_get_nothing() -> None:
    assert run(exchange("example.org", [["10.0.0.1"]]))[0] == [[]]


def test_private_names_are_not_bogons() -> None:
    watch = WatchList.build(["*.corp"])
    assert run(exchange("git.corp", [["10.0.0.1"]]), watch=watch)[0] == [[]]


def test_bogon_classes() -> None:
    assert bogon_reason("127.0.0.1") == "loopback"
    assert bogon_reason("169.254.1.1") == "link-local"
    assert bogon_reason("100.64.0.1") == "shared address space (CGNAT)"
    assert bogon_reason("0.0.0.0") == "unspecified"
    assert bogon_reason("::ffff:10.0.0.1") == "private"
    assert bogon_reason("fd00::1") == "private"
    assert bogon_reason("240.0.0.1") == "reserved"
    assert bogon_reason("142.250.74.81") is None
    assert bogon_reason("2607:f8b0:4004:c07::8d") is None
    assert is_public_name("proxy.golang.org") and not is_public_name("printer.local")
