"""From link-layer frames to transport segments, reading only the header bytes we need.

Every packet of a multi-gigabyte capture passes through here, so this decodes with slices and
``struct`` instead of building dpkt objects per packet (the tests check it against dpkt and
scapy on the same bytes). Unknown link or network types are counted, not fatal.
"""

from __future__ import annotations

import struct

# _socket, not socket: socket.py wraps these same functions and, when imported, builds its enum
# classes and imports selectors (about 5 ms of every start-up)
from _socket import AF_INET6, inet_ntoa, inet_ntop
from typing import NamedTuple

from .ipfrag import FragmentKey, Ipv4Reassembler

# Link types (https://www.tcpdump.org/linktypes.html)
DLT_NULL, DLT_EN10MB, DLT_RAW, DLT_LOOP = 0, 1, 101, 108
DLT_RAW_ALIASES = (12, 14)  # DLT_RAW on some BSDs / OpenBSD
DLT_LINUX_SLL, DLT_IPV4, DLT_IPV6, DLT_NFLOG, DLT_LINUX_SLL2 = 113, 228, 229, 239, 276
LINKTYPE_NAMES = {
    DLT_NULL: "BSD loopback", DLT_EN10MB: "Ethernet", DLT_RAW: "raw IP", 12: "raw IP",
    14: "raw IP", DLT_LOOP: "OpenBSD loopback", DLT_LINUX_SLL: "Linux cooked (SLL)",
    DLT_IPV4: "raw IPv4", DLT_IPV6: "raw IPv6", DLT_NFLOG: "Linux NFLOG",
    DLT_LINUX_SLL2: "Linux cooked v2 (SLL2)",
}
SUPPORTED_LINKTYPES = frozenset(LINKTYPE_NAMES)

ETH_IPV4, ETH_IPV6 = 0x0800, 0x86DD
VLAN_TPIDS = (0x8100, 0x88A8, 0x9100, 0x9200)
IPPROTO_TCP, IPPROTO_UDP = 6, 17
IPV6_EXT_HEADERS = (0, 43, 60, 51)  # hop-by-hop, routing, destination options, AH
IPV6_FRAGMENT = 44

TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK = 0x01, 0x02, 0x04, 0x08, 0x10


class Segment(NamedTuple):
    """A TCP or UDP packet reduced to what the flow table needs.

    A named tuple rather than a frozen dataclass: one is made for every packet the slow path
    decodes, and a frozen dataclass's ``__init__`` sets each of its eleven fields through
    ``object.__setattr__`` (a third of the decoder's time)."""

    frame: int
    ts: float
    transport: str        # "tcp" | "udp"
    src: str
    sport: int
    dst: str
    dport: int
    payload: bytes
    seq: int = 0
    ack: int = 0
    flags: int = 0


# version/IHL, total length, fragment field, protocol, source and destination addresses
_IPV4_HEADER = struct.Struct("!BxH2xHxB2x4s4s")


_IPV4_NAMES_MAX = 4096


