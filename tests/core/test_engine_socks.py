"""SOCKS tunnels in the engine: the TLS and HTTP inside are the same contacts as without the
tunnel, with the proxy as ``via_proxy``; refusals are ``socks`` contacts."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from tests.protocols.test_socks import (
    CHOICE,
    GREET,
    GREET_AUTH,
    REPLY_OK,
    SOCKS4_OK,
)
from tests.protocols.test_tls import client_hello_bytes, data

from .test_engine import CLIENT, RESOLVER, SERVER, Conversation, _analyze

HOST = "localhost"  # the go command's recorded ClientHello names it


@pytest.fixture
def hello_with_sni() -> bytes:
    """The go command's ClientHello (go1.27.3, tests/data/tls), one TLS record."""
    raw = data("go1.27.3.client.bin")
    return raw[:5 + int.from_bytes(raw[3:5], "big")]


@pytest.fixture
def hello_without_sni() -> bytes:
    return client_hello_bytes([0x1301, 0xC02B], [(10, b"\x00\x02\x00\x1d"), (43, b"\x02\x03\x04")])
NAME_REQ = b"\x05\x01\x00\x03" + bytes([len(HOST)]) + HOST.encode() + b"\x01\xbb"
ADDR = "10.77.0.99"
ADDR_REQ = b"\x05\x01\x00\x01" + bytes([10, 77, 0, 99]) + b"\x01\xbb"


def _direct(tmp_path: Path, hello: bytes) -> list:
    return _analyze(tmp_path, Conversation().handshake().client(hello).packets, [HOST]).contacts


def _same_but_proxied(direct: list, tunnelled: list, kind: str, port: int = 1080) -> None:
    assert [(c.layer, c.host) for c in tunnelled] == [(c.layer, c.host) for c in direct]
    for d, t in zip(direct, tunnelled, strict=True):
        assert t.via_proxy is not None
        assert (t.via_proxy.address, t.via_proxy.port, t.via_proxy.kind) == (SERVER, port, kind)
        if d.tls is not None:
            assert t.tls is not None and (t.tls.sni, t.tls.ja4, t.tls.ja3) == (
                d.tls.sni, d.tls.ja4, d.tls.ja3)


def test_socks5h_tunnel_gives_the_tls_contact(tmp_path: Path, hello_with_sni: bytes) -> None:
    conv = Conversation(dport=1080).handshake()
    conv.client(GREET).server_data(CHOICE).client(NAME_REQ).server_data(REPLY_OK)
    hello_frame = len(conv.packets) + 1
    conv.client(hello_with_sni[:300]).client(hello_with_sni[300:])
    contacts = _analyze(tmp_path, conv.packets, [HOST]).contacts
    _same_but_proxied(_direct(tmp_path, hello_with_sni), contacts, "socks5")
    [tls] = contacts
    assert tls.frames[:2] == (hello_frame, hello_frame + 1)
    assert any("for the proxy to resolve" in n for n in tls.notes)
    assert tls.to_dict()["via_proxy"] == {"address": SERVER, "port": 1080, "kind": "socks5"}


def test_pipelined_greeting_request_and_hello_in_one_segment(tmp_path: Path,
                                                             hello_with_sni: bytes) -> None:
    conv = Conversation(dport=9050).handshake()
    conv.client(GREET + NAME_REQ + hello_with_sni).server_data(CHOICE + REPLY_OK + b"\x16\x03\x03")
    contacts = _analyze(tmp_path, conv.packets, [HOST]).contacts
    _same_but_proxied(_direct(tmp_path, hello_with_sni), contacts, "socks5", 9050)


def test_socks4_by_address_named_from_dns(tmp_path: Path, hello_without_sni: bytes) -> None:
    """No SNI, a SOCKS4 request by address: the name comes from the DNS answer for that address
    (not from the proxy's address)."""
    dns = [Ether() / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=50000, dport=53) / DNS(
               id=7, rd=1, qd=DNSQR(qname=HOST)),
           Ether() / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=50000) / DNS(
               id=7, qr=1, qd=DNSQR(qname=HOST), an=DNSRR(rrname=HOST, rdata=ADDR))]
    conv = Conversation(dport=1080).handshake()
    conv.client(b"\x04\x01\x01\xbb" + bytes([10, 77, 0, 99]) + b"\x00").server_data(SOCKS4_OK)
    conv.client(hello_without_sni)
    contacts = _analyze(tmp_path, dns + conv.packets, [HOST]).contacts
    tls = [c for c in contacts if c.layer == "tls"]
    assert [c.host for c in tls] == [HOST]
    assert tls[0].via_proxy is not None and tls[0].via_proxy.kind == "socks4"
    assert tls[0].tls is not None and tls[0].tls.name_from_dns
    assert any(f"{ADDR} was the DNS answer" in n for n in tls[0].notes)


def test_socks4a_without_sni_takes_the_requested_name(tmp_path: Path,
                                                      hello_without_sni: bytes) -> None:
    conv = Conversation(dport=1080).handshake()
    conv.client(b"\x04\x01\x01\xbb\x00\x00\x00\x01\x00" + HOST.encode() + b"\x00")
    conv.server_data(SOCKS4_OK).client(hello_without_sni)
    [tls] = _analyze(tmp_path, conv.packets, [HOST]).contacts
    assert tls.host == HOST and tls.via_proxy is not None and tls.via_proxy.kind == "socks4"
    assert f"no SNI; name from the SOCKS4 request ({HOST})" in tls.notes


