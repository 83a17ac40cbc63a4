"""The terminal table: grouping, 80 columns, elision, escaping, colour and the empty case."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from rich.cells import cell_len

from analyzer.base.model import CaptureStats, Contact
from analyzer.report.table import render_table

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_fits_80_columns_and_elides(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    text = render_table(contacts, stats, width=80)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    # the long git cmdline is elided, not wrapped onto a second line
    heading = next(line for line in lines if line.startswith("git-remote-https (pid 4188)"))
    assert heading.endswith("…")
    assert "eighty-columns" not in text


def test_narrow_and_wide_terminals(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    for width in (40, 60, 120, 200):
        lines = render_table(contacts, stats, width=width).splitlines()
        assert max(cell_len(line) for line in lines) <= width
    wide = render_table(contacts, stats, width=200)
    assert "eighty-columns" in wide  # room enough: nothing elided


def test_grouped_by_process_then_host_then_layer(contacts: list[Contact],
                                                   stats: list[CaptureStats]) -> None:
    lines = render_table(contacts, stats, width=80).splitlines()
    headings = [line.split("  ")[0] for line in lines
                if re.match(r"^(\S.*\(pid \d+\)|\S+ \(inferred\)|unattributed)", line)]
    # processes in order of first contact, the unattributed group last
    assert headings[:5] == ["go (pid 4121)", "git-remote-https (pid 4188)", "node (pid 3001)",
                            "node (inferred)", "unattributed"]
    go_block = lines[lines.index(next(x for x in lines if x.startswith("go (pid 4121)"))):]
    go_block = go_block[:go_block.index("")]
    rows = [x for x in go_block if re.match(r"^\d\d:\d\d:\d\d\.\d{3} ", x)]
    layers = [x.split()[1] if x[13] == " " else x.split()[2] for x in rows]
    # proxy.golang.org DNS then TLS, then sum.golang.org DNS then TLS, then golang.org HTTP
    assert layers == ["DNS", "TLS", "TLS", "DNS", "TLS", "TLS", "HTTP"]
    assert sum(1 for x in rows if "proxy.golang.org" in x) == 1  # host shown once per group


def test_findings_counts_and_warnings(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    text = render_table(contacts, stats, width=80)
    assert text.splitlines()[0] == "14 contacts with 7 watched hosts, 4 findings, 3 unattributed"
    for kind in ("dns-private-answer", "tls-untrusted-issuer", "http-plaintext"):
        assert f"! {kind}: " in text
    assert "3 of 14 contacts have no process" in text
    assert "warning: session.pcapng: capture was truncated in the middle of a packet" in text
    assert "read session.pcapng: 412 packets, 183.0 KB, 1 unparsed message" in text
    summary = text[text.index("Summary (process × host × layer)"):]
    assert re.search(r"\ngo \(pid 4121\) +proxy\.golang\.org +DNS +1 +-\n", summary)
    assert re.search(r"\n +proxy\.golang\.org +TLS +2 +1 module-info, module-zip\n", summary)


def test_colour_only_when_asked(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    plain = render_table(contacts, stats, width=80, color=False)
    assert "\x1b" not in plain
    coloured = render_table(contacts, stats, width=80, color=True)
    assert "\x1b[36mDNS" in coloured and "\x1b[32mTLS" in coloured  # cyan DNS, green TLS
    assert "\x1b[1;31m! dns-private-answer" in coloured
    stripped = [ANSI.sub("", line) for line in coloured.splitlines()]
    assert stripped == plain.splitlines()


def test_hostile_text_cannot_reach_the_terminal(contacts: list[Contact],
                                                stats: list[CaptureStats]) -> None:
    evil = replace(contacts[6], host="golang.org\x1b[2J[bold red]x[/]",
                   operation=None, http=replace(contacts[6].http, path="/\x1b]0;pwned\x07"))
    text = render_table([evil], stats, width=120, color=False)
    assert "\x1b" not in text and "\x07" not in text
    assert "golang.org\\x1b[2J[bold" in text  # shown literally, not interpreted as rich markup
    assert "/\\x1b]0;pwned\\x07" in text


def test_empty_input_says_so_and_what_was_read() -> None:
    stats = [CaptureStats(capture="quiet.pcapng", packets=12, bytes=2048)]
    text = render_table([], stats, width=80)
    assert text.splitlines() == ["No contact with a watched host.",
                                 "read quiet.pcapng: 12 packets, 2.0 KB"]


def test_long_warnings_wrap_instead_of_losing_their_end(contacts: list[Contact]) -> None:
    path = "/var/tmp/captures/build-server-42/" + "x" * 30 + ".pcapng"
    long = f"{path}: 3 malformed tls-server message(s), first in frame 123456; the rest of " \
           "the file was read normally"
    stats = [CaptureStats(capture=path, packets=1, bytes=10, warnings=(long,), damaged=True,
                          kernel_drops=7)]
    lines = render_table(contacts[:1], stats, width=80).splitlines()
    assert max(cell_len(line) for line in lines) <= 80
    start = next(i for i, line in enumerate(lines) if line.startswith("warning: "))
    joined = " ".join(line.strip() for line in lines[start:])
    assert "first in frame 123456; the rest of the file was read normally" in joined
    assert "the kernel dropped 7 packets while capturing" in joined
    assert "read " + "x" * 30 + ".pcapng: 1 packet, 10 B" in lines  # file name, not full path


LAB_CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@pytest.mark.skipif(not any(LAB_CAPTURES.glob("*.pcapng")), reason="lab captures not recorded (make lab)")
def test_lab_captures_fit_80_columns() -> None:
    from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
    from analyzer.pipeline import AnalyzeOptions, analyze_files

    watch = WatchList.build([*DEFAULT_HOSTS, "goproxy.example", "vanity.example"])
    for capture in sorted(LAB_CAPTURES.glob("*.pcapng")):
        report = analyze_files([capture], AnalyzeOptions(watch=watch))
        text = render_table(report.contacts, report.stats, width=80)
        lines = text.splitlines()
        assert max(cell_len(line) for line in lines) <= 80, capture.name
        assert len([x for x in lines if re.match(r"^\d\d:\d\d:\d\d\.\d{3} ", x)]) == \
            len(report.contacts), capture.name


def test_span_over_midnight_repeats_the_date(contacts: list[Contact]) -> None:
    late = replace(contacts[1], ts=contacts[0].ts + 86400)
    text = render_table([contacts[0], late], [], width=80)
    assert text.splitlines()[1] == "2026-11-18 11:06:40.010 to 2026-11-19 11:06:40.010 UTC"


def test_every_operation_of_a_connection_is_shown(contacts: list[Contact]) -> None:
    tls = replace(contacts[1], operation="module-list",
                  operations=("module-list", "module-info", "module-info", "module-mod"))
    text = render_table([tls], [], width=100)
    assert "module-list, module-info, module-mod" in text