class Decoder:
    """Stateful only for IPv4 fragment reassembly; everything else is per packet."""

    def __init__(self) -> None:
        self.fragments = Ipv4Reassembler()
        self.skipped: dict[str, int] = {}
        # IPv4 address text by its 4 bytes: a capture's packets come from few addresses, so one
        # string each (less memory in the events) and no inet_ntoa per packet; bounded, since a
        # hostile capture can hold any number of addresses.
        self._ipv4_text: dict[bytes, str] = {}

    def _ipv4_name(self, packed: bytes) -> str:
        names = self._ipv4_text
        if len(names) >= _IPV4_NAMES_MAX:
            names.clear()
        text = names[packed] = inet_ntoa(packed)
        return text

    def _skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1

    def decode(self, frame: int, ts: float, linktype: int, data: bytes) -> Segment | None:
        if linktype == DLT_EN10MB and data[12:14] == b"\x08\x00":
            return self._ipv4(frame, ts, data, 14)  # the common case, without the dispatch
        l3 = self._network(linktype, data)
        if l3 is None:
            return None
        version, pkt, off = l3
        if version == 4:
            return self._ipv4(frame, ts, pkt, off)
        return self._ipv6(frame, ts, pkt[off:])

    # The link and IPv4 layers pass (packet, offset) down rather than slices: only the payload
    # is copied, once (a packet used to be copied three times on its way to a Segment).

    def _network(self, linktype: int, data: bytes) -> tuple[int, bytes, int] | None:
        """Strip the link layer; return (IP version, buffer, offset of the IP header)."""
        if linktype == DLT_EN10MB:
            if len(data) < 14:
                self._skip("short ethernet frame")
                return None
            etype = (data[12] << 8) | data[13]
            pos = 14
            while etype in VLAN_TPIDS and len(data) >= pos + 4:
                etype = (data[pos + 2] << 8) | data[pos + 3]
                pos += 4
            return self._by_ethertype(etype, data, pos)
        if linktype == DLT_LINUX_SLL2:
            if len(data) < 20:
                self._skip("short SLL2 header")
                return None
            return self._by_ethertype((data[0] << 8) | data[1], data, 20)
        if linktype == DLT_LINUX_SLL:
            if len(data) < 16:
                self._skip("short SLL header")
                return None
            return self._by_ethertype((data[14] << 8) | data[15], data, 16)
        if linktype in (DLT_RAW, DLT_IPV4, DLT_IPV6) or linktype in DLT_RAW_ALIASES:
            return self._by_version(data, 0)
        if linktype in (DLT_NULL, DLT_LOOP):
            if len(data) < 4:
                self._skip("short loopback header")
                return None
            return self._by_version(data, 4)
        if linktype == DLT_NFLOG:
            return self._nflog(data)
        self._skip(f"link type {linktype}")
        return None

    def _by_ethertype(self, etype: int, pkt: bytes, off: int) -> tuple[int, bytes, int] | None:
        if etype == ETH_IPV4:
            return 4, pkt, off
        if etype == ETH_IPV6:
            return 6, pkt, off
        self._skip("non-IP ethertype")
        return None

    def _by_version(self, pkt: bytes, off: int) -> tuple[int, bytes, int] | None:
        if len(pkt) <= off:
            self._skip("empty packet")
            return None
        version = pkt[off] >> 4
        if version in (4, 6):
            return version, pkt, off
        self._skip("not IP")
        return None

    def _nflog(self, data: bytes) -> tuple[int, bytes, int] | None:
        # NFLOG: 4-byte header, then TLVs (little-endian length/type); type 9 is the packet payload.
        pos = 4
        while pos + 4 <= len(data):
            length, tlv_type = struct.unpack_from("<HH", data, pos)
            if length < 4:
                break
            if tlv_type == 9:
                return self._by_version(data[pos + 4:pos + length], 0)
            pos += length + (-length % 4)
        self._skip("NFLOG without payload")
        return None

    def _ipv4(self, frame: int, ts: float, pkt: bytes, off: int) -> Segment | None:
        if len(pkt) - off < 20:
            self._skip("short IPv4 header")
            return None
        vhl, total, frag, proto, src_b, dst_b = _IPV4_HEADER.unpack_from(pkt, off)
        ihl = (vhl & 0x0F) * 4
        if ihl < 20 or total < ihl:
            self._skip("bad IPv4 header")
            return None
        end = min(off + total, len(pkt))  # drop Ethernet padding
        names = self._ipv4_text
        src = names.get(src_b) or self._ipv4_name(src_b)
        dst = names.get(dst_b) or self._ipv4_name(dst_b)
        more, offset = frag & 0x2000, (frag & 0x1FFF) * 8
        if more or offset:
            ident = (pkt[off + 4] << 8) | pkt[off + 5]
            whole = self.fragments.add(FragmentKey(src, dst, ident, proto), offset, bool(more),
                                       pkt[off + ihl:end], ts)
            if whole is None:
                return None
            return self._transport(frame, ts, proto, src, dst, whole, 0, len(whole))
        return self._transport(frame, ts, proto, src, dst, pkt, off + ihl, end)

    def _ipv6(self, frame: int, ts: float, pkt: bytes) -> Segment | None:
        if len(pkt) < 40:
            self._skip("short IPv6 header")
            return None
        nxt = pkt[6]
        src = inet_ntop(AF_INET6, pkt[8:24])
        dst = inet_ntop(AF_INET6, pkt[24:40])
        plen = (pkt[4] << 8) | pkt[5]
        body = pkt[40:40 + plen] if plen else pkt[40:]
        for _ in range(8):  # bounded walk over extension headers
            if nxt in IPV6_EXT_HEADERS:
                if len(body) < 8:
                    self._skip("short IPv6 extension header")
                    return None
                size = (body[1] + 2) * 4 if nxt == 51 else (body[1] + 1) * 8
                nxt, body = body[0], body[size:]
            elif nxt == IPV6_FRAGMENT:
                if len(body) < 8:
                    self._skip("short IPv6 fragment header")
                    return None
                off_flags = (body[2] << 8) | body[3]
                if off_flags & 0xFFF9:
                    # a real fragment (RFC 8200 4.5), not an atomic one: reassembled like IPv4's.
                    # The key holds the fragment header's next header; RFC 8200 lets later
                    # fragments differ from the first, which no stack is known to do.
                    ident = int.from_bytes(body[4:8], "big")
                    whole = self.fragments.add(FragmentKey(src, dst, ident, body[0]),
                                               off_flags & 0xFFF8, bool(off_flags & 1),
                                               body[8:], ts)
                    if whole is None:
                        return None
                    nxt, body = body[0], whole  # extension headers may follow: walk on
                    continue
                nxt, body = body[0], body[8:]
            else:
                break
        return self._transport(frame, ts, nxt, src, dst, body, 0, len(body))

    def _transport(self, frame: int, ts: float, proto: int, src: str, dst: str,
                   buf: bytes, start: int, end: int) -> Segment | None:
        """The TCP or UDP header at ``buf[start:end]`` (the IP payload)."""
        size = end - start
        if proto == IPPROTO_TCP:
            if size < 20:
                self._skip("short TCP header")
                return None
            sport, dport, seq, ack, off_flags = struct.unpack_from("!HHIIH", buf, start)
            hlen = (off_flags >> 12) * 4
            if hlen < 20:
                self._skip("bad TCP header length")
                return None
            return Segment(frame, ts, "tcp", src, sport, dst, dport, buf[start + hlen:end], seq,
                           ack, off_flags & 0x3F)
        if proto == IPPROTO_UDP:
            if size < 8:
                self._skip("short UDP header")
                return None
            sport, dport, ulen = struct.unpack_from("!HHH", buf, start)
            stop = start + ulen if 8 <= ulen <= size else end
            return Segment(frame, ts, "udp", src, sport, dst, dport, buf[start + 8:stop])
        self._skip("other IP protocol")
        return None
