"""The cheaper report paths give what the plain ones give: replace_contact is
dataclasses.replace, and streamed JSON lines are render_machine's text."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import pytest

from analyzer.base.model import Contact, replace_contact
from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from analyzer.report.output import emit_jsonl, render_machine
from bench.gen import write_pcap
from tests.conftest import CAPTURES


def _contacts(tmp_path: Path) -> list[Contact]:
    gen = tmp_path / "gen.pcap"
    write_pcap(gen, 20_000, 4)
    paths = [*sorted(CAPTURES.glob("*.pcapng"))[:6], gen]
    report = analyze_files(paths, AnalyzeOptions(watch=WatchList.build([], match_all=True)))
    assert len(report.contacts) > 100
    return report.contacts


def test_replace_contact_is_dataclasses_replace(tmp_path: Path) -> None:
    contacts = _contacts(tmp_path)
    some = next(c for c in contacts if c.findings or c.dns)
    for c in contacts:
        for changes in ({}, {"notes": ("a note",)}, {"findings": some.findings, "notes": ()},
                        {"process": None, "cause": "GOPROXY=direct"}):
            got, want = replace_contact(c, **changes), dataclasses.replace(c, **changes)
            assert got == want and got.to_dict() == want.to_dict()
            assert got is not c
    with pytest.raises(TypeError):
        replace_contact(contacts[0], no_such_field=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        replace_contact(contacts[0]).host = "x"  # type: ignore[misc]


def test_streamed_jsonl_is_render_machine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          ) -> None:
    records = [c.to_dict() for c in _contacts(tmp_path)]
    want = render_machine(records, "jsonl")
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    emit_jsonl(iter(records), None)
    assert out.getvalue() == want
    path = tmp_path / "out.jsonl"
    path.write_text("old content, longer than nothing\n" * 5000)
    emit_jsonl(iter(records), str(path))
    assert path.read_text() == want
    assert os.stat(path).st_mode & 0o777 == 0o600
    emit_jsonl(iter([]), str(path))
    assert path.read_text() == ""
