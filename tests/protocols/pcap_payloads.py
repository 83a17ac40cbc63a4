"""Payload bytes out of small test captures, with dpkt (tests only; the engine has its own reader).

The captures used here are clean (no loss), so ordering TCP segments by sequence number and
dropping repeats is enough to rebuild each direction.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dpkt


@dataclass(frozen=True)
class Payload:
    frame: int
    transport: str
    src: str
    sport: int
    dst: str
    dport: int
    seq: int
    data: bytes


def _ip_layer(linktype: int, buf: bytes) -> object:
    if linktype == dpkt.pcap.DLT_EN10MB:
        return dpkt.ethernet.Ethernet(buf).data
    if linktype == dpkt.pcap.DLT_NULL:
        return dpkt.loopback.Loopback(buf).data
    if linktype == dpkt.pcap.DLT_LINUX_SLL:
        return dpkt.sll.SLL(buf).data
    return dpkt.ip.IP(buf)


def _address(ip: object, raw: bytes) -> str:
    family = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
    return socket.inet_ntop(family, raw)


def payloads(path: Path) -> Iterator[Payload]:
    """Every non-empty UDP or TCP payload in a pcap or pcapng file, in frame order."""
    with path.open("rb") as handle:
        magic = handle.read(4)
        handle.seek(0)
        reader = dpkt.pcapng.Reader(handle) if magic == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(handle)
        linktype = reader.datalink()
        for frame, (_ts, buf) in enumerate(reader, 1):
            ip = _ip_layer(linktype, buf)
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, (dpkt.udp.UDP, dpkt.tcp.TCP)) and len(l4.data):
                yield Payload(frame, "udp" if isinstance(l4, dpkt.udp.UDP) else "tcp",
                              _address(ip, ip.src), l4.sport, _address(ip, ip.dst), l4.dport,
                              getattr(l4, "seq", 0), bytes(l4.data))


def udp_payloads(path: Path) -> list[Payload]:
    return [p for p in payloads(path) if p.transport == "udp"]


def tcp_streams(path: Path) -> dict[tuple[str, int, str, int], bytes]:
    """Each TCP direction's bytes, keyed by (src, sport, dst, dport), in sequence order."""
    segments: dict[tuple[str, int, str, int], dict[int, bytes]] = {}
    for p in payloads(path):
        if p.transport == "tcp":
            segments.setdefault((p.src, p.sport, p.dst, p.dport), {}).setdefault(p.seq, p.data)
    return {key: b"".join(data for _seq, data in sorted(parts.items()))
            for key, parts in segments.items()}
