"""DNS parsing on real captures (Zeek's and ptcpdump's test traces) and crafted edge cases."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from analyzer.base.errors import ParseError
from analyzer.protocols.dns import (
    MAX_POINTER_CHAIN,
    DnsMessage,
    DnsRecord,
    parse_dns,
    read_name,
    split_tcp_dns,
)

from .pcap_payloads import payloads, tcp_streams, udp_payloads

DATA = Path(__file__).resolve().parent.parent / "data" / "dns"


def messages(name: str) -> list[DnsMessage]:
    return [parse_dns(p.data) for p in udp_payloads(DATA / name)]


def test_https_record_matches_zeek_baseline() -> None:
    query, response = messages("dns-https.pcap")
    assert query.questions[0].name == "cloudflare.com"
    assert query.questions[0].qtype == "HTTPS"
    assert not query.is_response and response.is_response
    assert query.has_edns and query.edns_payload_size == 4096
    (record,) = response.answers
    # Zeek: testing/btest/Baseline/scripts.base.protocols.dns.https/output
    # "[svc_priority=1, target_name=.]"
    assert record.svcb is not None
    assert (record.svcb.priority, record.svcb.target) == (1, ".")
    assert record.rtype == "HTTPS" and record.ttl == 129
    assert record.svcb.alpn == ("h3", "h3-29", "h3-28", "h3-27", "h2")
    assert record.svcb.ipv4hint == ("104.16.132.229", "104.16.133.229")
    assert record.svcb.ipv6hint == ("2606:4700::6810:84e5", "2606:4700::6810:85e5")
    assert not record.svcb.ech
    assert record.value.startswith("1 . alpn=h3,h3-29,h3-28,h3-27,h2 ipv4hint=104.16.132.229,")
    assert response.addresses() == ("104.16.132.229", "104.16.133.229",
                                    "2606:4700::6810:84e5", "2606:4700::6810:85e5")


def test_svcb_record_matches_zeek_baseline() -> None:
    # A loopback (DLT_NULL) capture. Zeek: Baseline/scripts.base.protocols.dns.svcb/output
    # "[svc_priority=0, target_name=foo.example.com]" (AliasMode, no parameters).
    query, response = messages("dns-svcb.pcap")
    assert query.questions[0].qtype == "SVCB"
    (record,) = response.answers
    assert record.svcb is not None
    assert (record.svcb.priority, record.svcb.target) == (0, "foo.example.com")
    assert record.value == "0 foo.example.com"
    assert record.addresses == ()
    assert response.addresses() == ()


def test_corrupt_udp_checksum_trace_still_has_valid_dns() -> None:
    # dns-corrupt.pcap is about bad UDP checksums (Zeek's conn.log test); the DNS itself is fine.
    query, response = messages("dns_dns-corrupt.pcap")
    assert query.questions[0].name == "zeek.org" and query.questions[0].qtype == "A"
    assert query.txid == response.txid == 0xB823
    assert response.rcode == "NOERROR"
    assert response.addresses() == ("192.0.78.212", "192.0.78.150")
    assert all(r.ttl == 60 for r in response.answers)


def test_compression_chain_of_depth_six_is_accepted() -> None:
    # Each answer's owner name points at the previous answer's name: depth 1..6. Zeek flags it
    # as DNS_max_compression_chain_depth_exceeded with its test's lowered limit
    # (Baseline/scripts.base.protocols.dns.max-compression-depth/weird.log); it is legal DNS.
    (response,) = messages("dns_max-compression-depth.pcap")
    assert [r.name for r in response.answers] == ["a"] * 7
    assert response.addresses() == tuple(f"127.0.0.{i}" for i in range(1, 8))


def _chain_message(depth: int) -> bytes:
    """A header, the name "a", ``depth`` pointers each to the previous, and a final pointer."""
    buf = bytearray(struct.pack(">HHHHHH", 1, 0x8180, 0, 0, 0, 0)) + b"\x01a\x00"
    previous = 12
    for _ in range(depth + 1):
        here = len(buf)
        buf += struct.pack(">H", 0xC000 | previous)
        previous = here
    return bytes(buf)


def test_compression_chain_depth_is_capped() -> None:
    ok = _chain_message(MAX_POINTER_CHAIN - 1)
    assert read_name(ok, len(ok) - 2) == ("a", len(ok))
    deep = _chain_message(MAX_POINTER_CHAIN)
    with pytest.raises(ParseError, match="deeper"):
        read_name(deep, len(deep) - 2)


def test_forward_and_self_pointers_are_refused() -> None:
    header = struct.pack(">HHHHHH", 1, 0, 1, 0, 0, 0)
    with pytest.raises(ParseError, match="backwards"):
        parse_dns(header + b"\xc0\x0c" + b"\x00\x01\x00\x01")    # points at itself
    with pytest.raises(ParseError, match="backwards"):
        parse_dns(header + b"\xc0\x20" + b"\x00\x01\x00\x01" + bytes(20))


def test_quadratic_pointer_chains_finish() -> None:
    # 10,000 questions each pointing at the previous one: without a depth cap this is 5e7 jumps.
    count = 10_000
    header = struct.pack(">HHHHHH", 7, 0, count, 0, 0, 0)
    body = bytearray(b"\x01a\x00\x00\x01\x00\x01")
    previous = 12
    for _ in range(count - 1):
        here = 12 + len(body)
        body += struct.pack(">H", 0xC000 | previous) + b"\x00\x01\x00\x01"
        previous = here
    with pytest.raises(ParseError):
        parse_dns(header + bytes(body))


def test_long_udp_conversation() -> None:
    parsed = messages("dns_long-connection.pcap")
    assert len(parsed) == 22
    queries = [m for m in parsed if not m.is_response]
    responses = {m.txid: m for m in parsed if m.is_response}
    assert {q.txid for q in queries} == set(responses)
    mx = responses[0xF76F]
    assert mx.questions[0].qtype == "MX"
    assert "10 smtp1.google.com" in [r.value for r in mx.answers]
    assert {r.rtype for r in mx.additional} == {"A"}
    cname = responses[0x8DB3]
    assert cname.cname_chain("www.google.com") == ("www.l.google.com",)
    assert cname.addresses() == ()
    assert responses[0x266D].rcode == "NXDOMAIN"
    assert responses[0x49A1].questions[0].qtype == "TYPE29"       # LOC
    ptr = responses[0x9BBB]
    assert ptr.answers[0].rtype == "PTR"
    assert ptr.answers[0].value == "66-192-9-104.gen.twtelecom.net"
    any_answer = responses[0xFEE3]
    assert any_answer.questions[0].qtype == "ANY"
    assert set(any_answer.addresses()) == {"2001:4f8:0:2::d", "204.152.184.88"}


def test_mdns() -> None:
    parsed = messages("dns_mdns.pcap")
    assert parsed and all(m.txid == 0 for m in parsed)
    first = parsed[0]
    assert [(q.name, q.qtype) for q in first.questions] == [
        ("_ipp._tcp.local", "PTR"), ("_ipps._tcp.local", "PTR")]
    announcement = next(m for m in parsed if m.is_response)
    assert announcement.questions == ()
    assert "johanna-qemu-virtual-machine.local" in {r.name for r in announcement.answers}
    assert "10.0.2.7" in {a for m in parsed for r in m.answers + m.authority for a in r.addresses}


def test_ptcpdump_pcapng() -> None:
    query, response = messages("ptcpdump_dns.pcapng")
    assert query.questions[0].name == "example.com"
    assert query.has_edns and query.edns_payload_size == 1232
    assert response.addresses() == ("93.184.215.14",)
    assert response.answers[0].ttl == 3562


def _scapy_tcp_dns_capture(path: Path) -> None:
    """A DNS response over TCP whose length-prefixed message spans two segments."""
    pytest.importorskip("scapy", reason="scapy is needed to craft the capture")
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.utils import wrpcap

    wire = bytes(DNS(id=0x1234, qr=1, rd=1, ra=1, qd=DNSQR(qname="proxy.golang.org", qtype="A"),
                     an=DNSRR(rrname="proxy.golang.org", type="A", ttl=300, rdata="142.250.74.81")))
    framed = struct.pack(">H", len(wire)) + wire
    cut = 9
    ip = IP(src="10.0.0.53", dst="10.0.0.2")
    wrpcap(str(path), [
        Ether() / ip / TCP(sport=53, dport=40000, flags="PA", seq=1000) / framed[:cut],
        Ether() / ip / TCP(sport=53, dport=40000, flags="PA", seq=1000 + cut) / framed[cut:],
    ])


def test_dns_over_tcp_split_across_segments(tmp_path: Path) -> None:
    capture = tmp_path / "dns-tcp.pcap"
    _scapy_tcp_dns_capture(capture)
    segments = [p.data for p in payloads(capture)]
    assert len(segments) == 2
    assert split_tcp_dns(segments[0]) == ([], 0)          # incomplete: nothing consumed
    stream = tcp_streams(capture)[("10.0.0.53", 53, "10.0.0.2", 40000)]
    found, used = split_tcp_dns(stream + b"\x00")         # one stray byte of the next prefix
    assert used == len(stream)
    (message,) = [parse_dns(m) for m in found]
    assert message.txid == 0x1234
    assert message.addresses() == ("142.250.74.81",)


def test_split_tcp_dns_several_messages() -> None:
    a, b = b"\x00" * 12, b"\x01" * 20
    stream = struct.pack(">H", 12) + a + struct.pack(">H", 20) + b + b"\x00\x30abc"
    found, used = split_tcp_dns(stream)
    assert found == [a, b]
    assert used == 2 + 12 + 2 + 20


def test_extended_rcode_and_unknown_names() -> None:
    # An OPT record whose TTL carries extended rcode 1 -> 16 (BADVERS), and an unknown type.
    header = struct.pack(">HHHHHH", 9, 0x8180, 1, 1, 0, 1)
    question = b"\x01x\x00" + struct.pack(">HH", 999, 1)
    answer = b"\xc0\x0c" + struct.pack(">HHIH", 999, 1, 5, 3) + b"abc"
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0x01008000, 0)
    message = parse_dns(header + question + answer + opt)
    assert message.rcode == "BADVERS"
    assert message.edns_do
    assert message.questions[0].qtype == "TYPE999"
    assert message.answers == (DnsRecord("x", "TYPE999", 5, "\\# 3 616263"),)
    assert message.additional == ()


def test_binary_labels_are_escaped_and_lowered() -> None:
    header = struct.pack(">HHHHHH", 1, 0, 1, 0, 0, 0)
    name = b"\x04A.\xff\x00" + b"\x03Com\x00"
    message = parse_dns(header + name + struct.pack(">HH", 1, 1))
    assert message.questions[0].name == "a\\.\\255\\000.com"


def test_cname_loop_terminates() -> None:
    message = DnsMessage(1, True, 0, "NOERROR", (), (
        DnsRecord("a", "CNAME", 1, "b"), DnsRecord("b", "CNAME", 1, "a")), False)
    assert message.cname_chain("a") == ("b",)


@pytest.mark.parametrize("data", [b"", b"\x00" * 11, b"\x00\x01\x81\x80\x00\x01\x00\x00\x00\x00\x00\x00",
                                  b"\x00\x01\x81\x80\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01\x00\x01"])
def test_truncated_messages_raise_parse_error(data: bytes) -> None:
    with pytest.raises(ParseError):
        parse_dns(data)


def test_https_record_with_every_parameter_encoded_by_scapy() -> None:
    dns_layer = pytest.importorskip("scapy.layers.dns", reason="scapy encodes the record")
    record = dns_layer.DNSRRHTTPS(
        rrname="proxy.golang.org", svc_priority=1, target_name=".", svc_params=[
            dns_layer.SvcParam(key="alpn", value=["h2", "http/1.1"]),
            dns_layer.SvcParam(key="port", value=8443),
            dns_layer.SvcParam(key="ipv4hint", value=["142.250.74.81"]),
            dns_layer.SvcParam(key="ech", value=b"\x00\x45abc"),
            dns_layer.SvcParam(key="ipv6hint", value=["2a00:1450::51"])])
    wire = bytes(dns_layer.DNS(id=5, qr=1, an=record,
                               qd=dns_layer.DNSQR(qname="proxy.golang.org", qtype="HTTPS")))
    (answer,) = parse_dns(wire).answers
    assert answer.svcb is not None
    assert answer.svcb.alpn == ("h2", "http/1.1") and answer.svcb.port == 8443
    assert answer.svcb.ech
    assert answer.addresses == ("142.250.74.81", "2a00:1450::51")
    assert answer.value == ("1 . alpn=h2,http/1.1 port=8443 ipv4hint=142.250.74.81 ech "
                            "ipv6hint=2a00:1450::51")
