"""DNS messages (RFC 1035, EDNS0 RFC 6891, SVCB/HTTPS RFC 9460): bytes in, frozen records out.

Written over ``struct`` rather than with dpkt.dns, whose pieces fail on bytes we must handle:
- names: dpkt follows compression pointers with no depth cap (a message of back-pointing chains
  costs quadratic time) and decodes labels as strict UTF-8 (raises on binary labels);
- record data: dpkt raises on any type it does not know (HTTPS, SVCB, NSEC, RRSIG...), which
  would drop the whole message, and silently accepts rdata cut short by the end of the message;
- SVCB/HTTPS rdata: dpkt has no decoder for it at all;
- the header and section walk: dpkt builds an object per question and record, which at the DNS
  rates of a busy capture was most of the analyzer's time (see parse_dns).
tests/protocols/test_dns_reference.py keeps the dpkt-based parser this replaced and checks that
both give the same messages.
Only ParseError leaves this module.
"""

from __future__ import annotations

import ipaddress
import struct
from _socket import AF_INET6, inet_ntoa, inet_ntop  # not socket.py: see packets/decode.py
from dataclasses import dataclass

from ..base.errors import ParseError

# Encoders point a name at an earlier one, which may itself end in a pointer, so short chains
# are legal (dns_max-compression-depth.pcap has one of six). 16 leaves room for odd but valid
# encoders while bounding hostile chains (Zeek has a limit for the same reason).
MAX_POINTER_CHAIN = 16
_MAX_NAME_WIRE = 255

QTYPE_NAMES: dict[int, str] = {
    1: "A", 2: "NS", 5: "CNAME", 6: "SOA", 12: "PTR", 13: "HINFO", 15: "MX", 16: "TXT",
    28: "AAAA", 33: "SRV", 35: "NAPTR", 41: "OPT", 43: "DS", 46: "RRSIG", 47: "NSEC",
    48: "DNSKEY", 50: "NSEC3", 64: "SVCB", 65: "HTTPS", 252: "AXFR", 255: "ANY", 257: "CAA",
}
RCODE_NAMES: dict[int, str] = {
    0: "NOERROR", 1: "FORMERR", 2: "SERVFAIL", 3: "NXDOMAIN", 4: "NOTIMP", 5: "REFUSED",
    6: "YXDOMAIN", 7: "YXRRSET", 8: "NXRRSET", 9: "NOTAUTH", 10: "NOTZONE", 16: "BADVERS",
}
_SVC_KEYS = {0: "mandatory", 1: "alpn", 2: "no-default-alpn", 3: "port", 4: "ipv4hint",
             5: "ech", 6: "ipv6hint", 7: "dohpath"}
_NAME_TYPES = {"CNAME", "PTR", "NS"}


def type_name(code: int) -> str:
    return QTYPE_NAMES.get(code, f"TYPE{code}")


def rcode_name(code: int) -> str:
    return RCODE_NAMES.get(code, f"RCODE{code}")


@dataclass(frozen=True, slots=True)
class DnsQuestion:
    """One question of a DNS message."""

    name: str        # lower-case, no trailing dot
    qtype: str


@dataclass(frozen=True, slots=True)
class SvcbData:
    """The decoded parameters of an SVCB or HTTPS record (RFC 9460)."""

    priority: int
    target: str                      # "." for the owner name itself
    alpn: tuple[str, ...] = ()
    port: int | None = None
    ipv4hint: tuple[str, ...] = ()
    ipv6hint: tuple[str, ...] = ()
    ech: bool = False                # an Encrypted ClientHello config is published
    keys: tuple[str, ...] = ()       # every SvcParamKey present, in wire order


@dataclass(frozen=True, slots=True)
class DnsRecord:
    """One resource record of a DNS message, its data as text."""

    name: str
    rtype: str
    ttl: int
    value: str
    addresses: tuple[str, ...] = ()
    svcb: SvcbData | None = None


