"""HTTP/1.x heads from real captures (Zeek's traces), fed in pieces of every size, plus edge cases."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from analyzer.base.errors import ParseError
from analyzer.protocols.http import (
    HttpRequest,
    HttpResponse,
    HttpStreamParser,
    looks_like_http_request,
    looks_like_http_response,
)

from .pcap_payloads import tcp_streams

DATA = Path(__file__).resolve().parent.parent / "data" / "http"
PIECES = [1, 7, 1 << 30]


def pieces(data: bytes, size: int) -> Iterable[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def feed_all(parser: HttpStreamParser, data: bytes, size: int) -> list[HttpRequest | HttpResponse]:
    out: list[HttpRequest | HttpResponse] = []
    for piece in pieces(data, size):
        out.extend(parser.feed(piece))
    return out


def streams(name: str, server_port: int = 80) -> tuple[bytes, bytes]:
    """(client bytes, server bytes) of the capture's one connection."""
    client = server = b""
    for (_src, sport, _dst, dport), data in tcp_streams(DATA / name).items():
        if dport == server_port:
            client = data
        elif sport == server_port:
            server = data
    return client, server


@pytest.mark.parametrize("size", PIECES)
def test_forward_proxy_absolute_form(size: int) -> None:
    client, server = streams("http_proxy.pcap")
    (request,) = feed_all(HttpStreamParser(is_client=True), client, size)
    assert isinstance(request, HttpRequest)
    assert request.method == "GET" and request.target == "HTTP://bro.org/"
    assert request.absolute_form
    assert request.host == "bro.org" and request.path == "/"
    assert request.user_agent == "curl/7.33.0"
    assert request.header("PROXY-CONNECTION") == "Keep-Alive"
    assert request.offset == 0
    parser = HttpStreamParser(is_client=False)
    parser.note_request_method(request.method)
    (response,) = feed_all(parser, server, size)
    assert isinstance(response, HttpResponse)
    assert (response.version, response.status, response.reason) == ("HTTP/1.1", 200, "OK")
    assert response.header("content-length") == "15961"
    assert parser.buffered == 0 and not parser.failed


@pytest.mark.parametrize("size", PIECES)
def test_connect_tunnel(size: int) -> None:
    client, server = streams("http_connect-with-header.pcap")
    parser = HttpStreamParser(is_client=True)
    (request,) = feed_all(parser, client, size)
    assert isinstance(request, HttpRequest)
    assert request.method == "CONNECT" and request.target == "secure.newegg.com:443"
    assert request.host == "secure.newegg.com"
    assert request.path == "secure.newegg.com:443"
    assert parser.tunnel
    # The TLS ClientHello inside the tunnel: a handshake record carrying the SNI.
    assert parser.tunnel_bytes[:3] == b"\x16\x03\x01"
    assert b"secure.newegg.com" in parser.tunnel_bytes
    assert len(parser.tunnel_bytes) == min(len(client) - request_len(client), 16 * 1024)

    upstream = HttpStreamParser(is_client=False)
    upstream.note_request_method("CONNECT")
    (response,) = feed_all(upstream, server, size)
    assert isinstance(response, HttpResponse)
    assert (response.version, response.status) == ("HTTP/1.0", 200)
    assert response.reason == "Connection Established"
    assert upstream.tunnel and upstream.tunnel_bytes[:3] == b"\x16\x03\x03"
    assert len(upstream.tunnel_bytes) == 16 * 1024


def request_len(stream: bytes) -> int:
    return stream.index(b"\r\n\r\n") + 4


@pytest.mark.parametrize("size", PIECES)
def test_capture_without_syn(size: int) -> None:
    client, server = streams("http_get_nosyn.pcap")
    (request,) = feed_all(HttpStreamParser(is_client=True, midstream=True), client, size)
    assert isinstance(request, HttpRequest)
    assert request.path == "/download/CHANGES.bro-aux.txt" and request.host == "bro.org"
    assert request.user_agent == "Wget/1.14 (darwin12.2.0)"
    parser = HttpStreamParser(is_client=False)
    (response,) = feed_all(parser, server, size)
    assert isinstance(response, HttpResponse) and response.status == 200
    # Content-Length 4705 covers the rest of the stream exactly: nothing left, nothing failed.
    assert len(server) - server.index(b"\r\n\r\n") - 4 == 4705
    assert parser.buffered == 0 and not parser.failed


def test_midstream_start_skips_to_the_next_head() -> None:
    _client, server = streams("http_get_nosyn.pcap")
    body_start = server.index(b"\r\n\r\n") + 4
    # A capture that starts in the middle of a body, followed by the next response on the same
    # keep-alive connection.
    joined = server[body_start + 100:] + b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"
    for size in PIECES:
        parser = HttpStreamParser(is_client=False, midstream=True)
        (response,) = feed_all(parser, joined, size)
        assert isinstance(response, HttpResponse) and response.status == 304
        assert response.offset == len(server) - body_start - 100
    with pytest.raises(ParseError):
        HttpStreamParser(is_client=False).feed(joined)


