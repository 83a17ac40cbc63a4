"""Contacts built per capture in the workers (pipeline.perfile) equal the ones built from every
capture's evidence at once, and the links that cross captures send the run back to that."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from analyzer.pipeline.perfile import Links, independent
from analyzer.report.output import contact_line
from bench.gen import write_pcap
from tests.conftest import CAPTURES
from tests.core.test_engine import Conversation, _first_client_payload

CLIENT, SERVER = "10.0.0.2", "93.184.216.34"
HOST = "proxy.golang.org"


def _both(paths: list[Path], watch: WatchList) -> tuple[object, object]:
    whole = analyze_files(paths, AnalyzeOptions(watch=watch, workers=1))
    split = analyze_files(paths, AnalyzeOptions(watch=watch, workers=2, keep_evidence=False,
                                                render=contact_line))
    return whole, split


def _same(whole: object, split: object) -> None:
    assert [c.to_dict() for c in split.contacts] == [c.to_dict() for c in whole.contacts]  # type: ignore[attr-defined]
    assert split.stats == whole.stats and split.warnings == whole.warnings  # type: ignore[attr-defined]
    # without keep_evidence the report keeps no events, whichever path built it
    ev = split.evidence  # type: ignore[attr-defined]
    assert not (ev.dns or ev.tls or ev.http or ev.socks)


def _per_file_taken(split: object) -> bool:
    """The per-capture path renders each contact's line in the worker; the whole-set path
    leaves the rendering to the caller."""
    return split.rendered is not None  # type: ignore[attr-defined]


def test_every_repository_capture_and_generated_ones(tmp_path: Path) -> None:
    paths = sorted(CAPTURES.glob("*.pcapng"))
    for seed in (1, 2):
        gen = tmp_path / f"gen{seed}.pcap"
        write_pcap(gen, 20_000, seed)
        paths.append(gen)
    watch = WatchList.build([], match_all=True)
    whole, split = _both(paths, watch)
    _same(whole, split)
    # the repository's captures carry their processes (pcapng comments): the whole set decides
    assert not _per_file_taken(split) and split.rendered is None  # type: ignore[attr-defined]
    assert len(whole.contacts) > 300  # type: ignore[attr-defined]


def test_generated_pair_is_built_per_capture(tmp_path: Path) -> None:
    paths = []
    for seed in (1, 2):
        gen = tmp_path / f"gen{seed}.pcap"
        write_pcap(gen, 20_000, seed)
        paths.append(gen)
    whole, split = _both(paths, WatchList.build([], match_all=True))
    assert _per_file_taken(split)
    _same(whole, split)
    assert split.rendered == [contact_line(c) for c in whole.contacts]  # type: ignore[attr-defined]


def test_the_same_times_in_two_captures_keep_the_whole_set_order(tmp_path: Path) -> None:
    # a copy under another name: every contact ties with one of the other capture in time and
    # frame, so only the layer-then-capture order of the whole set's stable sort decides
    gen = tmp_path / "a.pcap"
    write_pcap(gen, 20_000, 1)
    shutil.copy(gen, tmp_path / "b.pcap")
    whole, split = _both([gen, tmp_path / "b.pcap"], WatchList.build([], match_all=True))
    assert _per_file_taken(split)
    _same(whole, split)


def _dns(qname: str, answer: str, resolver: str = "10.0.0.53", txid: int = 1,
         sport: int = 50000) -> list:
    q = Ether() / IP(src=CLIENT, dst=resolver) / UDP(sport=sport, dport=53) / DNS(
        id=txid, rd=1, qd=DNSQR(qname=qname))
    r = Ether() / IP(src=resolver, dst=CLIENT) / UDP(sport=53, dport=sport) / DNS(
        id=txid, qr=1, qd=DNSQR(qname=qname), an=DNSRR(rrname=qname, type="A", rdata=answer))
    return [q, r]


def _at(packets: list, start: float) -> list:
    for i, p in enumerate(packets):
        p.time = start + i * 0.01
    return packets


def _write(path: Path, packets: list) -> Path:
    wrpcap(str(path), packets)
    return path


def test_dns_answer_in_one_capture_names_tls_without_sni_in_the_next(
        tmp_path: Path, shared_captures: Path) -> None:
    hello = _first_client_payload(shared_captures / "public" / "tls_hrr.pcap")
    first = _write(tmp_path / "1.pcap", _at(_dns(HOST, SERVER), 100.0))
    conv = Conversation(server=SERVER).handshake().client(hello)
    second = _write(tmp_path / "2.pcap", _at(conv.packets, 200.0))
    whole, split = _both([first, second], WatchList.build([HOST]))
    _same(whole, split)
    tls = [c for c in split.contacts if c.layer == "tls"]  # type: ignore[attr-defined]
    assert len(tls) == 1 and tls[0].host == HOST and tls[0].tls.name_from_dns
    assert not _per_file_taken(split)  # the link crossed captures: built from the whole set


def test_resolvers_disagreeing_across_captures(tmp_path: Path) -> None:
    first = _write(tmp_path / "1.pcap", _at(_dns(HOST, "142.250.1.1", "10.0.0.53"), 100.0))
    second = _write(tmp_path / "2.pcap",
                    _at(_dns(HOST, "142.250.9.9", "10.0.0.54", txid=2, sport=50002), 200.0))
    whole, split = _both([first, second], WatchList.build([HOST]))
    _same(whole, split)
    kinds = {f.kind for c in split.contacts for f in c.findings}  # type: ignore[attr-defined]
    assert "dns-answer-mismatch" in kinds
    assert not _per_file_taken(split)


def test_connection_to_an_address_a_flagged_answer_gave_in_another_capture(
        tmp_path: Path) -> None:
    flagged = "10.9.9.9"  # a private answer for a public name: dns-private-answer
    first = _write(tmp_path / "1.pcap", _at(_dns(HOST, flagged), 100.0))
    request = f"GET /golang.org/x/mod/@v/list HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    conv = Conversation(dport=80, server=flagged).handshake().client(request)
    second = _write(tmp_path / "2.pcap", _at(conv.packets, 200.0))
    whole, split = _both([first, second], WatchList.build([HOST]))
    _same(whole, split)
    http = [c for c in split.contacts if c.layer == "http"]  # type: ignore[attr-defined]
    assert len(http) == 1 and any("flagged dns-private-answer" in n for n in http[0].notes)
    assert not _per_file_taken(split)


def test_one_capture_given_twice_shares_its_flow_ids(tmp_path: Path) -> None:
    gen = tmp_path / "same.pcap"
    write_pcap(gen, 5_000, 1)
    whole, split = _both([gen, gen], WatchList.build([], match_all=True))
    _same(whole, split)
    assert not _per_file_taken(split)


@pytest.mark.parametrize("links, expected", [
    ([Links(captures=("a",)), Links(captures=("b",))], True),
    ([Links(captures=("a",)), Links(captures=("a",))], False),
    ([Links(captures=("a",), processes=True), Links(captures=("b",))], False),
    # an address looked up in b, answered in a before the lookup / only after it
    ([Links(captures=("a",), answered={"1.2.3.4": 5.0}),
      Links(captures=("b",), lookups=[("1.2.3.4", 9.0)])], False),
    ([Links(captures=("a",), answered={"1.2.3.4": 10.0}),
      Links(captures=("b",), lookups=[("1.2.3.4", 9.0)])], True),
    # one name and type, one resolver in both captures / two resolvers
    ([Links(captures=("a",), resolvers={("n", "A"): frozenset({"r1"})}),
      Links(captures=("b",), resolvers={("n", "A"): frozenset({"r1"})})], True),
    ([Links(captures=("a",), resolvers={("n", "A"): frozenset({"r1"})}),
      Links(captures=("b",), resolvers={("n", "A"): frozenset({"r2"})})], False),
    ([Links(captures=("a",), resolvers={("n", "A"): frozenset({"r1", "r2"})}),
      Links(captures=("b",), resolvers={("m", "A"): frozenset({"r1"})})], True),
    # a flagged answer in a, a connection to it in b / in a itself
    ([Links(captures=("a",), flagged={("n", "10.0.0.1")}),
      Links(captures=("b",), connected={("n", "10.0.0.1")})], False),
    ([Links(captures=("a",), flagged={("n", "10.0.0.1")}, connected={("n", "10.0.0.1")}),
      Links(captures=("b",))], True),
])
def test_independent(links: list[Links], expected: bool) -> None:
    assert independent(links) is expected


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_cli_output_with_workers_is_the_serial_one(tmp_path: Path, fmt: str) -> None:
    from click.testing import CliRunner

    from analyzer.cli import cli

    paths = []
    for seed in (1, 2):
        gen = tmp_path / f"gen{seed}.pcap"
        write_pcap(gen, 20_000, seed)
        paths.append(str(gen))
    runner = CliRunner()
    one = runner.invoke(cli, ["analyze", "-q", "--all", "-f", fmt, "-j", "1", *paths])
    two = runner.invoke(cli, ["analyze", "-q", "--all", "-f", fmt, "-j", "2", *paths])
    assert one.exit_code == 0 and two.exit_code == 0, two.output
    assert two.output == one.output and one.output.count("\n") > 200
