"""Request lines that are odd but real: kept with host and path, and flagged as unusual.

What is kept follows Zeek's HTTP analyzer (zeek/zeek, src/analyzer/protocol/http/HTTP.cc,
HTTP_RequestLine and ParseRequest): any token is a method (Zeek logs a weird
``unknown_HTTP_method`` and keeps it), blanks between the parts may be several spaces or tabs,
a missing target is logged as empty (weird ``missing_HTTP_uri``), a line without a version is
HTTP/0.9 (it needs a target and a method of three characters or more, else
``bad_HTTP_request``), and "GET /HTTP/1.1" is an HTTP/0.9 request for "/HTTP/1.1". Zeek's
baseline testing/btest/Baseline/scripts.base.protocols.http.http-methods/http.log shows
``OPTIONS * HTTP/1.1`` with uri ``*``, ``CCM_POST`` kept as method, and ``GET /HTTP/1.1`` with uri
``/HTTP/1.1``.

Host: an absolute-form target's host wins over the Host header (RFC 9112 section 3.2.2, what a
proxy does); Zeek's http.log shows the Host header instead. Each request says why it is
unusual in ``HttpRequest.unusual``, which becomes the contact's ``notes``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.utils import wrpcap

from analyzer.base.errors import ParseError
from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from analyzer.protocols.http import HttpRequest, HttpStreamParser, looks_like_http_request
from tests.core.test_engine import Conversation

U = "http-unusual-request-line: "
GO = "proxy.golang.org"

# (request bytes, method, target, version, host, path, notes)
ODD = [
    (b"PROPFIND /dav/ HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "PROPFIND", "/dav/", "HTTP/1.1", GO, "/dav/", [U + "method 'PROPFIND' is not an RFC 9110 method"]),
    (b"M-SEARCH * HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "M-SEARCH", "*", "HTTP/1.1", GO, "*",
     [U + "method 'M-SEARCH' is not an RFC 9110 method", U + "asterisk-form target '*'"]),
    (b"get /x HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "get", "/x", "HTTP/1.1", GO, "/x", [U + "method 'get' is not upper case"]),
    (b"OPTIONS * HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "OPTIONS", "*", "HTTP/1.1", GO, "*", [U + "asterisk-form target '*'"]),
    (b"OPTIONS HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "OPTIONS", "", "HTTP/1.1", GO, "", [U + "no request target"]),
    (b"GET http://proxy.golang.org/golang.org/x/text/@v/list HTTP/1.1\r\n\r\n",
     "GET", "http://proxy.golang.org/golang.org/x/text/@v/list", "HTTP/1.1", GO,
     "/golang.org/x/text/@v/list",
     [U + "absolute-form target for proxy.golang.org without a Host header"]),
    (b"GET http://proxy.golang.org/x HTTP/1.1\r\nHost: mirror.example\r\n\r\n",
     "GET", "http://proxy.golang.org/x", "HTTP/1.1", GO, "/x",
     [U + "absolute-form target for proxy.golang.org but Host header 'mirror.example'; "
      "the target's host is used"]),
    (b"GET proxy.golang.org:80 HTTP/1.1\r\n\r\n",
     "GET", "proxy.golang.org:80", "HTTP/1.1", GO, "proxy.golang.org:80",
     [U + "authority-form target 'proxy.golang.org:80' with method GET"]),
    (b"GET /golang.org/x/text/@v/list\r\n",
     "GET", "/golang.org/x/text/@v/list", "HTTP/0.9", None, "/golang.org/x/text/@v/list",
     [U + "no HTTP version (an HTTP/0.9 request)"]),
    (b"GET   /a    HTTP/1.1  \r\nHost: proxy.golang.org\r\n\r\n",
     "GET", "/a", "HTTP/1.1", GO, "/a", [U + "several spaces or tabs between its parts"]),
    (b"GET\t/a\tHTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "GET", "/a", "HTTP/1.1", GO, "/a", [U + "several spaces or tabs between its parts"]),
    (b"GET /a b HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n",
     "GET", "/a b", "HTTP/1.1", GO, "/a b", [U + "spaces inside the request target"]),
    (b"GET /HTTP/1.1\r\n",
     "GET", "/HTTP/1.1", "HTTP/0.9", None, "/HTTP/1.1", [U + "no HTTP version (an HTTP/0.9 request)"]),
    (b"GET / http/1.0\r\nHost: proxy.golang.org\r\n\r\n",
     "GET", "/", "HTTP/1.0", GO, "/", [U + "lower-case HTTP version"]),
]


@pytest.mark.parametrize(("data", "method", "target", "version", "host", "path", "notes"), ODD,
                         ids=[o[0][:24].decode("latin-1") for o in ODD])
def test_odd_request_line_is_kept(data: bytes, method: str, target: str, version: str,
                                  host: str | None, path: str, notes: list[str]) -> None:
    assert looks_like_http_request(data)
    [request] = HttpStreamParser(is_client=True).feed(data)
    assert isinstance(request, HttpRequest)
    assert (request.method, request.target, request.version) == (method, target, version)
    assert (request.host, request.path, list(request.unusual)) == (host, path, notes)


@pytest.mark.parametrize("data", [o[0] for o in ODD], ids=[o[0][:24].decode("latin-1") for o in ODD])
def test_odd_request_line_byte_by_byte(data: bytes) -> None:
    """Fed one byte at a time (a line split over segments), the result is the same."""
    [whole] = HttpStreamParser(is_client=True).feed(data)
    parser = HttpStreamParser(is_client=True)
    got = [m for i in range(len(data)) for m in parser.feed(data[i:i + 1])]
    assert got == [whole]


def test_ordinary_request_lines_carry_no_notes() -> None:
    data = (b"GET /golang.org/x/text/@v/list HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"
            b"CONNECT proxy.golang.org:443 HTTP/1.1\r\nHost: proxy.golang.org:443\r\n\r\n")
    requests = HttpStreamParser(is_client=True).feed(data)
    assert [r.unusual for r in requests] == [(), ()]


@pytest.mark.parametrize("data", [
    b"GET\r\n\r\n",                 # a method alone
    b"GET \r\n\r\n",                # HTTP/0.9 without a target
    b"GE /x\r\n",                   # HTTP/0.9 with a two-letter method (Zeek refuses it too)
    b"G(T / HTTP/1.1\r\n\r\n",      # not a token
])
def test_request_lines_still_refused(data: bytes) -> None:
    with pytest.raises(ParseError):
        HttpStreamParser(is_client=True).feed(data)


@pytest.mark.parametrize("data", [
    b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n",
    b"EHLO mail.example\r\n",
    b"\x16\x03\x01\x02\x00",
    b"GETX / HTTP/1.1",             # no line end yet: not known to be HTTP
])
def test_other_protocols_are_not_taken_for_http(data: bytes) -> None:
    assert not looks_like_http_request(data)


def test_http09_answer_is_read_as_a_body() -> None:
    """An HTTP/0.9 answer has no status line: the server side reads it as a body to the close."""
    server = HttpStreamParser(is_client=False)
    server.note_request_method("GET", http09=True)
    assert server.feed(b"<html>hello</html>") == []
    assert not server.failed


def odd_capture(path: Path) -> None:
    """Each ODD request on its own connection to port 80, with an HTTP/1.1 answer (none for the
    HTTP/0.9 ones: their answer is a bare body)."""
    packets = []
    for i, (data, *_rest) in enumerate(ODD):
        conv = Conversation(sport=43000 + i, dport=80).handshake().client(data)
        if b"HTTP/" in data.split(b"\n", 1)[0].upper():
            conv.server_data(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        else:
            conv.server_data(b"not found\n")
        packets += conv.packets
    wrpcap(str(path), packets)


def test_odd_request_lines_through_the_engine(tmp_path: Path) -> None:
    path = tmp_path / "odd-http.pcap"
    odd_capture(path)
    report = analyze_files([path], AnalyzeOptions(watch=WatchList.build([GO])))
    got = {c.sport: (c.host, c.http.method if c.http else None, c.http.path if c.http else None,
                     list(c.notes)) for c in report.contacts}
    want = {43000 + i: (host, method, None if method == "CONNECT" else path, notes)
            for i, (_d, method, _t, _v, host, path, notes) in enumerate(ODD) if host == GO}
    assert got == want
    # no request was a parse error, and the HTTP/0.9 answers were not either
    assert not any(s.parse_errors for s in report.stats)
    urls = {c.sport: c.url for c in report.contacts}
    assert urls[43001] == "http://proxy.golang.org"           # asterisk-form: no path
    assert urls[43007] == "http://proxy.golang.org:80"        # authority-form: no path
    assert urls[43005] == "http://proxy.golang.org/golang.org/x/text/@v/list"
