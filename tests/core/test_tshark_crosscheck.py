"""Cross-check: tshark (Wireshark's dissectors) and proxytrace see the same names and requests."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES, SHARED_CAPTURES

TSHARK = shutil.which("tshark")
LAB = sorted(CAPTURES.glob("*.pcapng"))
# Public captures whose DNS, TLS and HTTP sit on standard ports (tshark decodes by port).
PUBLIC = [SHARED_CAPTURES / "public" / n for n in (
    "dns-https.pcap", "dns-svcb.pcap", "http-vlan-0.pcap", "http-qinq-0.pcap", "http_proxy.pcap",
    "tls_https-to-http.pcap", "tls_google-duplicate.pcap", "tls_hrr.pcap",
    "dns_long-connection.pcap")] + sorted((SHARED_CAPTURES / "ja4").glob("*.pcap"))


def _tshark_view(path: Path) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-n", "-o", "tcp.desegment_tcp_streams:TRUE",
         "-Y", "(dns.flags.response == 0) or tls.handshake.type == 1 or http.request",
         "-T", "fields", "-E", "separator=\t", "-e", "dns.qry.name",
         "-e", "tls.handshake.extensions_server_name", "-e", "http.host",
         "-e", "http.request.uri"],
        capture_output=True, text=True, timeout=120, check=False)
    names: set[str] = set()
    snis: set[str] = set()
    requests: set[tuple[str, str]] = set()
    for line in out.stdout.splitlines():
        qname, sni, host, uri = (line.split("\t") + ["", "", "", ""])[:4]
        if qname:
            names.add(qname.split(",")[0].lower())
        if sni:
            snis.add(sni.lower())
        if host and uri:
            requests.add((host.split(":")[0].lower(), uri))
    return names, snis, requests


def _our_view(path: Path) -> tuple[set[str], set[str], set[tuple[str, str]]]:
    report = analyze_files([path], AnalyzeOptions(watch=WatchList.build([], match_all=True)))
    ev = report.evidence
    names = {d.qname for d in ev.dns if d.query_frame is not None}
    snis = {t.client_hello.sni for t in ev.tls if t.client_hello.sni}
    requests = {(h.request.host or "", h.request.target) for h in ev.http}
    return names, snis, requests


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", LAB + [p for p in PUBLIC if p.exists()], ids=lambda p: p.name)
def test_same_names_snis_and_requests_as_tshark(path: Path) -> None:
    theirs = _tshark_view(path)
    ours = _our_view(path)
    assert ours[0] == theirs[0], "DNS query names differ"
    assert ours[1] == theirs[1], "TLS SNIs differ"
    assert ours[2] == theirs[2], "HTTP host/paths differ"
