"""Cross-check: the request and response heads we read agree with Wireshark's HTTP dissector."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.protocols.http import HttpRequest, HttpResponse, HttpStreamParser

from .pcap_payloads import tcp_streams

DATA = Path(__file__).resolve().parent.parent / "data" / "http"
FIELDS = ["http.request.method", "http.request.uri", "http.host", "http.user_agent",
          "http.response.code"]


def tshark_heads(capture: Path) -> list[tuple[str, ...]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    args = [tshark, "-n", "-r", str(capture), "-Y", "http.request || http.response",
            "-T", "fields", "-E", "separator=|"]
    for name in FIELDS:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60,  # noqa: S603
                         check=True).stdout
    return sorted(tuple(line.split("|")) for line in out.splitlines() if line)


def our_heads(capture: Path) -> list[tuple[str, ...]]:
    """Heads of each connection: the client side first, so the server side knows the methods."""
    heads: list[tuple[str, ...]] = []
    streams = tcp_streams(capture)
    for (src, sport, dst, dport), data in streams.items():
        if dport != 80:
            continue
        server = HttpStreamParser(is_client=False)
        for request in HttpStreamParser(is_client=True).feed(data):
            assert isinstance(request, HttpRequest)
            server.note_request_method(request.method)
            heads.append((request.method, request.target, request.header("host") or "",
                          request.user_agent or "", ""))
        for response in server.feed(streams.get((dst, dport, src, sport), b"")):
            assert isinstance(response, HttpResponse)
            heads.append(("", "", "", "", str(response.status)))
    return sorted(heads)


@pytest.mark.parametrize("capture", ["http_proxy.pcap", "http_connect-with-header.pcap",
                                     "http_get_nosyn.pcap"])
def test_agrees_with_tshark(capture: str) -> None:
    expected = tshark_heads(DATA / capture)
    assert expected, "tshark found no HTTP in the capture"
    assert our_heads(DATA / capture) == expected
