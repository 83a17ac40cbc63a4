"""Hostile bytes into HttpStreamParser.feed: messages or one ParseError, never anything else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError
from analyzer.protocols.http import HttpRequest, HttpResponse, HttpStreamParser

from .test_http import KEEPALIVE_REQUESTS, KEEPALIVE_RESPONSES

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [KEEPALIVE_REQUESTS, KEEPALIVE_RESPONSES,
         b"CONNECT proxy.golang.org:443 HTTP/1.1\r\n\r\n\x16\x03\x01\x00\x10",
         b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n0\r\n\r\n",
         # odd but real request lines (tests/protocols/test_http_request_lines.py)
         b"M-SEARCH * HTTP/1.1\r\nHost: h\r\n\r\nget\t/x\thttp/1.0\r\n\r\nGET /path\r\n",
         b"GET http://proxy.golang.org/x HTTP/1.1\r\nHost: other\r\n\r\nGET h:80 HTTP/1.1\r\n\r\n"]


def run(is_client: bool, data: bytes, cuts: list[int], midstream: bool = False,
        methods: list[str] | None = None) -> None:
    parser = HttpStreamParser(is_client=is_client, max_header_bytes=512, midstream=midstream)
    for method in methods or []:
        parser.note_request_method(method)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    failures = 0
    for start, end in zip(points, points[1:], strict=False):
        try:
            for message in parser.feed(data[start:end]):
                assert isinstance(message, (HttpRequest, HttpResponse))
                assert 0 <= message.offset < len(data)
                if isinstance(message, HttpRequest):
                    # The properties the engine reads never raise either.
                    assert message.path is not None
                    _ = (message.host, message.user_agent, message.absolute_form,
                         message.authority_form)
                    assert all(n.startswith("http-unusual-request-line: ")
                               for n in message.unusual)
                else:
                    _ = message.location
        except ParseError:
            failures += 1
    assert failures <= 1
    assert parser.failed == (failures == 1)
    assert parser.buffered <= 512 + len(data)
    assert len(parser.tunnel_bytes) <= 16 * 1024


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(1, 5))):
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "digits"]))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.sampled_from(
                [b"\r\n", b"\n", b" ", b":", b"0", b"ffffffffffffffff", b"Content-Length: 3\r\n",
                 b"Transfer-Encoding: chunked\r\n", b"\r\n\r\n", b"HTTP/1.1 ", b"GET "]))
        elif action == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 6))]
        else:
            data[pos:pos] = str(draw(st.integers(0, 10**20))).encode()
    return bytes(data)


@FUZZ
@given(st.booleans(), st.binary(max_size=400), st.lists(st.integers(0, 10_000), max_size=8),
       st.booleans())
def test_random_bytes(is_client: bool, data: bytes, cuts: list[int], midstream: bool) -> None:
    run(is_client, data, cuts, midstream)


@FUZZ
@given(st.booleans(), mutated(), st.lists(st.integers(0, 10_000), max_size=8), st.booleans(),
       st.lists(st.sampled_from(["GET", "HEAD", "CONNECT", "POST"]), max_size=6))
def test_mutated_streams(is_client: bool, data: bytes, cuts: list[int], midstream: bool,
                         methods: list[str]) -> None:
    run(is_client, data, cuts, midstream, methods)


@FUZZ
@given(st.sampled_from(["GET", "CONNECT", "OPTIONS", "get", "M-SEARCH"]), st.text(max_size=60),
       st.one_of(st.none(), st.text(max_size=30)))
def test_request_properties_never_raise(method: str, target: str, host: str | None) -> None:
    headers = (("Host", host),) if host is not None else ()
    request = HttpRequest(method, target, "HTTP/1.1", headers, 0)
    assert isinstance(request.path, str)
    assert request.host is None or isinstance(request.host, str)
    assert isinstance(request.unusual, tuple)
    for prefix in ("http://", "https://["):
        assert (HttpRequest(method, prefix + target, "HTTP/1.1", headers, 0).path
                or "").startswith(("/", prefix))