def test_plain_http_through_socks5_with_password(tmp_path: Path) -> None:
    request = (b"GET /golang.org/x/text/@v/list HTTP/1.1\r\nHost: proxy.golang.org\r\n"
               b"User-Agent: curl/7.88.1\r\n\r\n")
    conv = Conversation(dport=1080).handshake()
    conv.client(GREET_AUTH).server_data(b"\x05\x02")
    conv.client(b"\x01\x05alice\x08hunter22").server_data(b"\x01\x00")
    conv.client(b"\x05\x01\x00\x03\x10proxy.golang.org\x00\x50").server_data(REPLY_OK)
    request_frame = len(conv.packets) + 1
    conv.client(request).server_data(b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nv0.3.0\n")
    report = _analyze(tmp_path, conv.packets, ["proxy.golang.org"])
    [http] = report.contacts
    assert http.layer == "http" and http.http is not None
    assert (http.http.path, http.http.status, http.operation) == (
        "/golang.org/x/text/@v/list", 200, "module-list")
    assert http.via_proxy is not None and http.via_proxy.kind == "socks5"
    assert http.frames[0] == request_frame  # the request's own frame, not the handshake's
    assert "hunter22" not in str([c.to_dict() for c in report.contacts])


@pytest.mark.parametrize(("reply", "reason"), [
    (CHOICE + b"\x05\x05\x00\x01" + bytes(6), "connection refused"),
    (b"\x05\xff", "no acceptable authentication method"),
])
def test_refused_socks5_is_a_socks_contact(tmp_path: Path, reply: bytes, reason: str) -> None:
    conv = Conversation(dport=1080).handshake()
    conv.client(GREET)
    if reply[1] != 0xFF:
        conv.server_data(reply[:2]).client(NAME_REQ).server_data(reply[2:])
    else:
        conv.server_data(reply)
    contacts = _analyze(tmp_path, conv.packets, [HOST]).contacts
    if reply[1] == 0xFF:
        assert contacts == []  # the request never named a host
        return
    [socks] = contacts
    assert socks.layer == "socks" and socks.host == HOST
    assert socks.via_proxy is not None and socks.via_proxy.kind == "socks5"
    assert socks.notes[0] == f"socks5h CONNECT {HOST}:443; reply: {reason}"
    assert len(socks.notes) == 2 and "for the proxy to resolve" in socks.notes[1]


def test_refused_socks4_by_address(tmp_path: Path) -> None:
    dns = [Ether() / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=50000, dport=53) / DNS(
               id=7, rd=1, qd=DNSQR(qname=HOST)),
           Ether() / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=50000) / DNS(
               id=7, qr=1, qd=DNSQR(qname=HOST), an=DNSRR(rrname=HOST, rdata=ADDR))]
    conv = Conversation(dport=1080).handshake()
    conv.client(b"\x04\x01\x01\xbb" + bytes([10, 77, 0, 99]) + b"\x00")
    conv.server_data(b"\x00\x5b" + bytes(6))
    contacts = [c for c in _analyze(tmp_path, dns + conv.packets, [HOST]).contacts
                if c.layer == "socks"]
    assert [c.host for c in contacts] == [HOST]
    assert contacts[0].notes[0] == f"socks4 CONNECT {ADDR}:443; reply: request rejected or failed"


def test_socks_lookalikes_are_not_socks(tmp_path: Path, hello_with_sni: bytes) -> None:
    """TLS and HTTP on port 1080 stay TLS and HTTP; bytes that start like SOCKS but are not
    leave no contact and no error."""
    conv = Conversation(dport=1080).handshake().client(hello_with_sni)
    [tls] = _analyze(tmp_path, conv.packets, [HOST]).contacts
    assert tls.via_proxy is None
    conv = Conversation(dport=1080).handshake().client(b"\x05\x01\x00\x00\x01\x02\x03" * 40)
    report = _analyze(tmp_path, conv.packets, [HOST])
    assert report.contacts == [] and not report.stats[0].parse_errors


def test_malformed_socks_reply_is_counted(tmp_path: Path) -> None:
    conv = Conversation(dport=1080).handshake()
    conv.client(GREET).server_data(b"\x05\x00").client(NAME_REQ).server_data(b"\x07\x00\x00\x01")
    report = _analyze(tmp_path, conv.packets, [HOST])
    assert report.stats[0].parse_errors == {"socks": 1}


def test_refused_after_an_optimistic_hello_is_only_the_refusal(tmp_path: Path,
                                                               hello_with_sni: bytes) -> None:
    """A client that sends its ClientHello before the answer, and the proxy refuses: the hello
    went no further than the proxy, so the contact is the refused request."""
    conv = Conversation(dport=1080).handshake()
    conv.client(GREET + NAME_REQ + hello_with_sni)
    conv.server_data(CHOICE + b"\x05\x02\x00\x01" + bytes(6))
    [socks] = _analyze(tmp_path, conv.packets, [HOST]).contacts
    assert socks.layer == "socks"
    assert socks.notes[0] == f"socks5h CONNECT {HOST}:443; reply: connection not allowed by ruleset"
