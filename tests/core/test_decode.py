"""The fast header decoder agrees with dpkt's full decode, and reassembles IPv4 and IPv6 fragments."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import dpkt
import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from analyzer.packets.decode import Decoder
from analyzer.source.capture_file import ReadState, open_capture
from tests.conftest import SHARED_CAPTURES

PUBLIC = sorted(p for p in SHARED_CAPTURES.glob("*/*") if p.suffix in (".pcap", ".pcapng"))


def _dpkt_l3(linktype: int, data: bytes) -> dpkt.Packet | None:
    if linktype == 1:
        eth = dpkt.ethernet.Ethernet(data)
        return eth.data if isinstance(eth.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype == 113:
        sll = dpkt.sll.SLL(data)
        return sll.data if isinstance(sll.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype == 276:
        sll2 = dpkt.sll2.SLL2(data)
        return sll2.data if isinstance(sll2.data, dpkt.ip.IP | dpkt.ip6.IP6) else None
    if linktype in (0, 108):
        data = data[4:]
    if linktype in (0, 101, 108, 228, 229):
        return dpkt.ip.IP(data) if data[0] >> 4 == 4 else dpkt.ip6.IP6(data)
    return None


@pytest.mark.parametrize("path", PUBLIC, ids=lambda p: p.name)
def test_segments_match_dpkt(path: Path) -> None:
    state = ReadState(path.name)
    decoder = Decoder()
    compared = 0
    with path.open("rb") as fh:
        for frame in open_capture(fh, state):
            ours = decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)
            try:
                l3 = _dpkt_l3(frame.linktype, frame.data)
            except (dpkt.UnpackError, IndexError):
                continue
            if l3 is None or isinstance(l3, dpkt.ip.IP) and (l3.mf or l3.offset):
                continue
            l4 = l3.data
            if not isinstance(l4, dpkt.tcp.TCP | dpkt.udp.UDP):
                continue
            assert ours is not None, f"frame {frame.number}"
            family = socket.AF_INET if isinstance(l3, dpkt.ip.IP) else socket.AF_INET6
            assert ours.src == socket.inet_ntop(family, l3.src)
            assert ours.dst == socket.inet_ntop(family, l3.dst)
            assert (ours.sport, ours.dport) == (l4.sport, l4.dport)
            assert ours.payload == bytes(l4.data), f"frame {frame.number}"
            if isinstance(l4, dpkt.tcp.TCP):
                assert (ours.seq, ours.flags) == (l4.seq, l4.flags & 0x3F)
            compared += 1
    if path.name.endswith((".pcap", ".pcapng")) and compared == 0:
        pytest.skip("no TCP/UDP frame that dpkt decodes")


def test_qinq_and_vlan_tags() -> None:
    pkt = Ether() / Dot1AD(vlan=10) / Dot1Q(vlan=20) / IP(src="10.1.1.1", dst="10.1.1.2") / \
        UDP(sport=5353, dport=53) / b"payload"
    seg = Decoder().decode(1, 0.0, 1, bytes(pkt))
    assert seg is not None and seg.payload == b"payload" and seg.dst == "10.1.1.2"


def test_ipv4_fragments_reassembled_for_dns_in_any_order() -> None:
    answers = [DNSRR(rrname="proxy.golang.org", type="A", rdata=f"10.9.{i // 250}.{i % 250}")
               for i in range(120)]
    dns = DNS(id=7, qr=1, qd=DNSQR(qname="proxy.golang.org"), an=answers)
    whole = IP(src="10.0.0.53", dst="10.0.0.2", id=999) / UDP(sport=53, dport=33333) / dns
    frags = fragment(whole, fragsize=600)
    assert len(frags) >= 3
    decoder = Decoder()
    out = [decoder.decode(i, 0.0, 101, bytes(f)) for i, f in
           enumerate([frags[-1], *frags[:-1]], 1)]
    assert out[:-1] == [None] * (len(frags) - 1)
    seg = out[-1]
    assert seg is not None and seg.sport == 53
    assert seg.payload == bytes(whole[UDP].payload)


def test_truncated_headers_are_skipped_not_fatal() -> None:
    decoder = Decoder()
    pkt = bytes(Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP() / b"xyz")
    for cut in range(len(pkt)):
        decoder.decode(1, 0.0, 1, pkt[:cut])  # never raises
    assert decoder.skipped


def test_stdin_like_stream_reads_whole_capture() -> None:
    path = SHARED_CAPTURES / "public" / "http_proxy.pcap"
    if not path.exists():
        pytest.skip("public capture missing")
    frames = list(open_capture(io.BufferedReader(io.BytesIO(path.read_bytes())),
                               ReadState("<stdin>")))
    assert frames


def test_ipv6_fragments_reassembled_for_dns_in_any_order() -> None:
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6

    answers = [DNSRR(rrname="proxy.golang.org", type="AAAA", rdata=f"2001:db8::{i:x}")
               for i in range(80)]
    dns = DNS(id=9, qr=1, qd=DNSQR(qname="proxy.golang.org", qtype="AAAA"), an=answers)
    whole = IPv6(src="2001:db8::53", dst="2001:db8::2") / IPv6ExtHdrFragment(id=0x1234) / \
        UDP(sport=53, dport=40000) / dns
    frags = fragment6(whole, 1000)
    assert len(frags) >= 3
    decoder = Decoder()
    order = [frags[1], frags[-1], frags[0], *frags[2:-1]]
    out = [decoder.decode(i, 0.0, 101, bytes(f)) for i, f in enumerate(order, 1)]
    assert out[:-1] == [None] * (len(frags) - 1)
    seg = out[-1]
    assert seg is not None and (seg.sport, seg.dport) == (53, 40000)
    assert seg.src == "2001:db8::53"
    assert seg.payload == bytes(whole[UDP].payload)
    # an atomic fragment (offset 0, no more fragments) is read as the packet it is
    atomic = IPv6(src="2001:db8::53", dst="2001:db8::2") / IPv6ExtHdrFragment(id=1) / \
        UDP(sport=53, dport=40001) / b"abc"
    seg = Decoder().decode(1, 0.0, 101, bytes(atomic))
    assert seg is not None and seg.payload == b"abc"


def test_ipv6_fragmented_dns_reaches_the_report(tmp_path: Path) -> None:
    from scapy.layers.inet6 import IPv6, IPv6ExtHdrFragment, fragment6
    from scapy.utils import wrpcap

    from analyzer.pipeline import AnalyzeOptions, analyze_files

    query = Ether() / IPv6(src="2001:db8::2", dst="2001:db8::53") / UDP(sport=40000, dport=53) / \
        DNS(id=9, rd=1, qd=DNSQR(qname="proxy.golang.org", qtype="AAAA"))
    answers = [DNSRR(rrname="proxy.golang.org", type="AAAA", rdata=f"2001:db8::{i:x}")
               for i in range(80)]
    response = IPv6(src="2001:db8::53", dst="2001:db8::2") / IPv6ExtHdrFragment(id=7) / \
        UDP(sport=53, dport=40000) / DNS(id=9, qr=1, qd=DNSQR(qname="proxy.golang.org",
                                                              qtype="AAAA"), an=answers)
    packets = [query, *(Ether() / f for f in fragment6(response, 1000))]
    for i, p in enumerate(packets):
        p.time = 1_790_000_000 + i / 1000
    path = tmp_path / "v6frag.pcap"
    wrpcap(str(path), packets)
    report = analyze_files([path], AnalyzeOptions())
    dns = [c for c in report.contacts if c.layer == "dns"]
    assert len(dns) == 1 and dns[0].dns is not None
    assert len(dns[0].dns.answers) == 80 and dns[0].dns.answers[0] == "2001:db8::"
    assert dns[0].frames[0] == 1 and len(dns[0].frames) == 2  # the query, the last fragment


def test_address_text_cache_stays_bounded_and_right(monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses are remembered as text (one string per address), and a capture with more
    distinct addresses than the cache holds still decodes every one correctly."""
    from analyzer.packets import decode

    monkeypatch.setattr(decode, "_IPV4_NAMES_MAX", 50)
    dec = Decoder()
    seen = []
    for i in range(decode._IPV4_NAMES_MAX * 2 + 10):
        src = socket.inet_ntoa(i.to_bytes(4, "big"))
        pkt = bytes(Ether() / IP(src=src, dst="192.0.2.1") / UDP(sport=5353, dport=53) / b"x")
        seg = dec.decode(i + 1, 0.0, 1, pkt)
        assert seg is not None and seg.src == src and seg.dst == "192.0.2.1"
        seen.append(seg.dst)
        assert len(dec._ipv4_text) <= decode._IPV4_NAMES_MAX
    assert all(d is seen[0] for d in seen[:40])  # one string for a repeated address