@pytest.mark.parametrize("size", PIECES)
def test_tls_sent_to_a_plain_http_server(size: int) -> None:
    # tls_https-to-http.pcap: a TLS ClientHello to port 80 and the server's HTML error page.
    client, server = streams("tls_https-to-http.pcap")
    for is_client, data in ((True, client), (False, server)):
        parser = HttpStreamParser(is_client=is_client)
        with pytest.raises(ParseError, match="not an HTTP/1.x"):
            feed_all(parser, data, size)
        assert parser.failed
        assert parser.feed(data) == []


KEEPALIVE_REQUESTS = (
    b"GET /golang.org/x/text/@v/list HTTP/1.1\r\nHost: proxy.golang.org\r\n"
    b"User-Agent: GoCommand/1 (+https://go.dev/cmd/go)\r\n\r\n"
    b"HEAD /golang.org/x/text/@v/v0.3.0.zip HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n"
    b"POST /upload/2024-01-01 HTTP/1.1\r\nHost: telemetry.go.dev\r\nContent-Length: 5\r\n\r\nhello"
    b"PUT /x HTTP/1.1\nHost: a.example:8080\nTransfer-Encoding: chunked\nX-Long: a\n b\n\n"
    b"3\r\nabc\r\n0\r\n\r\n"
    b"GET /sumdb/sum.golang.org/supported HTTP/1.0\r\nHost: [::1]:3128\r\n\r\n"
)
KEEPALIVE_RESPONSES = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nv0.3.0\n"
    b"HTTP/1.1 200 OK\r\nContent-Length: 123456\r\n\r\n"                    # HEAD: no body
    b"HTTP/1.1 100 Continue\r\n\r\n"
    b"HTTP/1.1 201 Created\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
    b"HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"               # 304: no body
    b"HTTP/1.1 404 Not Found\r\n\r\nnot found until close"
)


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 64, 1 << 30])
def test_keepalive_sequence(size: int) -> None:
    requests = feed_all(HttpStreamParser(is_client=True), KEEPALIVE_REQUESTS, size)
    assert [(r.method, r.host, r.path) for r in requests if isinstance(r, HttpRequest)] == [
        ("GET", "proxy.golang.org", "/golang.org/x/text/@v/list"),
        ("HEAD", "proxy.golang.org", "/golang.org/x/text/@v/v0.3.0.zip"),
        ("POST", "telemetry.go.dev", "/upload/2024-01-01"),
        ("PUT", "a.example", "/x"),
        ("GET", "::1", "/sumdb/sum.golang.org/supported"),
    ]
    assert requests[0].user_agent == "GoCommand/1 (+https://go.dev/cmd/go)"
    assert requests[3].header("x-long") == "a b"
    assert requests[4].version == "HTTP/1.0"
    assert [r.offset for r in requests] == [KEEPALIVE_REQUESTS.index(line) for line in (
        b"GET /golang", b"HEAD ", b"POST ", b"PUT ", b"GET /sumdb")]

    parser = HttpStreamParser(is_client=False)
    for request in requests:
        assert isinstance(request, HttpRequest)
        parser.note_request_method(request.method)
    responses = feed_all(parser, KEEPALIVE_RESPONSES, size)
    assert [r.status for r in responses if isinstance(r, HttpResponse)] == [
        200, 200, 100, 201, 304, 404]
    assert parser.buffered == 0 and not parser.failed


