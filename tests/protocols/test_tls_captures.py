"""TLS parser against public captures: FoxIO's JA4 reference output and Zeek's TLS edge cases.

The captures are copied under tests/data/tls/captures (see the README there). Streams are
reassembled trivially (segments ordered by sequence number, duplicates dropped), which is enough
for these small, clean captures; the real reassembler lives in the engine.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import dpkt
import pytest

from analyzer.base.errors import ParseError
from analyzer.protocols.tls import parse_client_hello, parse_server_flight

CAPTURES = Path(__file__).resolve().parents[1] / "data" / "tls" / "captures"

Endpoint = tuple[str, int]


def _ip_layer(datalink: int, frame: bytes) -> object:
    if datalink == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(frame).data
    if datalink == dpkt.pcap.DLT_NULL:
        return dpkt.loopback.Loopback(frame).data
    raise AssertionError(f"unexpected link type {datalink}")


def tcp_streams(path: Path) -> dict[tuple[Endpoint, Endpoint], tuple[bytes, bytes]]:
    """{(client, server): (client bytes, server bytes)}; the client is whoever sent data first."""
    segments: dict[tuple[Endpoint, Endpoint], dict[int, bytes]] = {}
    order: list[tuple[Endpoint, Endpoint]] = []
    with path.open("rb") as fh:
        reader = dpkt.pcap.Reader(fh)
        for _ts, frame in reader:
            ip = _ip_layer(reader.datalink(), frame)
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)) or not isinstance(ip.data, dpkt.tcp.TCP):
                continue
            tcp = ip.data
            family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
            src = (socket.inet_ntop(family, ip.src), tcp.sport)
            dst = (socket.inet_ntop(family, ip.dst), tcp.dport)
            if tcp.data:
                if (src, dst) not in segments and (dst, src) not in segments:
                    order.append((src, dst))
                segments.setdefault((src, dst), {}).setdefault(tcp.seq, bytes(tcp.data))
    out = {}
    for client, server in order:
        out[(client, server)] = (_join(segments.get((client, server), {})),
                                 _join(segments.get((server, client), {})))
    return out


def _join(by_seq: dict[int, bytes]) -> bytes:
    data, next_seq = b"", None
    for seq, payload in sorted(by_seq.items()):
        if next_seq is None or seq == next_seq:
            data, next_seq = data + payload, seq + len(payload)
        elif seq > next_seq:
            break  # a gap: stop at what is contiguous
    return data


def only_stream(name: str) -> tuple[bytes, bytes]:
    streams = tcp_streams(CAPTURES / name)
    assert len(streams) == 1
    return next(iter(streams.values()))


@pytest.mark.parametrize("name", ["tls-alpn-h2.pcap", "tls12.pcap"])
def test_ja4_matches_foxio_reference(name: str) -> None:
    (expected,) = json.loads((CAPTURES / f"{name}.expected.json").read_text())
    client, _server = only_stream(name)
    hello = parse_client_hello(client)
    assert hello is not None
    assert hello.sni == expected["domain"]
    assert hello.ja4 == expected["JA4.1"]
    assert hello.ja4_r == expected["JA4_r.1"]


def test_foxio_tls12_server_flight() -> None:
    _client, server = only_stream("tls-alpn-h2.pcap")
    flight = parse_server_flight(server)
    sh = flight.server_hello
    assert sh is not None and sh.version == 0x0303 and sh.cipher == 0xCCA9 and sh.alpn == "h2"
    assert sh.extensions == (0x0000, 0xFF01, 0x000B, 0x0010)  # FoxIO JA4S_r: 0000,ff01,000b,0010
    leaf, intermediate = flight.certificates
    assert leaf.subject_cn == "cloudflare.com"
    assert leaf.issuer_cn == intermediate.subject_cn == "DigiCert ECC Extended Validation Server CA"
    assert leaf.issuer_o == "DigiCert Inc"
    assert "www.cloudflare.com" in leaf.sans
    assert flight.complete and not leaf.self_signed


def test_zeek_hello_retry_request() -> None:
    client, server = only_stream("tls_hrr.pcap")
    hello = parse_client_hello(client)
    assert hello is not None and hello.max_version_name == "TLS 1.3"
    flight = parse_server_flight(server)
    assert flight.hello_retry is not None and flight.hello_retry.is_hello_retry
    assert flight.hello_retry.version == 0x0304
    assert flight.server_hello is not None and not flight.server_hello.is_hello_retry
    assert flight.server_hello.cipher == flight.hello_retry.cipher == 0x1302
    assert flight.complete and flight.certificates == ()


def test_zeek_malformed_certificate_is_skipped() -> None:
    # CVE-2015-3194: a certificate whose RSA-PSS signature algorithm lacks the mask generation
    # parameters (it crashed OpenSSL). cryptography refuses it; the flight still reports the
    # ServerHello and counts the skipped entry.
    client, server = only_stream("tls_CVE-2015-3194.pcap")
    assert parse_client_hello(client) is not None
    flight = parse_server_flight(server)
    assert flight.server_hello is not None and flight.server_hello.cipher == 0xC030
    assert flight.certificates == () and flight.skipped_certificates == 1
    assert flight.complete


def test_zeek_certificate_without_cn() -> None:
    _client, server = only_stream("tls_cert-no-cn.pcap")
    (cert,) = parse_server_flight(server).certificates
    assert cert.subject_cn is None and cert.issuer_cn is None


def test_zeek_full_chain_to_self_signed_root() -> None:
    streams = tcp_streams(CAPTURES / "tls_missing-intermediate.pcap")
    chains = [parse_server_flight(server).certificates for _client, server in streams.values()]
    full = max(chains, key=len)
    assert [c.subject_cn for c in full] == ["valid.sfig2.catest.starfieldtech.com",
                                           "Starfield Secure Certificate Authority - G2",
                                           "Starfield Root Certificate Authority - G2"]
    assert [c.self_signed for c in full] == [False, False, True]
    assert min(chains, key=len)[0].subject_cn == "www.cviis.org"  # the chain missing its intermediate


def test_zeek_duplicate_handshakes_parse_the_same() -> None:
    streams = tcp_streams(CAPTURES / "tls_google-duplicate.pcap")
    flights = [parse_server_flight(server) for _client, server in streams.values()]
    assert len(flights) == 2 and flights[0] == flights[1]
    assert flights[0].certificates[0].subject_cn == "*.google.com"


def test_zeek_plaintext_answer_to_client_hello() -> None:
    client, server = only_stream("tls_https-to-http.pcap")
    hello = parse_client_hello(client)
    assert hello is not None and hello.sni is None and hello.ja4.startswith("t13i")
    with pytest.raises(ParseError, match="not a TLS server flight"):
        parse_server_flight(server)
