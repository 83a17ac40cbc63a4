"""contacts_with_findings (DNS exchanges let go as their contacts are done) against
build_contacts + annotate_contacts (every event kept), on hand-built and real captures."""

from __future__ import annotations

from pathlib import Path

from analyzer.base.watchlist import WatchList
from analyzer.contacts.build import build_contacts
from analyzer.events.read import read_evidence
from analyzer.events.records import Evidence
from analyzer.findings import annotate_contacts, contacts_with_findings
from analyzer.findings.expect import load_expectations
from bench.gen import tile_pcap, write_pcap
from tests.conftest import CAPTURES

from .helpers import exchange

EXPECT = load_expectations()
ALL = WatchList.build([], match_all=True)


def _kept(evidence: Evidence, watch: WatchList) -> list[dict[str, object]]:
    contacts = build_contacts(evidence, watch)
    annotate_contacts(contacts, evidence, EXPECT, watch)
    return [c.to_dict() for c in contacts]


def _consumed(evidence: Evidence, watch: WatchList) -> list[dict[str, object]]:
    contacts = contacts_with_findings(evidence, watch, EXPECT)
    assert evidence.dns == []  # every exchange let go
    return [c.to_dict() for c in contacts]


def test_a_contact_picks_an_earlier_exchange_of_its_flow() -> None:
    # B's contact has no frames, so it takes the nearest exchange of its flow, name and type:
    # A, whose own contact is done by then (only what picking needs is kept of it).
    a = exchange("proxy.golang.org", [["10.1.2.3"]], query_frame=None, ts=100.0)
    b = exchange("proxy.golang.org", [], query_frame=None, ts=100.0)
    c = exchange("proxy.golang.org", [["10.1.2.4"]], port=40001, ts=101.0)
    kept = _kept(Evidence(dns=[a, b, c]), WatchList.build())
    assert _consumed(Evidence(dns=[a, b, c]), WatchList.build()) == kept
    kinds = [[f["kind"] for f in contact["findings"]] for contact in kept]  # type: ignore[attr-defined]
    assert kinds == [["dns-private-answer"], ["dns-private-answer"], ["dns-private-answer"]]
    assert kept[1]["findings"] == kept[0]["findings"]


def test_repository_captures_and_a_tiled_one(tmp_path: Path) -> None:
    tile = tmp_path / "tile.pcap"
    write_pcap(tile, 20_000, 3)
    tiled = tmp_path / "tiled.pcap"
    tile_pcap(tile, tiled, 3)  # every flow three times: a flow's exchanges far apart in time
    paths = [*sorted(CAPTURES.glob("*.pcapng")), tiled]
    for path in paths:
        for watch in (ALL, WatchList.build()):
            kept = _kept(read_evidence(path), watch)
            assert _consumed(read_evidence(path), watch) == kept, path.name
    dns_flows = [c["flow_id"] for c in kept if c["layer"] == "dns"]
    assert len(dns_flows) > 100 and len(set(dns_flows)) <= len(dns_flows) / 3