def test_connect_refused_then_retried_on_the_same_connection() -> None:
    client = (b"CONNECT proxy.golang.org:443 HTTP/1.1\r\nHost: proxy.golang.org:443\r\n\r\n"
              b"CONNECT proxy.golang.org:443 HTTP/1.1\r\nHost: proxy.golang.org:443\r\n"
              b"Proxy-Authorization: Basic dTpw\r\n\r\n\x16\x03\x01\x00\x05hello")
    server = (b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 4\r\n\r\ndeny"
              b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03\x00\x01x")
    for size in (1, 7, 1 << 30):
        parser = HttpStreamParser(is_client=True)
        requests = feed_all(parser, client, size)
        assert [r.method for r in requests if isinstance(r, HttpRequest)] == ["CONNECT", "CONNECT"]
        assert parser.tunnel and parser.tunnel_bytes == b"\x16\x03\x01\x00\x05hello"
        upstream = HttpStreamParser(is_client=False)
        upstream.note_request_method("CONNECT")
        upstream.note_request_method("CONNECT")
        responses = feed_all(upstream, server, size)
        assert [r.status for r in responses if isinstance(r, HttpResponse)] == [407, 200]
        assert upstream.tunnel and upstream.tunnel_bytes == b"\x16\x03\x03\x00\x01x"


def test_empty_lines_between_messages_split_anywhere() -> None:
    # Some clients send an extra CRLF after a POST body (RFC 9112 section 2.2 says to ignore it).
    stream = (b"POST /upload/2024-01-01 HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}\r\n"
              b"\r\nGET / HTTP/1.1\r\n\r\n")
    for size in (1, 2, 3, 1 << 30):
        requests = feed_all(HttpStreamParser(is_client=True), stream, size)
        assert [r.method for r in requests if isinstance(r, HttpRequest)] == ["POST", "GET"]
        assert requests[1].offset == stream.index(b"GET")


def test_many_pipelined_heads_with_mixed_line_ends() -> None:
    stream = (b"HTTP/1.1 204 No Content\n\n" * 20000 + b"HTTP/1.1 204 No Content\r\n\r\n" * 20000
              + b"HTTP/1.1 304 Not Modified\r\nETag: x\n\r\n")
    responses = HttpStreamParser(is_client=False).feed(stream)
    assert len(responses) == 40001
    last = responses[-1]
    assert isinstance(last, HttpResponse) and last.header("etag") == "x"
    assert last.offset == stream.index(b"HTTP/1.1 304")


def test_tunnel_flag_is_set_by_the_connect_head_alone() -> None:
    parser = HttpStreamParser(is_client=True)
    parser.feed(b"CONNECT sum.golang.org:443 HTTP/1.1\r\n\r\n")
    assert parser.tunnel and parser.tunnel_bytes == b""


def test_large_body_is_skipped_not_stored() -> None:
    size = 5 * 1024 * 1024
    parser = HttpStreamParser(is_client=False)
    head = f"HTTP/1.1 200 OK\r\nContent-Type: application/zip\r\nContent-Length: {size}\r\n\r\n"
    assert len(parser.feed(head.encode())) == 1
    chunk = b"PK" * 32768
    for _ in range(size // len(chunk)):
        assert parser.feed(chunk) == []
        assert parser.buffered == 0
    (after,) = parser.feed(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert isinstance(after, HttpResponse) and after.status == 204


def test_header_block_limit() -> None:
    parser = HttpStreamParser(is_client=True, max_header_bytes=1024)
    with pytest.raises(ParseError, match="longer than 1024"):
        for _ in range(100):
            parser.feed(b"GET / HTTP/1.1\r\n" + b"X-Pad: " + b"a" * 100 + b"\r\n")
    assert parser.failed


@pytest.mark.parametrize("is_client,data", [
    (True, b"GET / HTTP/1.1\r\nbad header line\r\n\r\n"),
    (True, b"GET\r\n\r\n"),              # a method alone (Zeek: bad_HTTP_request)
    (True, b"GET \r\n\r\n"),             # HTTP/0.9 needs a target
    (True, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"),
    (True, b"\x16\x03\x01\x02\x00"),
    (False, b"HTTP/1.1 2000 OK\r\n\r\n"),
    (False, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
    (False, b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
    (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x10\r\n"),
    (False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"),
    (False, b"SSH-2.0-OpenSSH_9.2\r\n"),
])
def test_malformed_streams_fail_once(is_client: bool, data: bytes) -> None:
    parser = HttpStreamParser(is_client=is_client)
    with pytest.raises(ParseError):
        parser.feed(data)
    assert parser.failed
    assert parser.feed(b"GET / HTTP/1.1\r\n\r\n") == []


def test_upgrade_switches_to_tunnel() -> None:
    parser = HttpStreamParser(is_client=False)
    (response,) = parser.feed(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05")
    assert isinstance(response, HttpResponse) and response.status == 101
    assert parser.tunnel and parser.tunnel_bytes == b"\x81\x05"


def test_host_and_path_forms() -> None:
    def request(target: str, host: str | None = None, method: str = "GET") -> HttpRequest:
        headers = (("Host", host),) if host is not None else ()
        return HttpRequest(method, target, "HTTP/1.1", headers, 0)

    assert request("/a?b=1", "Proxy.Golang.org.:443").host == "proxy.golang.org"
    assert request("/a?b=1", "Proxy.Golang.org.:443").path == "/a?b=1"
    assert request("http://user@sum.golang.org:80/lookup/x@v1?y", "other").host == "sum.golang.org"
    assert request("http://sum.golang.org:80/lookup/x@v1?y").path == "/lookup/x@v1?y"
    assert request("http://sum.golang.org").path == "/"
    assert request("[2001:db8::1]:443", method="CONNECT").host == "2001:db8::1"
    assert request("/").host is None
    assert request("*", "h", method="OPTIONS").path == "*"
    response = HttpResponse("HTTP/1.1", 302, "Found", (("Location", "http://x/"),), 0)
    assert response.location == "http://x/"


def test_looks_like() -> None:
    assert looks_like_http_request(b"GET / HTTP/1.1")
    assert looks_like_http_request(b"CONNECT h:443 HTTP/1.1")
    assert not looks_like_http_request(b"GETX / HTTP/1.1")
    assert not looks_like_http_request(b"\x16\x03\x01")
    assert looks_like_http_response(b"HTTP/1.1 200 OK")
    assert not looks_like_http_response(b"HTTP/2 200")
