"""Odd request lines through both engines: where Wireshark's HTTP dissector differs, and why.

The capture is tests/protocols/test_http_request_lines.py's (one connection per odd request
line, Host proxy.golang.org). The builtin engine reads them as Zeek does. Wireshark's HTTP
dissector (tshark 4.0, packet-http.c) splits the request line at single spaces and knows
methods from a list, so for some lines it keeps a different target or none; this table says
which, so a change on either side shows here.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.protocols.test_http_request_lines import ODD, odd_capture

TSHARK = shutil.which("tshark")
BASE = 43000


def _index(line: bytes) -> int:
    return BASE + [o[0] for o in ODD].index(line)


# client port -> (what tshark's contact shows: (method, path, unusual notes) or None, why)
WIRESHARK_DIFFERS: dict[int, tuple[Any, str]] = {
    _index(b"get /x HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"):
        (None, "a lower-case method is not taken for an HTTP request"),
    _index(b"GET\t/a\tHTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"):
        (None, "tabs between the parts: not taken for an HTTP request"),
    _index(b"OPTIONS HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"):
        (("OPTIONS", "HTTP/1.1", ()), "the version is taken for the target"),
    _index(b"GET   /a    HTTP/1.1  \r\nHost: proxy.golang.org\r\n\r\n"):
        (("GET", "", ("http-unusual-request-line: no request target",)),
         "the target is what lies between the first two spaces: nothing"),
    _index(b"GET /a b HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"):
        (("GET", "/a", ()), "the target ends at the first space"),
    _index(b"GET / http/1.0\r\nHost: proxy.golang.org\r\n\r\n"):
        (("GET", "/", ()), "same request; the lower-case version is noted by the builtin engine "
                           "only (it reads the request line's bytes)"),
}


def _by_port(path: Path, engine: str) -> dict[int, tuple[Any, ...]]:
    opts = AnalyzeOptions(watch=WatchList.build(["proxy.golang.org"]), engine=engine)
    return {c.sport: (c.http.method if c.http else None, c.http.path if c.http else None,
                      c.notes) for c in analyze_files([path], opts).contacts}


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_odd_request_lines_in_both_engines(tmp_path: Path) -> None:
    path = tmp_path / "odd-http.pcap"
    odd_capture(path)
    builtin, tshark = _by_port(path, "builtin"), _by_port(path, "tshark")
    for port in sorted(set(builtin) | set(tshark)):
        if port in WIRESHARK_DIFFERS:
            expected, why = WIRESHARK_DIFFERS[port]
            assert tshark.get(port) == expected, why
            assert builtin[port] != tshark.get(port)
        else:
            assert tshark.get(port) == builtin.get(port), port
    assert len(builtin) == 12  # the HTTP/0.9 requests name no host, so they are no contact
