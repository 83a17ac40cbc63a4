"""The table's line writer gives exactly what rich's Console.print gave, plain and coloured."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from rich.text import Text

from analyzer.base.model import CaptureStats, Contact
from analyzer.report import table
from analyzer.report.table import render_table, rich_console

LAB = Path(__file__).resolve().parents[2] / "captures"


class ConsoleLines:
    """The reference: every line through Console.print, as the table was first written."""

    def __init__(self, width: int, color: bool) -> None:
        self.console = rich_console(width, color)
        self.width = self.console.width

    def line(self, text: Text | str, style: str | None = None) -> None:
        self.console.print(text if isinstance(text, Text) else Text(text, style=style or ""),
                           no_wrap=True, overflow="ellipsis", crop=True)

    def print(self) -> None:
        self.console.print()

    def getvalue(self) -> str:
        return self.console.file.getvalue()  # type: ignore[attr-defined,no-any-return]


def _both(contacts: list[Contact], stats: list[CaptureStats], width: int, color: bool,
          monkeypatch: pytest.MonkeyPatch) -> tuple[str, str]:
    ours = render_table(contacts, stats, width=width, color=color)
    with monkeypatch.context() as m:
        m.setattr(table, "_Lines", ConsoleLines)
        reference = render_table(contacts, stats, width=width, color=color)
    return ours, reference


@pytest.mark.parametrize("color", [False, True])
@pytest.mark.parametrize("width", [20, 33, 40, 80, 117, 200])
def test_hand_built_contacts(contacts: list[Contact], stats: list[CaptureStats], width: int,
                             color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    hostile = replace(contacts[6], host="golang.org\x1b[2J[bold red]x[/]",
                      http=replace(contacts[6].http, path="/\x1b]0;pwned\x07 ünïcödé 漢字"))
    ours, reference = _both([*contacts, hostile], stats, width, color, monkeypatch)
    assert ours == reference
    assert ("\x1b[" in ours) == color


@pytest.mark.skipif(not any(LAB.glob("*.pcapng")), reason="lab captures not recorded (make lab)")
@pytest.mark.parametrize("color", [False, True])
def test_lab_captures(color: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
    from analyzer.pipeline import AnalyzeOptions, analyze_files

    watch = WatchList.build([*DEFAULT_HOSTS, "goproxy.example", "vanity.example"])
    for capture in sorted(LAB.glob("*.pcapng")):
        report = analyze_files([capture], AnalyzeOptions(watch=watch))
        for width in (40, 80, 160):
            ours, reference = _both(report.contacts, report.stats, width, color, monkeypatch)
            assert ours == reference, (capture.name, width)


def test_empty_report(monkeypatch: pytest.MonkeyPatch) -> None:
    stats = [CaptureStats(capture="quiet.pcapng", packets=12, bytes=2048, warnings=("w " * 80,))]
    for color in (False, True):
        ours, reference = _both([], stats, 50, color, monkeypatch)
        assert ours == reference
