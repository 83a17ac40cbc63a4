"""The dpkt-based DNS parser that analyzer.protocols.dns replaced, kept as the reference.

dpkt.dns walked the header and sections; the names and rdata were already ours. The production
parser walks the sections itself (for speed); test_dns_reference.py checks both agree.
"""

from __future__ import annotations

import struct
from typing import Any

import dpkt

from analyzer.base.errors import ParseError
from analyzer.protocols.dns import (
    DnsMessage,
    DnsQuestion,
    DnsRecord,
    _record,
    rcode_name,
    read_name,
    type_name,
)


class _Wire(dpkt.dns.DNS):
    """dpkt's DNS header and section walk with our bounded names and lazily kept rdata."""

    def unpack_q(self, buf: bytes, off: int) -> tuple[Any, int]:
        q = self.Q()
        q.name, off = read_name(buf, off)
        if off + 4 > len(buf):
            raise ParseError("DNS question cut short")
        q.type, q.cls = struct.unpack_from(">HH", buf, off)
        return q, off + 4

    def unpack_rr(self, buf: bytes, off: int) -> tuple[Any, int]:
        rr = self.RR()
        rr.name, off = read_name(buf, off)
        if off + 10 > len(buf):
            raise ParseError("DNS record header cut short")
        rr.type, rr.cls, rr.ttl, rdlen = struct.unpack_from(">HHIH", buf, off)
        off += 10
        if off + rdlen > len(buf):
            raise ParseError("DNS record data runs past the end of the message")
        rr.rdata = buf[off:off + rdlen]
        rr.rlen = rdlen
        rr.start = off
        return rr, off + rdlen


def _records(buf: bytes, rrs: list[Any]) -> tuple[DnsRecord, ...]:
    return tuple(_record(buf, rr.name, rr.type, rr.ttl, rr.start, rr.rdata)
                 for rr in rrs if rr.type != dpkt.dns.DNS_OPT)


def parse_dns_dpkt(data: bytes) -> DnsMessage:
    data = bytes(data)
    if len(data) < 12:
        raise ParseError(f"DNS message of {len(data)} bytes is shorter than its header")
    try:
        wire = _Wire(data)
    except ParseError:
        raise
    except (dpkt.UnpackError, struct.error, IndexError, ValueError) as exc:
        raise ParseError(f"malformed DNS message: {exc}") from None
    opt = next((rr for rr in wire.ar if rr.type == dpkt.dns.DNS_OPT), None)
    rcode = wire.rcode
    payload_size = None
    do_bit = False
    if opt is not None:
        rcode |= ((opt.ttl >> 24) & 0xFF) << 4
        payload_size = opt.cls
        do_bit = bool(opt.ttl & 0x8000)
    return DnsMessage(
        txid=wire.id,
        is_response=bool(wire.qr),
        opcode=wire.opcode,
        rcode=rcode_name(rcode),
        questions=tuple(DnsQuestion(q.name, type_name(q.type)) for q in wire.qd),
        answers=_records(data, wire.an),
        has_edns=opt is not None,
        authority=_records(data, wire.ns),
        additional=_records(data, wire.ar),
        truncated=bool(wire.tc),
        recursion_desired=bool(wire.rd),
        authenticated_data=bool(wire.op & dpkt.dns.DNS_AD),
        edns_payload_size=payload_size,
        edns_do=do_bit,
    )