@dataclass(frozen=True, slots=True)
class DnsMessage:
    """A parsed DNS message: header flags, sections, EDNS."""

    txid: int
    is_response: bool
    opcode: int
    rcode: str
    questions: tuple[DnsQuestion, ...]
    answers: tuple[DnsRecord, ...]
    has_edns: bool
    authority: tuple[DnsRecord, ...] = ()
    additional: tuple[DnsRecord, ...] = ()     # without the OPT pseudo-record
    truncated: bool = False
    recursion_desired: bool = False
    authenticated_data: bool = False
    edns_payload_size: int | None = None       # OPT's UDP payload size (Go sends 1232)
    edns_do: bool = False

    def addresses(self) -> tuple[str, ...]:
        """Every address the answer section gives (A, AAAA, SVCB/HTTPS hints), in order, once."""
        seen: dict[str, None] = {}
        for record in self.answers:
            for address in record.addresses:
                seen.setdefault(address, None)
        return tuple(seen)

    def cname_chain(self, qname: str) -> tuple[str, ...]:
        """The names reached from ``qname`` by following CNAME answers (``qname`` itself excluded)."""
        targets = {r.name: r.value for r in self.answers if r.rtype == "CNAME"}
        chain: list[str] = []
        start = current = qname.lower().rstrip(".")
        while current in targets and targets[current] not in chain and targets[current] != start:
            current = targets[current]
            chain.append(current)
        return tuple(chain)


# ---------------------------------------------------------------- names

# Bytes a label may hold and still be its own presentation form (printable ASCII but '.' and
# '\\'): the common case, checked with one translate() instead of decode + isprintable.
_PLAIN_LABEL_BYTES = bytes(b for b in range(0x20, 0x7F) if b not in (0x2E, 0x5C))
_PLAIN_NAME_BYTES = _PLAIN_LABEL_BYTES + b"."  # labels joined with dots


def _label_text(label: bytes) -> str:
    """Presentation form of one label: printable ASCII as is, '.' and '\\' escaped, others \\DDD."""
    if not label.translate(None, _PLAIN_LABEL_BYTES):
        return label.decode("ascii")
    try:
        text = label.decode("utf-8")
        if text.isprintable():
            return text.replace("\\", "\\\\").replace(".", "\\.")
    except UnicodeDecodeError:
        pass
    out = []
    for byte in label:
        if byte in (0x2E, 0x5C):
            out.append("\\" + chr(byte))
        elif 0x21 <= byte <= 0x7E:
            out.append(chr(byte))
        else:
            out.append(f"\\{byte:03d}")
    return "".join(out)


def read_name(buf: bytes, off: int, *, allow_pointers: bool = True) -> tuple[str, int]:
    """Read a (possibly compressed) name at ``off``; return it and the offset just past it.

    Pointers must point strictly before the label sequence that holds them (as dpkt requires),
    so loops are impossible, and a chain deeper than MAX_POINTER_CHAIN is refused.
    """
    labels: list[bytes] = []
    wire_len = 0
    jumps = 0
    end: int | None = None
    segment_start = off
    while True:
        if off >= len(buf):
            raise ParseError("DNS name runs past the end of the message")
        length = buf[off]
        kind = length & 0xC0
        if length == 0:
            off += 1
            break
        if kind == 0xC0:
            if not allow_pointers:
                raise ParseError("compressed name where compression is not allowed")
            if off + 1 >= len(buf):
                raise ParseError("DNS compression pointer cut short")
            target = ((length & 0x3F) << 8) | buf[off + 1]
            if target >= segment_start:
                raise ParseError("DNS compression pointer does not point backwards")
            jumps += 1
            if jumps > MAX_POINTER_CHAIN:
                raise ParseError(f"DNS compression chain deeper than {MAX_POINTER_CHAIN}")
            if end is None:
                end = off + 2
            off = segment_start = target
            continue
        if kind != 0:
            raise ParseError(f"DNS label type 0x{kind:02x} is not supported")
        label = buf[off + 1:off + 1 + length]
        if len(label) != length:
            raise ParseError("DNS label runs past the end of the message")
        wire_len += length + 1
        if wire_len > _MAX_NAME_WIRE:
            raise ParseError("DNS name longer than 255 bytes")
        labels.append(label)
        off += 1 + length
    raw = b".".join(labels)
    if not raw.translate(None, _PLAIN_NAME_BYTES) and raw.count(b".") == len(labels) - 1:
        # every label is plain (the common case): one decode for the whole name
        name = raw.decode("ascii")
    else:
        name = ".".join([_label_text(label) for label in labels])
    return name.lower(), (end if end is not None else off)


# ---------------------------------------------------------------- record data

