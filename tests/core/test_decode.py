"""The fast header decoder agrees with dpkt's full decode, and reassembles IPv4 fragments."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import dpkt
import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, UDP, fragment
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from analyzer.source.capture_file import ReadState, open_capture
from analyzer.source.decode import Decoder
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
