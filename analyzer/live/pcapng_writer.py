"""Write pcapng with per-packet process comments and the ``epb_processid_threadid`` option.

dpkt's pcapng Writer has one interface and microsecond timestamps, and cannot write Interface
Statistics Blocks; we need one interface per link type (``tcpdump -i any`` and dumpcap
files may mix them), nanosecond time and the kernel drop count in an ISB, so the few block
layouts (draft-ietf-opsawg-pcapng sections 4.1-4.3, 4.6) are packed here with ``struct``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import BinaryIO

BT_SHB, BT_IDB, BT_ISB, BT_EPB = 0x0A0D0D0A, 1, 5, 6
OPT_COMMENT = 1
SHB_USERAPPL = 4
IF_NAME, IF_TSRESOL = 2, 9
EPB_PROCESSID_THREADID = 8
ISB_IFRECV, ISB_IFDROP = 4, 5
_NS = 1_000_000_000

Option = tuple[int, bytes]


def _options(options: Sequence[Option]) -> bytes:
    if not options:
        return b""
    out = bytearray()
    for code, value in options:
        if len(value) > 0xFFFF:
            value = value[:0xFFFF]
        out += struct.pack("<HH", code, len(value)) + value + b"\0" * (-len(value) % 4)
    out += b"\0\0\0\0"
    return bytes(out)


def _block(btype: int, body: bytes) -> bytes:
    length = 12 + len(body)
    return struct.pack("<II", btype, length) + body + struct.pack("<I", length)


class PcapngWriter:
    """A little-endian pcapng section; interfaces are added on first use of a link type."""

    def __init__(self, fh: BinaryIO, application: str = "proxytrace") -> None:
        self._fh = fh
        self._ifaces: dict[int, int] = {}  # linktype -> interface id
        body = struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + _options(
            [(SHB_USERAPPL, application.encode())])
        fh.write(_block(BT_SHB, body))
        self.packets = 0

    def interface(self, linktype: int, name: str | None = None, snaplen: int = 262144) -> int:
        if linktype not in self._ifaces:
            opts: list[Option] = [(IF_TSRESOL, b"\x09")]  # nanoseconds
            if name:
                opts.insert(0, (IF_NAME, name.encode()))
            body = struct.pack("<HHI", linktype, 0, snaplen) + _options(opts)
            self._fh.write(_block(BT_IDB, body))
            self._ifaces[linktype] = len(self._ifaces)
        return self._ifaces[linktype]

    def packet(self, linktype: int, ts: float, data: bytes, wire_len: int | None = None,
               comments: Sequence[str] = (), pid: int | None = None, tid: int | None = None) -> None:
        iface = self.interface(linktype)
        ns = int(round(ts * _NS))
        opts: list[Option] = [(OPT_COMMENT, c.encode("utf-8")) for c in comments]
        if pid is not None:
            opts.append((EPB_PROCESSID_THREADID,
                         struct.pack("<II", pid & 0xFFFFFFFF, (tid or pid) & 0xFFFFFFFF)))
        body = struct.pack("<IIIII", iface, ns >> 32, ns & 0xFFFFFFFF, len(data),
                           wire_len if wire_len is not None else len(data))
        body += data + b"\0" * (-len(data) % 4) + _options(opts)
        self._fh.write(_block(BT_EPB, body))
        self.packets += 1

    def statistics(self, ts: float, received: int | None, dropped: int | None) -> None:
        """An Interface Statistics Block for every interface (the capture tool counts them all)."""
        ns = int(round(ts * _NS))
        for iface in self._ifaces.values():
            opts: list[Option] = []
            if received is not None:
                opts.append((ISB_IFRECV, struct.pack("<Q", received)))
            if dropped is not None:
                opts.append((ISB_IFDROP, struct.pack("<Q", dropped)))
            body = struct.pack("<III", iface, ns >> 32, ns & 0xFFFFFFFF) + _options(opts)
            self._fh.write(_block(BT_ISB, body))