def _svcb(rdata: bytes) -> SvcbData:
    if len(rdata) < 3:
        raise ParseError("SVCB/HTTPS record shorter than its fixed part")
    priority = struct.unpack_from(">H", rdata)[0]
    # RFC 9460 section 2.2: TargetName is uncompressed, so it is read from rdata alone.
    target, off = read_name(rdata, 2, allow_pointers=False)
    alpn: tuple[str, ...] = ()
    port = None
    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()
    ech = False
    keys: list[str] = []
    while off < len(rdata):
        if off + 4 > len(rdata):
            raise ParseError("SvcParam header cut short")
        key, length = struct.unpack_from(">HH", rdata, off)
        value = rdata[off + 4:off + 4 + length]
        if len(value) != length:
            raise ParseError("SvcParam value runs past the record")
        off += 4 + length
        keys.append(_SVC_KEYS.get(key, f"key{key}"))
        if key == 1:
            alpn = tuple(_character_strings(value))
        elif key == 3:
            if length != 2:
                raise ParseError("SvcParam port is not two bytes")
            port = struct.unpack(">H", value)[0]
        elif key == 4:
            v4 = _addresses(value, 4)
        elif key == 5:
            ech = True
        elif key == 6:
            v6 = _addresses(value, 16)
    return SvcbData(priority, target or ".", alpn, port, v4, v6, ech, tuple(keys))


def _svcb_text(data: SvcbData) -> str:
    parts = [str(data.priority), data.target]
    for key in data.keys:
        if key == "alpn":
            parts.append("alpn=" + ",".join(data.alpn))
        elif key == "port":
            parts.append(f"port={data.port}")
        elif key == "ipv4hint":
            parts.append("ipv4hint=" + ",".join(data.ipv4hint))
        elif key == "ipv6hint":
            parts.append("ipv6hint=" + ",".join(data.ipv6hint))
        else:
            parts.append(key)
    return " ".join(parts)


def _address_text(packed: bytes) -> str:
    """ipaddress's text for a 4- or 16-byte address, through inet_ntoa/inet_ntop at a fraction
    of the cost; for IPv6 (RFC 5952) the two differ only for embedded IPv4 (``::ffff:1.2.3.4``),
    left to ipaddress."""
    if len(packed) == 4:
        return inet_ntoa(packed)
    text = inet_ntop(AF_INET6, packed)
    return str(ipaddress.ip_address(packed)) if "." in text else text


def _addresses(value: bytes, size: int) -> tuple[str, ...]:
    if not value or len(value) % size:
        raise ParseError(f"address list of {len(value)} bytes is not a multiple of {size}")
    return tuple(_address_text(value[i:i + size]) for i in range(0, len(value), size))


def _character_strings(value: bytes) -> list[str]:
    out = []
    off = 0
    while off < len(value):
        length = value[off]
        item = value[off + 1:off + 1 + length]
        if len(item) != length:
            raise ParseError("character-string runs past the record")
        out.append(item.decode("latin-1"))
        off += 1 + length
    return out


def _record(buf: bytes, name: str, rtype: int, ttl: int, start: int, rdata: bytes) -> DnsRecord:
    """Decode rdata of a record whose rdata begins at ``start`` in ``buf``."""
    kind = type_name(rtype)
    if kind in ("A", "AAAA"):
        size = 4 if kind == "A" else 16
        if len(rdata) != size:
            raise ParseError(f"{kind} record with {len(rdata)} bytes of data")
        address = _address_text(rdata)
        return DnsRecord(name, kind, ttl, address, (address,))
    if kind in _NAME_TYPES:
        target, _ = read_name(buf, start)
        return DnsRecord(name, kind, ttl, target)
    if kind in ("SVCB", "HTTPS"):
        data = _svcb(rdata)
        return DnsRecord(name, kind, ttl, _svcb_text(data), data.ipv4hint + data.ipv6hint, data)
    if kind == "MX" and len(rdata) >= 3:
        target, _ = read_name(buf, start + 2)
        return DnsRecord(name, kind, ttl, f"{struct.unpack_from('>H', rdata)[0]} {target}")
    if kind == "SRV" and len(rdata) >= 7:
        prio, weight, port = struct.unpack_from(">HHH", rdata)
        target, _ = read_name(buf, start + 6)
        return DnsRecord(name, kind, ttl, f"{prio} {weight} {port} {target}")
    if kind == "SOA":
        mname, off = read_name(buf, start)
        rname, off = read_name(buf, off)
        if off + 20 > start + len(rdata):
            raise ParseError("SOA record cut short")
        serial = struct.unpack_from(">I", buf, off)[0]
        return DnsRecord(name, kind, ttl, f"{mname} {rname} {serial}")
    if kind == "TXT":
        text = " ".join(f'"{s}"' for s in _character_strings(rdata))
        return DnsRecord(name, kind, ttl, text[:200])
    return DnsRecord(name, kind, ttl, f"\\# {len(rdata)} {rdata[:32].hex()}")


