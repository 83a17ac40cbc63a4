"""One object per distinct kept value (events.builtin.intern): shared, and no output changes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer.cli import cli
from analyzer.events.builtin import intern as intern_mod
from analyzer.events.builtin.intern import Interner
from analyzer.events.builtin.read import read_evidence_builtin
from bench.gen import write_pcap
from tests.conftest import CAPTURES


def test_returns_the_first_equal_value() -> None:
    intern = Interner()
    a, b = (1, 2, 3), tuple([1, 2, 3])
    assert a is not b
    assert intern(a) is a and intern(b) is a
    unhashable = ([1], 2)
    assert intern(unhashable) is unhashable and len(intern) == 1


def test_table_starts_afresh_past_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(intern_mod, "LIMIT", 3)
    intern = Interner()
    for i in range(3):
        intern(str(i) * 5)
    assert len(intern) == 3
    first = "x" * 5
    assert intern(first) is first and len(intern) == 1


def test_engine_shares_repeated_hellos_and_records(tmp_path: Path) -> None:
    gen = tmp_path / "gen.pcap"
    write_pcap(gen, 20_000, 1)
    ev = read_evidence_builtin(gen)
    hellos = [s.client_hello for s in ev.tls]
    assert len(hellos) > 20 and len({id(h) for h in hellos}) == len(set(hellos))
    answers = [r.answers for ex in ev.dns for r in ex.responses if r.answers]
    assert len(answers) > 50 and len({id(a) for a in answers}) == len(set(answers))


def _jsonl(paths: list[Path]) -> str:
    result = CliRunner().invoke(cli, ["analyze", "-q", "--all", "-f", "jsonl", "-j", "1",
                                      *map(str, paths)])
    assert result.exit_code in (0, 3), result.output
    return result.output


def test_output_is_the_one_without_sharing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = sorted(CAPTURES.glob("*.pcapng"))
    for seed in (1, 2):
        gen = tmp_path / f"gen{seed}.pcap"
        write_pcap(gen, 20_000, seed)
        paths.append(gen)
    shared = _jsonl(paths)
    monkeypatch.setattr(Interner, "__call__", lambda self, value: value)  # every value its own
    assert _jsonl(paths) == shared and shared.count("\n") > 300


def test_remembered_dns_parse_equals_the_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.events.builtin import engine as engine_mod
    from analyzer.protocols.dns import parse_dns
    from bench.gen import dns_message

    monkeypatch.setattr(engine_mod, "DNS_BODIES", 2)
    eng = engine_mod.Engine("t")
    messages = [dns_message(txid, name, response)
                for txid in (1, 2, 1, 0xBEEF) for name in ("proxy.golang.org", "sum.golang.org")
                for response in (False, True)]
    for data in messages:
        got = eng._parse_dns(data)  # the ID is the caller's to give (see Engine._dns_message)
        assert replace(got, txid=int.from_bytes(data[:2], "big")) == parse_dns(data)
    assert len(eng._dns_bodies) <= 2


@pytest.mark.parametrize("seed", [1, 3])
def test_evidence_is_the_one_without_remembered_dns(seed: int, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Every kept DNS response carries its own ID, as a fresh parse gives it, also where the
    same body came before with another ID (a query's remembered message is never copied)."""
    from analyzer.events.builtin import engine as engine_mod
    from analyzer.protocols.dns import parse_dns

    gen = tmp_path / "gen.pcap"
    write_pcap(gen, 20_000, seed)
    remembered = read_evidence_builtin(gen)
    monkeypatch.setattr(engine_mod.Engine, "_parse_dns",
                        lambda self, payload: self._shared_parts(parse_dns(payload)))
    fresh = read_evidence_builtin(gen)
    assert remembered.dns == fresh.dns and len(fresh.dns) > 50
    responses = [r for ex in fresh.dns for r in ex.responses]
    assert len(responses) > 50 and all(r.txid == ex.txid for ex in fresh.dns for r in ex.responses)
    assert len({r.txid for r in responses}) > 10
