"""Streaming readers for pcap and pcapng files (the source edge of the pipeline).

File headers, pcapng blocks and the per-packet record loops are read with ``struct`` here, not
with dpkt: dpkt's option parser raises assorted exceptions on damaged bytes, and its readers
stop at the first interface of a pcapng file, drop packet comments and the process-id option,
and silently return a short last packet of a truncated pcap. All of it matters to us:
``tcpdump -i any``/dumpcap files have several interfaces, process attribution travels in
comments, and a damaged capture must yield every packet before the damage plus a warning.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

from ..base.errors import CaptureError

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"

# pcapng block and option codes (draft-ietf-opsawg-pcapng)
BT_SHB, BT_IDB, BT_PB, BT_SPB, BT_ISB, BT_EPB = 0x0A0D0D0A, 1, 2, 3, 5, 6
OPT_ENDOFOPT, OPT_COMMENT = 0, 1
EPB_PROCESSID_THREADID = 8
# macOS `tcpdump -k`: Process Information Blocks, pointed at by an EPB option (index in section)
APPLE_PIB_BLOCK = 0x80000001
APPLE_EPB_PIB_INDEX, APPLE_EPB_E_PIB_INDEX = 0x8001, 0x8003
IF_TSRESOL, IF_TSOFFSET = 9, 14
ISB_IFDROP = 5
MAX_BLOCK = 64 * 1024 * 1024  # larger than any sane block: a corrupt length, not a packet
MAX_SNAP = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class RawFrame:
    """One captured packet as the file holds it."""

    number: int            # 1-based, as Wireshark numbers frames
    ts: float
    linktype: int
    data: bytes
    wire_len: int
    comments: tuple[str, ...] = ()
    pid: int | None = None  # epb_processid_threadid
    process_block: tuple[int, str | None, str | None] | None = None  # Apple PIB: pid, name, path


@dataclass
class ReadState:
    """What the reader learned besides packets (filled while iterating)."""

    name: str
    format: str = ""
    linktypes: set[int] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)
    bytes_read: int = 0
    kernel_drops: int | None = None
    damaged: bool = False   # reading stopped early at a truncated or corrupt record

    def damage(self, message: str) -> None:
        self.warnings.append(message)
        self.damaged = True


def open_capture(fh: BinaryIO, state: ReadState) -> Iterator[RawFrame]:
    """Detect the format from the magic number and stream frames; damage ends the stream with a warning."""
    magic = fh.read(4)
    if len(magic) == 0:
        raise CaptureError(f"{state.name}: empty file, not a capture")
    if len(magic) < 4:
        raise CaptureError(f"{state.name}: too short to be a capture ({len(magic)} bytes)")
    if magic in PCAP_MAGICS:
        state.format = "pcap"
        return _read_pcap(fh, magic, state)
    if magic == PCAPNG_MAGIC:
        state.format = "pcapng"
        return _read_pcapng(fh, magic, state)
    raise CaptureError(f"{state.name}: not a pcap or pcapng file (magic {magic.hex()})")


def _read_pcap(fh: BinaryIO, magic: bytes, state: ReadState) -> Iterator[RawFrame]:
    endian, unit = PCAP_MAGICS[magic]
    rest = fh.read(20)
    if len(rest) < 20:
        raise CaptureError(f"{state.name}: pcap file header truncated")
    (raw_link,) = struct.unpack_from(endian + "I", rest, 16)  # the header's last field
    linktype = raw_link & 0x0FFFFFFF  # upper bits may carry FCS info
    state.linktypes.add(linktype)
    state.bytes_read = 24
    rec = struct.Struct(endian + "IIII")
    number = 0
    while True:
        head = fh.read(16)
        if not head:
            return
        if len(head) < 16:
            state.damage(f"{state.name}: truncated packet header after frame {number}; "
                                  "stopped there")
            return
        sec, frac, caplen, wire_len = rec.unpack(head)
        if caplen > MAX_SNAP:
            state.damage(f"{state.name}: frame {number + 1} claims {caplen} bytes "
                                  "(corrupt length); stopped there")
            return
        data = fh.read(caplen)
        if len(data) < caplen:
            state.damage(f"{state.name}: frame {number + 1} truncated "
                                  f"({len(data)} of {caplen} bytes); stopped there")
            return
        number += 1
        state.bytes_read += 16 + caplen
        yield RawFrame(number, sec + frac * unit, linktype, data, wire_len)


@dataclass
class _Interface:
    """A pcapng interface: its link type and time resolution."""

    linktype: int
    unit: float = 1e-6
    offset: int = 0


def _read_pcapng(fh: BinaryIO, magic: bytes, state: ReadState) -> Iterator[RawFrame]:
    endian = "<"
    interfaces: list[_Interface] = []
    pibs: list[tuple[int, str | None, str | None]] = []
    number = 0
    first = True
    pending_magic: bytes | None = magic
    while True:
        if pending_magic is not None:
            head = pending_magic + fh.read(4)
            pending_magic = None
        else:
            head = fh.read(8)
        if not head:
            return
        if len(head) < 8:
            state.damage(f"{state.name}: truncated block header after frame {number}; "
                                  "stopped there")
            return
        if head[:4] == PCAPNG_MAGIC:
            # A new section: its byte-order magic decides endianness for what follows.
            bom = fh.read(4)
            if len(bom) < 4:
                state.damage(f"{state.name}: truncated section header; stopped there")
                return
            endian = "<" if bom == b"\x4d\x3c\x2b\x1a" else ">" if bom == b"\x1a\x2b\x3c\x4d" else ""
            if not endian:
                raise CaptureError(f"{state.name}: pcapng section header has a bad byte-order magic")
            (blen,) = struct.unpack(endian + "I", head[4:8])
            if blen < 28 or blen > MAX_BLOCK or blen % 4:
                raise CaptureError(f"{state.name}: pcapng section header has an absurd length {blen}")
            body = fh.read(blen - 12)
            if len(body) < blen - 12:
                state.damage(f"{state.name}: truncated section header; stopped there")
                return
            interfaces = []  # interface ids (and Apple process blocks) restart in each section
            pibs = []
            state.bytes_read += blen
            first = False
            continue
        if first:
            raise CaptureError(f"{state.name}: pcapng file does not start with a section header")
        btype, blen = struct.unpack(endian + "II", head)
        if blen < 12 or blen > MAX_BLOCK or blen % 4:
            state.damage(f"{state.name}: block after frame {number} has a corrupt length "
                                  f"{blen}; stopped there")
            return
        body = fh.read(blen - 8)
        if len(body) < blen - 8:
            state.damage(f"{state.name}: block after frame {number} truncated "
                                  f"({len(body) + 8} of {blen} bytes); stopped there")
            return
        state.bytes_read += blen
        body = body[:-4]  # trailing copy of the block length
        if btype == BT_EPB:
            frame = _epb(body, endian, interfaces, number + 1, state, pibs)
            if frame is not None:
                number += 1
                yield frame
        elif btype == BT_IDB:
            if len(body) < 8:
                state.damage(f"{state.name}: interface block after frame {number} is "
                             f"{len(body) + 12} bytes, too short; stopped there")
                return
            interfaces.append(_idb(body, endian))
            state.linktypes.add(interfaces[-1].linktype)
        elif btype == BT_SPB:
            if interfaces:
                (wire_len,) = struct.unpack(endian + "I", body[:4])
                number += 1
                data = body[4:4 + min(wire_len, len(body) - 4)]
                yield RawFrame(number, 0.0, interfaces[0].linktype, data, wire_len)
        elif btype == BT_PB:
            frame = _obsolete_pb(body, endian, interfaces, number + 1)
            if frame is not None:
                number += 1
                yield frame
        elif btype == APPLE_PIB_BLOCK:
            pibs.append(_apple_pib(body, endian))
        elif btype == BT_ISB:
            drops = _isb_drops(body, endian)
            if drops is not None:
                state.kernel_drops = (state.kernel_drops or 0) + drops
        # Other blocks (name resolution, custom, decryption secrets) carry nothing we need here.


def _idb(body: bytes, endian: str) -> _Interface:
    """An Interface Description Block's body (link type, reserved, snaplen, options), at least
    8 bytes. Read with ``_options`` rather than dpkt: dpkt decodes every text option as UTF-8
    and raises UnicodeDecodeError (or struct.error) on a damaged one."""
    (linktype,) = struct.unpack_from(endian + "H", body, 0)
    iface = _Interface(linktype=linktype)
    for code, value in _options(body[8:], endian):
        if code == IF_TSRESOL and value:
            raw = value[0]
            base = 2 if raw & 0x80 else 10
            iface.unit = float(base) ** -(raw & 0x7F)
        elif code == IF_TSOFFSET and len(value) >= 8:
            iface.offset = struct.unpack(endian + "q", value[:8])[0]
    return iface


def _options(buf: bytes, endian: str) -> Iterator[tuple[int, bytes]]:
    pos = 0
    fmt = endian + "HH"
    while pos + 4 <= len(buf):
        code, length = struct.unpack_from(fmt, buf, pos)
        if code == OPT_ENDOFOPT:
            return
        value = buf[pos + 4:pos + 4 + length]
        yield code, value
        pos += 4 + length + (-length % 4)


def _epb(body: bytes, endian: str, interfaces: list[_Interface], number: int,
         state: ReadState,
         pibs: list[tuple[int, str | None, str | None]] | None = None) -> RawFrame | None:
    if len(body) < 20:
        state.warnings.append(f"{state.name}: frame {number} has a short packet block; skipped")
        return None
    iface_id, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "IIIII", body, 0)
    if iface_id >= len(interfaces):
        state.damage(f"{state.name}: frame {number} names unknown interface {iface_id}; "
                              "skipped")
        return None
    iface = interfaces[iface_id]
    data = body[20:20 + caplen]
    comments: list[str] = []
    pid = None
    pib_index: int | None = None
    effective_index: int | None = None
    opt_start = 20 + caplen + (-caplen % 4)
    if opt_start < len(body):
        for code, value in _options(body[opt_start:], endian):
            if code == OPT_COMMENT:
                comments.append(value.decode("utf-8", "replace"))
            elif code == EPB_PROCESSID_THREADID and len(value) >= 4:
                pid = struct.unpack(endian + "I", value[:4])[0]
            elif code in (APPLE_EPB_PIB_INDEX, APPLE_EPB_E_PIB_INDEX) and len(value) >= 4:
                index = struct.unpack(endian + "I", value[:4])[0]
                if code == APPLE_EPB_PIB_INDEX:
                    pib_index = index
                else:
                    effective_index = index
    block = None
    index = pib_index if pib_index is not None else effective_index
    if pibs and index is not None and 0 <= index < len(pibs):
        block = pibs[index]
    ts = ((ts_hi << 32) | ts_lo) * iface.unit + iface.offset
    return RawFrame(number, ts, iface.linktype, data, wire_len, tuple(comments), pid, block)


def _apple_pib(body: bytes, endian: str) -> tuple[int, str | None, str | None]:
    """Apple's Process Information Block: a 32-bit pid, then options (2 = name, 3 = path)."""
    if len(body) < 4:
        return (0, None, None)
    (pid,) = struct.unpack(endian + "I", body[:4])
    name = path = None
    for code, value in _options(body[4:], endian):
        text = value.split(b"\0", 1)[0].decode("utf-8", "replace")
        if code == 2:
            name = text
        elif code == 3:
            path = text
    return (pid, name, path)


def _obsolete_pb(body: bytes, endian: str, interfaces: list[_Interface],
                 number: int) -> RawFrame | None:
    if len(body) < 20:
        return None
    iface_id, _drops, ts_hi, ts_lo, caplen, wire_len = struct.unpack_from(endian + "HHIIII", body, 0)
    if iface_id >= len(interfaces):
        return None
    iface = interfaces[iface_id]
    return RawFrame(number, ((ts_hi << 32) | ts_lo) * iface.unit + iface.offset, iface.linktype,
                    body[20:20 + caplen], wire_len)


def _isb_drops(body: bytes, endian: str) -> int | None:
    if len(body) < 12:
        return None
    for code, value in _options(body[12:], endian):
        if code == ISB_IFDROP and len(value) >= 8:
            return int(struct.unpack(endian + "Q", value[:8])[0])
    return None
