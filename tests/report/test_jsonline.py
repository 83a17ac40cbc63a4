"""A contact's JSON line made without its dictionaries is the encoder's line of ``to_dict``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from analyzer.base.model import Contact, Finding, ProcessInfo
from analyzer.commands.common import analyze_options
from analyzer.pipeline import analyze_files
from analyzer.report.jsonline import ENCODER, contact_json
from bench.gen import write_pcap
from tests.conftest import CAPTURES


def _contacts(paths: list[Path], all_hosts: bool) -> list[Contact]:
    opts = analyze_options((), None, all_hosts, None, False, "builtin", None, None, workers=1)
    return analyze_files(paths, opts).contacts


@pytest.mark.parametrize("all_hosts", [True, False])
def test_same_line_on_every_repository_capture(all_hosts: bool) -> None:
    paths = sorted(CAPTURES.glob("*.pcap*"))
    contacts = _contacts(paths, all_hosts)
    assert len(contacts) > 100
    assert any(c.process is not None for c in contacts) and any(c.findings for c in contacts)
    assert any(c.notes for c in contacts) and any(c.via_proxy for c in contacts)
    for c in contacts:
        assert contact_json(c) == ENCODER.encode(c.to_dict())


def test_same_line_twice_and_on_a_generated_mix(tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    write_pcap(path, 20_000, 2)
    contacts = _contacts([path], True)
    assert len(contacts) > 50
    first = [contact_json(c) for c in contacts]
    assert first == [contact_json(c) for c in contacts]  # remembered parts
    assert first == [ENCODER.encode(c.to_dict()) for c in contacts]


def test_odd_values_are_encoded_as_the_encoder_does() -> None:
    """What the contract's types do not promise (an int timestamp, a path as capture, non-ASCII
    text, a non-finite float) still gives the encoder's bytes."""
    base = Contact(1.5, "dns", "proxy.golang.org", "udp", "10.0.0.1", 5353, "10.0.0.53", 53,
                   "Fabc")
    proc = ProcessInfo(pid=7, comm="gö", cmdline=None, ppid=1, source="ebpf")
    odd = [
        dataclasses.replace(base, ts=2),
        dataclasses.replace(base, ts=float("inf")),
        dataclasses.replace(base, capture=Path("/tmp/x.pcap")),  # type: ignore[arg-type]
        dataclasses.replace(base, host="bücher.example", notes=("naïve",), process=proc),
        dataclasses.replace(base, findings=(Finding("dns", "k", "détail", (1, 2)),),
                            frames=(3, True)),  # type: ignore[arg-type]
    ]
    for c in odd:
        assert contact_json(c) == ENCODER.encode(c.to_dict())
