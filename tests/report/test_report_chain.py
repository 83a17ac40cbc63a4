"""The ancestor chain at connect time in the table and the HTML report: ``go ← gopls ← python``."""

from __future__ import annotations

from dataclasses import replace

from analyzer.base.model import Ancestor, CaptureStats, Contact
from analyzer.events.records import Evidence
from analyzer.pipeline import Report
from analyzer.report.html import render_html
from analyzer.report.table import render_table

CHAIN = (Ancestor(20, "gopls", "gopls -mode=stdio", "/opt/gopls"),
         Ancestor(10, "python3", "python3 lsp_client.py <x>", "/usr/bin/python3"))


def _with_chain(contacts: list[Contact]) -> list[Contact]:
    go = contacts[0].process
    assert go is not None and go.comm == "go"
    chained = replace(go, ppid=20, parent_comm="gopls", parent_cmdline="gopls -mode=stdio",
                      ancestors=CHAIN)
    return [replace(c, process=chained) if c.process == go else c for c in contacts]


def test_table_heading_shows_the_chain(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    text = render_table(_with_chain(contacts), stats, width=120)
    heading = next(line for line in text.splitlines() if line.startswith("go (pid 4121)"))
    assert "ppid 20  go ← gopls ← python3" in heading
    # a process without a recorded chain keeps the parent it had
    assert any("ppid 4121 ← go" in line for line in text.splitlines())


def test_html_process_table_shows_the_chain_with_each_command_line(
        contacts: list[Contact], stats: list[CaptureStats]) -> None:
    page = render_html(Report(_with_chain(contacts), Evidence(stats=stats)))
    assert ('go ← <span title="pid 20: gopls -mode=stdio">gopls</span> ← '
            '<span title="pid 10: python3 lsp_client.py &lt;x&gt;">python3</span>') in page


def test_table_says_why_under_each_process(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    cause = ("GOPROXY=off from environment, set by gopls (pid 20) -> module download; gopls "
             "(pid 20) ran `go list -m all`")
    chained = _with_chain(contacts)
    go = chained[0].process
    explained = [replace(c, cause=cause) if c.process == go and c.host == "proxy.golang.org" else c
                 for c in chained]
    lines = render_table(explained, stats, width=80).splitlines()
    why = [i for i, line in enumerate(lines) if line.startswith("  why proxy.golang.org: ")]
    assert len(why) == 1  # once per distinct cause, not per contact
    text = " ".join(line.strip() for line in lines[why[0]:why[0] + 3])
    assert "set by gopls (pid 20) -> module download" in text
    assert all(len(line) <= 80 for line in lines)