# ---------------------------------------------------------------- header and section walk

_HEADER = struct.Struct(">HHHHHH")
_QUESTION_TAIL = struct.Struct(">HH")
_RR_TAIL = struct.Struct(">HHIH")
_TYPE_OPT = 41
_FLAG_QR, _FLAG_TC, _FLAG_RD, _FLAG_AD = 0x8000, 0x0200, 0x0100, 0x0020


def _section(buf: bytes, off: int, count: int, opt: list[tuple[int, int]]
             ) -> tuple[tuple[DnsRecord, ...], int]:
    """``count`` resource records from ``off``; OPT pseudo-records go to ``opt`` as (class, ttl)."""
    records: list[DnsRecord] = []
    for _ in range(count):
        name, off = read_name(buf, off)
        if off + 10 > len(buf):
            raise ParseError("DNS record header cut short")
        rtype, rclass, ttl, rdlen = _RR_TAIL.unpack_from(buf, off)
        off += 10
        if off + rdlen > len(buf):
            raise ParseError("DNS record data runs past the end of the message")
        if rtype == _TYPE_OPT:
            opt.append((rclass, ttl))
        else:
            records.append(_record(buf, name, rtype, ttl, off, buf[off:off + rdlen]))
        off += rdlen
    return tuple(records), off


def parse_dns(data: bytes) -> DnsMessage:
    """Parse one DNS message (the UDP payload, or one message of a TCP stream).

    The header and the section walk are a dozen lines over ``struct`` rather than dpkt.dns: dpkt
    builds a Packet object per question and record (and its own names and rdata, which the
    module docstring explains we cannot use), and at the DNS rates of a busy capture that object
    building was most of the analyzer's time (docs/performance.md). The walk is dpkt's: the
    four counts in order, trailing bytes ignored.
    """
    data = bytes(data)
    if len(data) < 12:
        raise ParseError(f"DNS message of {len(data)} bytes is shorter than its header")
    txid, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    off = 12
    questions: list[DnsQuestion] = []
    for _ in range(qdcount):
        qname, off = read_name(data, off)
        if off + 4 > len(data):
            raise ParseError("DNS question cut short")
        qtype, _qclass = _QUESTION_TAIL.unpack_from(data, off)
        off += 4
        questions.append(DnsQuestion(qname, type_name(qtype)))
    misplaced: list[tuple[int, int]] = []  # OPT outside the additional section: dropped
    opt: list[tuple[int, int]] = []
    answers, off = _section(data, off, ancount, misplaced)
    authority, off = _section(data, off, nscount, misplaced)
    additional, off = _section(data, off, arcount, opt)
    rcode = flags & 0xF
    payload_size = None
    do_bit = False
    if opt:
        # the first OPT in the additional section (RFC 6891 allows one; dpkt took the first)
        opt_class, opt_ttl = opt[0]
        # RFC 6891 section 6.1.3: the OPT TTL carries the upper 8 bits of the response code.
        rcode |= ((opt_ttl >> 24) & 0xFF) << 4
        payload_size = opt_class
        do_bit = bool(opt_ttl & 0x8000)
    return DnsMessage(
        txid=txid,
        is_response=bool(flags & _FLAG_QR),
        opcode=(flags >> 11) & 0xF,
        rcode=rcode_name(rcode),
        questions=tuple(questions),
        answers=answers,
        has_edns=bool(opt),
        authority=authority,
        additional=additional,
        truncated=bool(flags & _FLAG_TC),
        recursion_desired=bool(flags & _FLAG_RD),
        authenticated_data=bool(flags & _FLAG_AD),
        edns_payload_size=payload_size,
        edns_do=do_bit,
    )


def split_tcp_dns(stream: bytes) -> tuple[list[bytes], int]:
    """Split a DNS-over-TCP byte stream into its 2-byte length-prefixed messages (RFC 1035 4.2.2).

    Returns the complete messages and how many bytes they used; a message whose bytes have not all
    arrived yet is left for the next call.
    """
    messages: list[bytes] = []
    off = 0
    while off + 2 <= len(stream):
        length = (stream[off] << 8) | stream[off + 1]
        if off + 2 + length > len(stream):
            break
        messages.append(bytes(stream[off + 2:off + 2 + length]))
        off += 2 + length
    return messages, off
