"""Display filters: compiled by tshark, and selecting exactly what the analyzer reports.

Wireshark shows a message's fields in the frame where it reassembled the message, so "exactly"
is checked per message: a DNS message is one frame; a ClientHello is selected in its last
segment; an HTTP request in its last header segment, and a response (shown where its body
ends) is tied back to its request through ``http.request_in``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.events.tshark.binary import DisplayFilterError, tshark_env, validate_display_filters
from analyzer.filters.display import (
    dns_filter,
    host_pattern,
    http_filter,
    process_filter,
    socks_filter,
    standard_filters,
    tls_no_sni_filter,
)
from analyzer.filters.export import default_spec
from analyzer.filters.profile import render_profile, write_profile
from analyzer.pipeline import AnalyzeOptions, Report, analyze_files
from tests.conftest import CAPTURES

from .conftest import (
    capture_id,
    lab_captures,
    needs_tshark,
    public_captures,
    tshark_frames,
    tshark_rows,
)

DEFAULT = WatchList.build()


def test_host_pattern_matches_like_the_watch_list() -> None:
    import re

    watch = WatchList.build(["proxy.golang.org", "*.example.com"])
    pattern = re.compile("^" + (host_pattern(watch) or "") + "$", re.IGNORECASE)
    for name in ["proxy.golang.org", "PROXY.golang.org", "a.example.com", "a.b.example.com",
                 "proxyxgolang.org", "example.com", "proxy.golang.org.evil", "xproxy.golang.org"]:
        assert bool(pattern.match(name)) == watch.matches(name), name


def test_filters_never_contain_backslashes_or_at_signs() -> None:
    # No backslash: the same text is valid in dfilters, UAT fields and on a command line.
    # No '@': colorfilters uses it as its field separator.
    for flt in standard_filters(WatchList.build([*DEFAULT_HOSTS, "*.corp.example"]),
                                ["10.0.0.1", "2001:db8::1"], pid=42, comm="go"):
        assert "\\" not in flt.expression and "@" not in flt.expression, flt.name


def test_bad_process_names_and_pids_are_refused() -> None:
    for comm in ['go"', "go)", "a b", "x" * 65]:
        with pytest.raises(UsageError):
            process_filter(comm=comm)
    for pid in [0, -1, True]:
        with pytest.raises(UsageError):
            process_filter(pid=pid)  # type: ignore[arg-type]


def test_no_sni_filter_splits_address_families() -> None:
    text = tls_no_sni_filter(["10.0.0.2", "2001:db8::1", "10.0.0.1"])
    assert "ip.dst in {10.0.0.1, 10.0.0.2}" in text and "ipv6.dst in {2001:db8::1}" in text


@needs_tshark
def test_every_generated_filter_compiles_in_tshark() -> None:
    filters = standard_filters(WatchList.build([*DEFAULT_HOSTS, "*.corp.example", "bücher.example"]),
                               ["10.0.0.1", "2001:db8::1", "192.0.2.0/24"], pid=1234, comm="go")
    validate_display_filters({f.name: f.expression for f in filters})


@needs_tshark
def test_tshark_rejection_is_an_error() -> None:
    with pytest.raises(DisplayFilterError, match="broken"):
        validate_display_filters({"broken": 'dns.qry.name == "x'})


@needs_tshark
def test_process_filter_selects_ptcpdump_comments() -> None:
    cap = next((p for p in public_captures() if p.name == "curl-user.pcapng"), None)
    if cap is None:
        pytest.skip("ptcpdump capture curl-user.pcapng not present")
    every = tshark_frames(cap, "frame")
    assert tshark_frames(cap, process_filter(pid=99722)) == tshark_frames(cap, process_filter())
    assert tshark_frames(cap, process_filter(comm="curl"))
    assert tshark_frames(cap, process_filter(pid=99723)) == []
    assert set(tshark_frames(cap, process_filter())) <= set(every)


# Per-layer selection against the analyzer.

WIRESHARK_SOCKS_PORT = 1080

def _expected(report: Report, watch: WatchList) -> dict[str, set[int]]:
    watch_sessions = {(s.flow.flow_id, s.ts): s for s in report.evidence.tls}
    http = {(h.flow.flow_id, h.ts): h for h in report.evidence.http}
    out: dict[str, set[int]] = {"dns": set(), "tls": set(), "http": set(), "http-response": set(),
                                "socks": set()}
    for c in report.contacts:
        if c.layer == "dns" and c.dns is not None and c.dns.qname.lower() == c.host:
            out["dns"].update(c.frames)
        elif c.layer == "tls" and c.tls is not None and c.tls.sni:
            out["tls"].add(max(watch_sessions[(c.flow_id, c.ts)].frames))
        elif c.layer == "http":
            ex = http[(c.flow_id, c.ts)]
            out["http"].add(max(ex.frames))
            if ex.response is not None:
                out["http-response"].add(max(ex.frames))
    out["socks"] = _socks_requests(report, watch)
    return out


def _socks_requests(report: Report, watch: WatchList) -> set[int]:
    """The frames of SOCKS requests naming a watched host: the exchange's last client frame
    (after a SOCKS5 greeting). Wireshark decodes SOCKS on its registered port only."""
    return {max(x.frames) for x in report.evidence.socks
            if x.flow.server_port == WIRESHARK_SOCKS_PORT and x.request.hostname
            and watch.matches(x.request.hostname)}


def _check_layers(cap: Path, watch: WatchList, config: Path, profile: str) -> None:
    report = analyze_files([cap], AnalyzeOptions(watch=watch))
    expected = _expected(report, watch)
    dns, tls, http, socks, combined = tshark_rows(
        cap, ["${proxytrace_dns}", "${proxytrace_tls}", "${proxytrace_http}",
              "${proxytrace_socks}", "${proxytrace_all}"],
        ("frame.number", "http.request", "http.request_in"), config, profile)
    assert {int(r[0]) for r in socks} == expected["socks"]
    assert {int(r[0]) for r in dns} == expected["dns"]
    assert {int(r[0]) for r in tls} == expected["tls"]
    assert {int(r[0]) for r in http if r[1]} == expected["http"]
    # A response is selected in the frame where its body ends: tie it to its request.
    responses = [r for r in http if not r[1]]
    assert all(r[2] for r in responses), "every selected HTTP frame is a request or a response"
    assert {int(r[2]) for r in responses} == expected["http-response"]
    assert {int(r[0]) for r in combined} == {int(r[0]) for r in dns + tls + http + socks}


@pytest.fixture(scope="module")
def exported_profile(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    config = tmp_path_factory.mktemp("wireshark")
    spec = default_spec()
    write_profile(render_profile(spec), config / "profiles", spec.name)
    return config, spec.name


LAB = lab_captures()


@needs_tshark
@pytest.mark.skipif(not LAB, reason="no lab captures in captures/ (run `make lab`)")
@pytest.mark.parametrize("cap", LAB, ids=capture_id)
def test_exported_profile_layers_match_the_analyzer(cap: Path,
                                                    exported_profile: tuple[Path, str]) -> None:
    config, name = exported_profile
    _check_layers(cap, DEFAULT, config, name)


@needs_tshark
@pytest.mark.skipif(not LAB or shutil.which("mergecap") is None,
                    reason="no lab captures in captures/ (run `make lab`), or mergecap missing")
def test_saved_filters_run_on_lab_captures(exported_profile: tuple[Path, str],
                                           tmp_path: Path) -> None:
    """Each saved filter of the exported profile runs without error over every lab capture
    (concatenated into one file, so each filter costs one tshark run)."""
    config, name = exported_profile
    merged = tmp_path / "all-lab.pcapng"
    subprocess.run(["mergecap", "-a", "-w", str(merged), *map(str, LAB)],  # noqa: S603
                   check=True, capture_output=True)
    saved = (config / "profiles" / name / "dfilters").read_text().splitlines()
    assert len(saved) >= 6
    results = tshark_rows(merged, [line.split('" ', 1)[1] for line in saved], config_dir=config,
                          profile=name)  # fails on any tshark error
    by_name = dict(zip((line.split('" ', 1)[0][1:] for line in saved), results, strict=True))
    assert by_name["proxytrace dns"] and by_name["proxytrace tls"] and by_name["proxytrace all"]


@needs_tshark
@pytest.mark.skipif(not LAB, reason="no lab captures in captures/ (run `make lab`)")
@pytest.mark.parametrize("cap", LAB, ids=capture_id)
def test_scenario_profile_layers_match_the_analyzer(cap: Path, tmp_path: Path) -> None:
    manifest = json.loads(cap.with_suffix(".json").read_text())
    watch = WatchList.build([*DEFAULT_HOSTS, *manifest.get("watch", [])])
    spec = default_spec()
    from analyzer.filters.profile import ProfileSpec

    spec = ProfileSpec("scenario", tuple(standard_filters(watch)))
    write_profile(render_profile(spec), tmp_path / "profiles", spec.name)
    _check_layers(cap, watch, tmp_path, spec.name)


# Captures where Wireshark and the analyzer legitimately differ, with the reason.
PUBLIC_EXCEPTIONS = {
    # Captured out of order: the server's ACK precedes the ClientHello, so Wireshark flags the
    # hello a spurious retransmission and does not dissect it; the analyzer reads it.
    "curl-user.pcapng": "ClientHello flagged as spurious retransmission by Wireshark",
    # Every packet recorded twice (two interfaces): Wireshark takes the copies for
    # retransmissions and never completes the HTTP response; the analyzer drops the copies.
    "tcp.pcapng": "duplicated packets hide the HTTP response from Wireshark",
}
PUBLIC = [p for p in public_captures() if p.name not in PUBLIC_EXCEPTIONS]


@needs_tshark
@pytest.mark.skipif(not PUBLIC, reason="public captures not present in ../shared/captures")
@pytest.mark.parametrize("cap", PUBLIC, ids=capture_id)
def test_public_capture_layers_match_the_analyzer(cap: Path, tmp_path: Path) -> None:
    everything = analyze_files([cap], AnalyzeOptions(watch=WatchList.build(match_all=True)))
    hosts = []
    for c in everything.contacts:
        try:
            WatchList.build([c.host])
        except UsageError:
            continue  # mDNS service names (_ipp._tcp.local) are not hostnames
        hosts.append(c.host)
    if not hosts:
        pytest.skip(f"{cap.name}: no contact with a hostname")
    from analyzer.filters.profile import ProfileSpec

    watch = WatchList.build(hosts)
    spec = ProfileSpec("public", tuple(standard_filters(watch)))
    write_profile(render_profile(spec), tmp_path / "profiles", spec.name)
    _check_layers(cap, watch, tmp_path, spec.name)


@needs_tshark
def test_no_sni_filter_selects_hellos_to_answered_addresses(tmp_path: Path) -> None:
    caps = [p for p in public_captures() if p.name == "tls_google-duplicate.pcap"]
    if not caps or shutil.which("tshark") is None:
        pytest.skip("public capture tls_google-duplicate.pcap not present")
    cap = caps[0]
    hellos = tshark_frames(cap, "tls.handshake.type == 1 && !tls.handshake.extensions_server_name")
    assert hellos, "the capture has ClientHellos without SNI"
    dst = subprocess.run(  # noqa: S603 - argument list
        ["tshark", "-n", "-r", str(cap), "-Y", f"frame.number == {hellos[0]}", "-T", "fields",
         "-e", "ip.dst"], env=tshark_env(tmp_path), capture_output=True, text=True,
        check=True).stdout.split()[0]
    selected = tshark_frames(cap, tls_no_sni_filter([dst]))
    assert selected and set(selected) <= set(hellos)
    assert tshark_frames(cap, tls_no_sni_filter(["192.0.2.1"])) == []


def test_dns_filter_anchors_names() -> None:
    assert dns_filter(WatchList.build(["go.dev"])) == 'dns.qry.name matches "^(go[.]dev)$"'
    assert "http.host" in http_filter(WatchList.build(["go.dev"]))


STATELESS_FINDINGS = {"dns-private-answer", "http-plaintext"}


@needs_tshark
@pytest.mark.skipif(not LAB, reason="no lab captures in captures/ (run `make lab`)")
@pytest.mark.parametrize("cap", LAB, ids=capture_id)
def test_findings_filter_agrees_with_the_analyzer(cap: Path, tmp_path: Path) -> None:
    """Without a key log, every private-answer and plaintext finding of the analyzer has a frame
    the filter selects. The filter may select more: it knows no expectations file and no public
    suffix list (a private answer for a lab name is shown, the analyzer does not flag it)."""
    manifest = json.loads(cap.with_suffix(".json").read_text())
    watch = WatchList.build([*DEFAULT_HOSTS, *manifest.get("watch", [])])
    report = analyze_files([cap], AnalyzeOptions(watch=watch))
    flagged = [set(f.frames) for c in report.contacts for f in c.findings
               if f.kind in STATELESS_FINDINGS]
    from analyzer.filters.display import findings_filter

    selected = set(tshark_frames(cap, findings_filter(watch), tmp_path))
    assert all(frames & selected for frames in flagged)
    if flagged:
        assert selected


@needs_tshark
@pytest.mark.parametrize("name", ["socks-curl.pcapng", "socks-go.pcapng"])
def test_socks_filter_selects_the_requests_that_name_watched_hosts(name: str,
                                                                   tmp_path: Path) -> None:
    """On the lab's SOCKS captures the filter selects the socks4a/socks5h requests (a name for
    the proxy to resolve), not the ones by address, and the same frames as the analyzer."""
    cap = CAPTURES / name
    if not cap.exists():
        pytest.skip(f"{name} not recorded")
    report = analyze_files([cap], AnalyzeOptions(watch=DEFAULT))
    by_name = {max(x.frames) for x in report.evidence.socks if x.request.hostname}
    by_address = {max(x.frames) for x in report.evidence.socks if not x.request.hostname}
    selected = {int(r[0]) for r in tshark_rows(cap, [socks_filter(DEFAULT)])[0]}
    wanted = _socks_requests(report, DEFAULT)
    assert wanted and selected == wanted
    assert selected <= by_name and not selected & by_address
