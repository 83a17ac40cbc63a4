"""The capture filter: compiled by libpcap, and keeping everything the analyzer reads.

The end-to-end checks filter real captures with libpcap (the engine tcpdump uses), keep exactly
the accepted frames with editcap (so pcapng comments survive, as they would in a live capture
written with this filter), analyse both files and compare the reports field by field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.filters.bpf import capture_filter, capture_filter_for_proxies
from analyzer.filters.inputs import DEFAULT_GOPROXY
from analyzer.filters.libpcap import DLT_EN10MB, DLT_LINUX_SLL2, BpfCompileError, compile_filter
from analyzer.pipeline import AnalyzeOptions, Report, analyze_files

from .conftest import (
    ROOT,
    capture_id,
    lab_captures,
    needs_editcap,
    needs_tcpdump,
    public_captures,
)
from .pcaptools import keep_frames, matching_frames, tcpdump_count

DEFAULT = WatchList.build()


def test_default_filter_compiles_for_ethernet_and_sll2() -> None:
    expression = capture_filter(DEFAULT)
    assert compile_filter(expression, DLT_EN10MB) > 0
    assert compile_filter(expression, DLT_LINUX_SLL2) > 0
    assert "\n" not in expression


def test_every_option_combination_compiles() -> None:
    for keep in (False, True):
        for addresses in ((), ("10.0.0.1", "2001:db8::/32")):
            for ports in ((443,), (80, 443, 8443), ()):
                expression = capture_filter(DEFAULT, ports, addresses, keep_server_data=keep)
                assert compile_filter(expression, DLT_LINUX_SLL2) > 0
    assert compile_filter(capture_filter(DEFAULT, vlan=True), DLT_EN10MB) > 0


def test_libpcap_rejection_is_an_error_not_output() -> None:
    with pytest.raises(BpfCompileError, match="syntax error"):
        compile_filter("tcp port 443 or (", DLT_EN10MB)


def test_dns_and_fragments_on_any_resolver_are_kept() -> None:
    expression = capture_filter(DEFAULT)
    assert "udp port 53" in expression and "tcp port 53" in expression
    assert "ip[6:2] & 0x1fff != 0" in expression      # later IPv4 fragments
    assert "ip6[6] == 44" in expression               # IPv6 fragment header


def test_watched_ports_come_from_arguments_only() -> None:
    expression = capture_filter(DEFAULT, ports=(8443,))
    assert "port 8443" in expression and "port 443 " not in expression
    assert "port 80" not in expression


# Frame-level expectations on real captures.

def _frames(path: Path, expression: str) -> set[int]:
    return set(matching_frames(path, expression))


@needs_editcap
def test_split_client_hello_both_segments_kept_bulk_dropped() -> None:
    captures = [p for p in lab_captures() if p.name == "mirror-direct.pcapng"]
    if not captures:
        pytest.skip("lab capture mirror-direct.pcapng not recorded")
    cap = captures[0]
    watch = WatchList.build([*DEFAULT_HOSTS, "goproxy.example", "vanity.example"])
    report = analyze_files([cap], AnalyzeOptions(watch=watch))
    kept = _frames(cap, capture_filter(watch))
    split = [s for s in report.evidence.tls if s.segments >= 2]
    assert split, "the lab's Go ClientHellos span two segments"
    for session in split:
        assert set(session.frames) <= kept
        assert set(session.server_frames) <= kept
    for ex in report.evidence.dns:
        assert {f for f in (ex.query_frame, *ex.response_frames) if f} <= kept
    total = len(matching_frames(cap, ""))
    assert len(kept) < total  # server payload after the handshake is dropped


# Report equality: the filtered file tells the analyzer everything the full one does.

def _normalise(report: Report, frame_map: list[int] | None = None) -> list[dict[str, Any]]:
    def orig(n: int) -> int:
        return frame_map[n - 1] if frame_map else n

    def renumber(text: str) -> str:
        return re.sub(r"frames? [\d, ]+",
                      lambda m: re.sub(r"\d+", lambda d: str(orig(int(d.group()))), m.group()),
                      text)

    out = []
    for contact in report.contacts:
        d = contact.to_dict()
        for key in ("capture", "flow_id"):  # both name the file
            d.pop(key)
        d["frames"] = [orig(n) for n in d["frames"]]
        # editcap may store the timestamp at another resolution (pcap vs pcapng): same microsecond.
        d["ts"] = round(d["ts"], 6)
        for finding in d["findings"]:
            finding["frames"] = [orig(n) for n in finding.get("frames", [])]
            finding["detail"] = renumber(finding["detail"])
        d["notes"] = [renumber(n) for n in d["notes"]]
        out.append(d)
    return out


def _assert_same_report(cap: Path, watch: WatchList, expression: str, tmp_path: Path) -> None:
    kept = matching_frames(cap, expression)
    filtered = keep_frames(cap, kept, tmp_path / f"filtered{cap.suffix}")
    opts = AnalyzeOptions(watch=watch)
    full = _normalise(analyze_files([cap], opts))
    small = _normalise(analyze_files([filtered], opts), kept)
    assert small == full


def _lab_filter(cap: Path) -> tuple[WatchList, str]:
    """The filter a user of that scenario gets: its GOPROXY's and its proxy's ports."""
    manifest = json.loads(cap.with_suffix(".json").read_text())
    env = manifest.get("env", {})
    watch = WatchList.build([*DEFAULT_HOSTS, *manifest.get("watch", [])])
    forwards = [env[k] for k in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY") if env.get(k)]
    # curl's --socks* flags: the proxy URL a user would put in ALL_PROXY for the same
    schemes = {"--socks4": "socks4", "--socks4a": "socks4a", "--socks5": "socks5",
               "--socks5-hostname": "socks5h"}
    forwards += [f"{schemes[c['flag']]}://{c['proxy']}" for c in manifest.get("socks_clients", [])]
    return watch, capture_filter_for_proxies(watch, env.get("GOPROXY", DEFAULT_GOPROXY), forwards)


LAB = lab_captures()


@needs_editcap
@pytest.mark.skipif(not LAB, reason="no lab captures in captures/ (run `make lab`)")
@pytest.mark.parametrize("cap", LAB, ids=capture_id)
def test_lab_report_on_filtered_file_equals_full_report(cap: Path, tmp_path: Path) -> None:
    watch, expression = _lab_filter(cap)
    _assert_same_report(cap, watch, expression, tmp_path)


@needs_tcpdump
@pytest.mark.skipif(not LAB, reason="no lab captures in captures/ (run `make lab`)")
def test_tcpdump_keeps_the_same_frames(tmp_path: Path) -> None:
    for cap in LAB:
        _, expression = _lab_filter(cap)
        assert tcpdump_count(cap, expression, tmp_path) == len(matching_frames(cap, expression))


# Public captures: the user watches what the capture talks to, on the ports its servers use.
# Known limits, each with its reason:
UNSUPPORTED = {
    "nflog-http.pcap": "NFLOG link type: libpcap cannot index IP headers in it",
}
TLS12_CERT_BEYOND_FIRST_SEGMENT = {"tls-alpn-h2.pcap"}
VLAN_TAGGED = {"http-vlan-0.pcap", "http-qinq-0.pcap"}
PUBLIC = public_captures()


def _public_filter(cap: Path, report: Report, keep: bool) -> tuple[WatchList, str]:
    hosts = set()
    for c in report.contacts:
        try:
            hosts.add(WatchList.build([c.host]).names()[0])
        except Exception:  # noqa: BLE001 - mDNS service names are not hostnames
            continue
    watch = WatchList.build(sorted(hosts)) if hosts else DEFAULT
    ports = sorted({80, 443, *(c.dport for c in report.contacts if c.transport == "tcp")})
    plaintext = sorted({c.dport for c in report.contacts if c.layer == "http"} | {80})
    return watch, capture_filter(watch, ports, keep_server_data=keep, plaintext_ports=plaintext,
                                 vlan=cap.name in VLAN_TAGGED)


@needs_editcap
@pytest.mark.skipif(not PUBLIC, reason="public captures not present in ../shared/captures")
@pytest.mark.parametrize("cap", [p for p in PUBLIC if p.name not in UNSUPPORTED], ids=capture_id)
def test_public_report_on_filtered_file_equals_full_report(cap: Path, tmp_path: Path) -> None:
    everything = analyze_files([cap], AnalyzeOptions(watch=WatchList.build(match_all=True)))
    keep = cap.name in TLS12_CERT_BEYOND_FIRST_SEGMENT
    watch, expression = _public_filter(cap, everything, keep)
    _assert_same_report(cap, watch, expression, tmp_path)


@needs_editcap
def test_tls12_certificate_chain_needs_keep_server_data(tmp_path: Path) -> None:
    """The documented trade-off: the default filter keeps the ServerHello, not the whole chain."""
    caps = [p for p in PUBLIC if p.name in TLS12_CERT_BEYOND_FIRST_SEGMENT]
    if not caps:
        pytest.skip("public capture tls-alpn-h2.pcap not present")
    cap = caps[0]
    everything = analyze_files([cap], AnalyzeOptions(watch=WatchList.build(match_all=True)))
    watch, expression = _public_filter(cap, everything, keep=False)
    kept = matching_frames(cap, expression)
    filtered = keep_frames(cap, kept, tmp_path / "f.pcap")
    small = analyze_files([filtered], AnalyzeOptions(watch=watch)).contacts
    assert [c.tls.version for c in small if c.tls] == ["TLS 1.2"]
    assert [c.tls.cert_issuer for c in small if c.tls] == [None]


@needs_editcap
def test_socks_proxy_from_the_environment_keeps_the_tunnels(tmp_path: Path) -> None:
    """`filters bpf` with ALL_PROXY/HTTPS_PROXY naming SOCKS proxies (as a curl or go user sets
    them): the SOCKS answers are kept, so the filtered socks-curl capture reports exactly what
    the whole one does. Without the proxies in the configuration the tunnels are lost."""
    import os
    import subprocess
    import sys

    cap = ROOT / "captures" / "socks-curl.pcapng"
    if not cap.exists():
        pytest.skip("socks-curl not recorded (make lab)")
    manifest = json.loads(cap.with_suffix(".json").read_text())
    dante, ssh = manifest["socks_clients"][0]["proxy"], manifest["socks_clients"][-1]["proxy"]
    watch = WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]])

    def bpf(env: dict[str, str]) -> str:
        base = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        argv = [sys.executable, "-m", "analyzer.cli", "filters", "bpf", "--goproxy",
                DEFAULT_GOPROXY, *(f"--watch={w}" for w in manifest["watch"])]
        done = subprocess.run(argv, env={**base, **env, "PYTHONPATH": str(ROOT)},  # noqa: S603
                              capture_output=True, text=True, timeout=60, check=True, cwd=ROOT)
        return done.stdout.splitlines()[-1]

    with_socks = bpf({"ALL_PROXY": f"socks5h://{dante}", "HTTPS_PROXY": f"socks4a://{ssh}"})
    _assert_same_report(cap, watch, with_socks, tmp_path)
    # Without the proxies nothing of the tunnels is kept; with their ports and address but not
    # the SOCKS answers, the ClientHellos are still read (the client's side is whole) but no
    # server flight inside a tunnel, and no refusal, can be.
    filtered = keep_frames(cap, matching_frames(cap, bpf({})), tmp_path / "none.pcapng")
    assert not [c for c in analyze_files([filtered], AnalyzeOptions(watch=watch)).contacts
                if c.via_proxy is not None]
    ports = [int(p.rsplit(":", 1)[1]) for p in (dante, ssh)]
    no_answers = capture_filter(watch, [80, 443, *ports], [dante.rsplit(":", 1)[0]])
    filtered = keep_frames(cap, matching_frames(cap, no_answers), tmp_path / "part.pcapng")
    part = analyze_files([filtered], AnalyzeOptions(watch=watch)).contacts
    tunnelled = [c for c in part if c.via_proxy is not None and c.layer == "tls"]
    assert len(tunnelled) == 4 and all(c.tls and c.tls.version is None for c in tunnelled)
    assert {n for c in part if c.layer == "socks" for n in c.notes} >= {
        "no reply from the SOCKS proxy was seen"}
