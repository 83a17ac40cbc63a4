"""Odd request lines sent by the real curl in the lab keep their host and path, and are noted.

curl writes what it is told to (``-X`` for any method, ``--request-target`` for any target);
``curl -v`` prints each request line and Host header it sent, which is the ground truth here.
The lab server answers plain HTTP on port 80 (501 for methods it does not serve).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from analyzer.pipeline import AnalyzeOptions, analyze_files

from .netlab import Lab

pytestmark = pytest.mark.lab

URL = "http://proxy.golang.org/golang.org/x/text/@v/list"
U = "http-unusual-request-line: "
# (curl arguments, method, path, notes)
CASES = [
    (["-X", "PROPFIND"], "PROPFIND", "/golang.org/x/text/@v/list",
     [U + "method 'PROPFIND' is not an RFC 9110 method"]),
    (["-X", "M-SEARCH", "--request-target", "*"], "M-SEARCH", "*",
     [U + "method 'M-SEARCH' is not an RFC 9110 method", U + "asterisk-form target '*'"]),
    (["-X", "get"], "get", "/golang.org/x/text/@v/list", [U + "method 'get' is not upper case"]),
    (["-X", "OPTIONS", "--request-target", "*"], "OPTIONS", "*", [U + "asterisk-form target '*'"]),
    (["--request-target", "proxy.golang.org:80"], "GET", "proxy.golang.org:80",
     [U + "authority-form target 'proxy.golang.org:80' with method GET"]),
    ([], "GET", "/golang.org/x/text/@v/list", []),
]


def _sent(stderr: str) -> tuple[str, str]:
    """The request line and the Host header curl -v says it sent."""
    lines = [ln[2:].strip() for ln in stderr.splitlines() if ln.startswith("> ")]
    host = next(ln.split(":", 1)[1].strip() for ln in lines if ln.lower().startswith("host:"))
    return lines[0], host


def test_curl_odd_request_lines(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    capture = tmp_path / "odd-http.pcapng"
    sent = []
    with lab.capture(capture):
        for args, *_ in CASES:
            res = lab.run_client(["curl", "-sv", "-o", "/dev/null", *args, URL])
            assert res.returncode == 0, res.stderr
            sent.append(_sent(res.stderr))
    report = analyze_files([capture], AnalyzeOptions())  # the Go hosts are watched
    http = sorted((c for c in report.contacts if c.layer == "http"), key=lambda c: c.ts)
    assert len(http) == len(CASES)
    for contact, (args, method, path, notes), (line, host) in zip(http, CASES, sent, strict=True):
        assert line == f"{method} {path} HTTP/1.1", args        # what curl says it sent
        assert host == "proxy.golang.org"
        assert contact.http is not None
        assert (contact.host, contact.http.method, contact.http.path) == (host, method, path)
        assert [n for n in contact.notes if n.startswith(U)] == notes
        assert contact.http.status is not None                    # the answer was read too
    if shutil.which("tshark") is not None:
        # Wireshark's HTTP dissector does not take a lower-case method for HTTP
        # (tests/tshark/test_http_odd_lines.py); the other requests it reads the same way.
        opts = AnalyzeOptions(engine="tshark")
        seen = sorted((c.http.method, c.http.path) for c in analyze_files([capture], opts).contacts
                      if c.layer == "http" and c.http is not None)
        assert seen == sorted((m, p) for _a, m, p, _n in CASES if m != "get")
