"""Bad captures through the tshark engine: one clear line, or a damaged report, never a traceback."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analyzer.base.errors import CaptureError
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.events.read import read_evidence
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES

TSHARK = shutil.which("tshark")
SOURCE = CAPTURES / "editor-node.pcapng"
OPTS = AnalyzeOptions(watch=WatchList.build(DEFAULT_HOSTS), engine="tshark")

pytestmark = [pytest.mark.skipif(TSHARK is None, reason="tshark is not installed"),
              pytest.mark.skipif(not SOURCE.exists(), reason="lab capture not recorded")]


def test_not_a_capture_is_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pcap"
    bad.write_bytes(b"these are notes, not packets\n" * 4)
    with pytest.raises(CaptureError) as info:
        analyze_files([bad], OPTS)
    message = str(info.value)
    assert message.startswith(f"{bad}: ") and "\n" not in message


def test_cut_short_keeps_what_came_before(tmp_path: Path) -> None:
    data = SOURCE.read_bytes()
    whole = analyze_files([SOURCE], OPTS)
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) * 2 // 3])
    report = analyze_files([cut], OPTS)
    (stats,) = report.stats
    assert stats.damaged
    assert any("cut short" in w for w in report.warnings)
    assert 0 < len(report.contacts) <= len(whole.contacts)


def test_missing_file_and_directory(tmp_path: Path) -> None:
    with pytest.raises(CaptureError, match="no such file"):
        analyze_files([tmp_path / "absent.pcap"], OPTS)
    with pytest.raises(CaptureError, match="is a directory"):
        read_evidence(tmp_path, engine="tshark")
