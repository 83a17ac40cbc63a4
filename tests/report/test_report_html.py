"""The HTML report: the answer first, escaping, no network at view time, and (in headless
Chromium) one timeline mark per contact and a page that logs no errors."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.base.model import CaptureStats, Contact, Finding
from analyzer.events.records import Evidence
from analyzer.pipeline import Report
from analyzer.report.html import render_html
from tests.report.chromium_cdp import chromium_binary, open_page

PUBLIC = Path(__file__).resolve().parents[3] / "shared" / "captures" / "public"
PLOTTED = "document.body.getAttribute('data-plotted-points')"
SETTLED = f"{PLOTTED} !== null"

needs_chromium = pytest.mark.skipif(chromium_binary() is None,
                                    reason="chromium is not installed (Debian package 'chromium')")


def make_report(contacts: list[Contact], stats: list[CaptureStats],
                warnings: list[str] | None = None) -> Report:
    return Report(contacts=contacts, evidence=Evidence(stats=stats), warnings=warnings or [])


def hostile(contacts: list[Contact]) -> list[Contact]:
    """Contacts whose capture-controlled text tries to become markup or script."""
    evil_host = 'evil.example"><img src=x onerror="window.__pwned=1">'
    evil = replace(contacts[6], host=evil_host,
                   http=replace(contacts[6].http, path="/</script><script>window.__pwned=2</script>",
                                user_agent="<b>ua</b>"),
                   findings=(Finding(layer="http", kind="<i>kind</i>",
                                     detail="<a href='javascript:window.__pwned=3'>x</a>"),),
                   cause="GOPROXY=<svg onload=window.__pwned=4>")
    return [*contacts, evil]


def test_answer_first(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    page = render_html(make_report(contacts, stats, ["no TLS key log: operations inside TLS are unknown"]))
    answer = page[page.index('<section id="answer"'):page.index("</section>", page.index('id="answer"'))]
    assert page.index('id="answer"') < page.index('id="timeline-section"')
    assert ("<li><b>proxy.golang.org</b> was contacted 5 times, by go (pid 4121), node (pid 3001) "
            "and an unattributed process through DNS, TLS and HTTP") in answer
    assert "because GOSUMDB=sum.golang.org (default, $GOROOT/go.env)" in answer
    assert '<span class="count bad"><b>4</b> findings</span>' in answer
    assert '<span class="count warn"><b>3</b> unattributed</span>' in answer
    for section in ("findings", "causes", "hosts", "processes", "operations", "contacts",
                    "captures"):
        assert f'<section id="{section}">' in page
    assert "no TLS key log: operations inside TLS are unknown" in page
    assert "capture was truncated in the middle of a packet" in page


def test_findings_and_causes_tables(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    page = render_html(make_report(contacts, stats))
    findings = page[page.index('<section id="findings">'):page.index('<section id="causes">')]
    assert findings.count("<tr>") == 1 + 4  # header and one row per finding
    assert "sum.golang.org answered with private address 10.0.0.3" in findings
    causes = page[page.index('<section id="causes">'):page.index('<section id="hosts">')]
    assert re.search(r"GOPROXY=https://proxy.golang.org,direct \(default, \$GOROOT/go.env\)"
                     r"</span></td><td>proxy.golang.org</td><td class=\"num\">3</td>", causes)


def test_self_contained(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    page = render_html(make_report(contacts, stats))
    assert 'http-equiv="Content-Security-Policy" content="default-src \'none\'' in page
    assert not re.search(r"<script[^>]+src=", page)
    assert not re.search(r"<link[^>]+href=", page)
    assert len(page) > 1_000_000  # plotly.js is inline


def test_escapes_capture_text(contacts: list[Contact], stats: list[CaptureStats]) -> None:
    page = render_html(make_report(hostile(contacts), stats))
    assert "<img" not in page
    assert "<svg onload" not in page
    assert "<script>window.__pwned" not in page
    assert "javascript:window" not in page.replace("&#x27;javascript:window", "")
    assert "evil.example&quot;&gt;&lt;img src=x onerror=&quot;window.__pwned=1&quot;&gt;" in page


def test_empty_report(stats: list[CaptureStats]) -> None:
    page = render_html(make_report([], stats))
    assert "No contact with a watched host." in page
    assert "Read 1 capture, 412 packets." in page
    assert "Plotly" not in page  # nothing to draw: no 4 MB of plotly.js either


@needs_chromium
def test_chromium_draws_one_mark_per_contact(tmp_path: Path, contacts: list[Contact],
                                            stats: list[CaptureStats]) -> None:
    page = tmp_path / "report.html"
    page.write_text(render_html(make_report(contacts, stats)), encoding="utf-8")
    result = open_page(page, {"plotted": PLOTTED,
                              "lanes": "document.querySelectorAll('#timeline .ytick').length",
                              "legend": "Array.from(document.querySelectorAll('#timeline .legendtext'))"
                                        ".map(e => e.textContent)"},
                       settle_expression=SETTLED)
    assert result.errors == []
    assert [u for u in result.requests if not u.startswith("file://")] == []  # nothing fetched
    assert result.values["plotted"] == str(len(contacts))
    assert result.values["lanes"] == 5
    assert result.values["legend"] == ["DNS", "TLS", "HTTP", "with finding"]


@needs_chromium
def test_chromium_hostile_text_stays_text(tmp_path: Path, contacts: list[Contact],
                                          stats: list[CaptureStats]) -> None:
    evil = hostile(contacts)
    page = tmp_path / "report.html"
    page.write_text(render_html(make_report(evil, stats)), encoding="utf-8")
    result = open_page(page, {"plotted": PLOTTED, "pwned": "window.__pwned === undefined",
                              "images": "document.images.length",
                              "shown": "document.body.innerText.includes('onerror=\"window.__pwned=1\"')"},
                       settle_expression=SETTLED)
    assert result.errors == []
    assert result.values == {"plotted": str(len(evil)), "pwned": True, "images": 0, "shown": True}


@needs_chromium
@pytest.mark.skipif(not PUBLIC.is_dir(), reason=f"public test captures not found at {PUBLIC}")
def test_chromium_real_capture(tmp_path: Path) -> None:
    from analyzer.base.watchlist import WatchList
    from analyzer.pipeline import AnalyzeOptions, analyze_files

    captures = [PUBLIC / "http_proxy.pcap", PUBLIC / "http_connect-with-header.pcap",
                PUBLIC / "dns_long-connection.pcap"]
    report = analyze_files(captures, AnalyzeOptions(watch=WatchList.build(match_all=True)))
    assert len(report.contacts) >= 3
    page = tmp_path / "real.html"
    page.write_text(render_html(report), encoding="utf-8")
    result = open_page(page, {"plotted": PLOTTED}, settle_expression=SETTLED)
    assert result.errors == []
    assert result.values["plotted"] == str(len(report.contacts))


LAB_CAPTURES = Path(__file__).resolve().parents[2] / "captures"


@needs_chromium
@pytest.mark.skipif(not (LAB_CAPTURES / "mixed.pcapng").is_file(),
                    reason="lab captures not recorded (make lab)")
def test_chromium_lab_capture(tmp_path: Path) -> None:
    """go, node and curl at once (captures/mixed.pcapng): a lane per client, a mark per contact."""
    from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
    from analyzer.pipeline import AnalyzeOptions, analyze_files

    watch = WatchList.build([*DEFAULT_HOSTS, "goproxy.example", "vanity.example"])
    report = analyze_files([LAB_CAPTURES / "mixed.pcapng"], AnalyzeOptions(watch=watch))
    hosts = {c.host for c in report.contacts}
    assert {"proxy.golang.org", "sum.golang.org", "golang.org", "go.dev"} <= hosts
    page = tmp_path / "mixed.html"
    page.write_text(render_html(report), encoding="utf-8")
    result = open_page(page, {"plotted": PLOTTED,
                              "lanes": "Array.from(document.querySelectorAll('#timeline .ytick'))"
                                       ".map(e => e.textContent)"},
                       settle_expression=SETTLED)
    assert result.errors == []
    assert result.values["plotted"] == str(len(report.contacts))
    labels = {c.process.comm if c.process else c.client for c in report.contacts} - {None}
    assert len(result.values["lanes"]) >= len(labels)


def test_timeline_hover_is_escaped(contacts: list[Contact]) -> None:
    from analyzer.report.timeline import hover_text, timeline_figure

    evil = hostile(contacts)[-1]
    text = hover_text(evil)
    assert "<img" not in text and "<a " not in text and "<svg" not in text
    assert text.startswith("<b>evil.example&quot;&gt;&lt;img src=x onerror=")
    assert "<b>! &lt;i&gt;kind&lt;/i&gt;</b>: &lt;a href=" in text
    fig = timeline_figure(hostile(contacts))
    assert all("<img" not in t for t in fig.layout.yaxis.ticktext)
    drawn = [tr for tr in fig.data if tr.visible is not False and tr.visible != "legendonly"]
    assert sum(len(tr.x) for tr in drawn) == len(contacts) + 1
