"""The SOCKS handshake parser on handshakes as curl, Go and dante write them."""

from __future__ import annotations

import pytest

from analyzer.protocols.socks import (
    SocksError,
    SocksHandshake,
    looks_like_socks,
    parse_handshake,
)

CH = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"  # the start of a ClientHello

# curl --socks4 10.77.1.1:1080: user id empty; dante answers 90 with zeros.
SOCKS4_REQ = b"\x04\x01\x01\xbb\x0a\x4d\x01\x01\x00"
SOCKS4_OK = b"\x00\x5a\x00\x00\x00\x00\x00\x00"
# curl --socks4a: 0.0.0.1, then the name
SOCKS4A_REQ = b"\x04\x01\x01\xbb\x00\x00\x00\x01alice\x00proxy.golang.org\x00"
# Go (x/net/internal/socks): greeting with "no authentication", CONNECT by name.
GREET = b"\x05\x01\x00"
CHOICE = b"\x05\x00"
REQ_NAME = b"\x05\x01\x00\x03\x10proxy.golang.org\x01\xbb"
REPLY_OK = b"\x05\x00\x00\x01\x0a\x4d\x01\x01\x9c\x40"
REQ_V4 = b"\x05\x01\x00\x01\x0a\x4d\x01\x01\x01\xbb"
REQ_V6 = b"\x05\x01\x00\x04" + bytes(15) + b"\x01" + b"\x01\xbb"
# RFC 1929: user "bob", password "s3cret"
GREET_AUTH = b"\x05\x02\x00\x02"
AUTH = b"\x01\x03bob\x06s3cret"


def test_socks4_connect_by_address() -> None:
    hs = parse_handshake(SOCKS4_REQ + CH, SOCKS4_OK)
    assert hs.request is not None and hs.reply is not None
    assert (hs.request.variant, hs.request.address, hs.request.port) == ("socks4", "10.77.1.1", 443)
    assert hs.request.hostname is None and hs.request.userid == ""
    assert hs.request.length == len(SOCKS4_REQ)
    assert hs.reply.granted and hs.reply.length == 8 and hs.reply.reason == "request granted"


def test_socks4a_names_the_host() -> None:
    hs = parse_handshake(SOCKS4A_REQ, b"\x00\x5b" + bytes(6))
    assert hs.request is not None and hs.reply is not None
    assert (hs.request.variant, hs.request.hostname, hs.request.address) == (
        "socks4a", "proxy.golang.org", None)
    assert hs.request.userid == "alice" and hs.request.kind == "socks4"
    assert not hs.reply.granted and hs.reply.reason == "request rejected or failed"


def test_socks5_by_name_ipv4_ipv6() -> None:
    hs = parse_handshake(GREET + REQ_NAME + CH, CHOICE + REPLY_OK)
    assert hs.request is not None and hs.reply is not None
    assert (hs.request.variant, hs.request.target, hs.request.port) == (
        "socks5h", "proxy.golang.org", 443)
    assert hs.request.length == len(GREET + REQ_NAME) and hs.request.methods == (0,)
    assert hs.reply.granted and hs.reply.length == len(CHOICE + REPLY_OK)
    assert hs.reply.bound_address == "10.77.1.1" and hs.reply.bound_port == 40000
    v4 = parse_handshake(GREET + REQ_V4, CHOICE).request
    assert v4 is not None and (v4.variant, v4.address) == ("socks5", "10.77.1.1")
    v6 = parse_handshake(GREET + REQ_V6, CHOICE).request
    assert v6 is not None and v6.address == "::1" and v6.kind == "socks5"


def test_rfc1929_keeps_the_user_and_never_the_password() -> None:
    hs = parse_handshake(GREET_AUTH + AUTH + REQ_NAME, b"\x05\x02\x01\x00" + REPLY_OK)
    assert hs.request is not None and hs.reply is not None and hs.reply.granted
    assert hs.request.username == "bob" and hs.method == 2
    assert "s3cret" not in repr(hs)
    failed = parse_handshake(GREET_AUTH + AUTH, b"\x05\x02\x01\x01").reply
    assert failed is not None and not failed.granted and failed.stage == "auth"


def test_refusals() -> None:
    no_method = parse_handshake(GREET, b"\x05\xff").reply
    assert no_method is not None and not no_method.granted and no_method.stage == "method"
    refused = parse_handshake(GREET + REQ_NAME, CHOICE + b"\x05\x05\x00\x01" + bytes(6)).reply
    assert refused is not None and refused.reason == "connection refused"


@pytest.mark.parametrize("cut", range(1, len(GREET + REQ_NAME)))
def test_incomplete_bytes_wait(cut: int) -> None:
    data = GREET + REQ_NAME
    hs = parse_handshake(data[:cut], CHOICE + REPLY_OK[:4])
    assert isinstance(hs, SocksHandshake) and hs.request is None and hs.reply is None


def test_gssapi_is_not_followed() -> None:
    hs = parse_handshake(b"\x05\x02\x00\x01\x01\x01\x00\x04abcd", b"\x05\x01")
    assert hs.unsupported and hs.request is None


@pytest.mark.parametrize("data", [
    b"\x06\x01\x00", b"\x05\x00", b"\x05\x01\x00\x05\x09\x00\x01" + bytes(6),
    b"\x05\x01\x00\x05\x01\x01\x01" + bytes(6), b"\x05\x01\x00\x05\x01\x00\x07" + bytes(6),
    b"\x05\x01\x00\x01\x03bob\x01x", b"\x05\x01\x00\x05\x01\x00\x03\x03a b\x00\x50",
    b"\x04\x03\x00\x50\x01\x02\x03\x04\x00", b"\x04\x01\x00\x50\x00\x00\x00\x01\x00\x00",
    b"\x04\x01\x00\x50\x01\x02\x03\x04" + b"u" * 300,
])
def test_malformed_raises_socks_error(data: bytes) -> None:
    with pytest.raises(SocksError):
        parse_handshake(data, b"")


def test_server_mistakes_raise() -> None:
    with pytest.raises(SocksError):
        parse_handshake(GREET, b"\x05\x02")  # a method that was not offered
    with pytest.raises(SocksError):
        parse_handshake(SOCKS4_REQ, b"\x00\x10" + bytes(6))
    with pytest.raises(SocksError):
        parse_handshake(GREET + REQ_NAME, CHOICE + b"\x04\x00\x00\x01" + bytes(6))


@pytest.mark.parametrize(("data", "socks"), [
    (SOCKS4_REQ, True), (SOCKS4A_REQ, True), (GREET, True), (GREET_AUTH, True),
    (GREET + REQ_NAME, True), (GREET_AUTH + AUTH, True),
    (CH, False), (b"GET / HTTP/1.1\r\n", False), (b"SSH-2.0-OpenSSH_9.2\r\n", False),
    (b"\x05\x01\x00\x00\x00\x00", False),   # a greeting followed by garbage
    (b"\x05\x02\x00\x00", False),           # the same method twice
    (b"\x05\x01\xff", False),               # "no acceptable method" is never offered
    (b"\x04\x01\x00\x50\x01\x02\x03\x04\x01\x02\x00", False),  # user id not text
    (b"\x00\x00\x00\x10", False), (b"\x05", False),
])
def test_looks_like_socks(data: bytes, socks: bool) -> None:
    assert looks_like_socks(data) is socks
