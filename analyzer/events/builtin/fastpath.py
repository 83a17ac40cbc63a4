"""The streaming fast path: skip packets that cannot matter from a few raw header bytes.

Almost every packet of a big capture is bulk payload of a connection the engine has finished
with (``done``: its ClientHello and server flight are parsed), or UDP that is not DNS. For such
a packet the slow path would build a ``RawFrame`` and a ``Segment`` only to throw them away (a
done flow only records the packet's time). Here the record loop reads the pcap record header with
``struct.unpack_from`` over a large buffer, looks at the link type's fixed offsets (IP version,
fragment bits, protocol, TCP flags) and, for TCP, looks the address+port bytes up in the
engine's ``skip_index`` -- before any object is built. Everything else takes the slow path
unchanged, and so does every SYN, FIN and RST, every IP fragment, every IPv4 header with options,
every VLAN-tagged frame, and every packet that would start the engine's idle-flow scan: port
reuse, closing and expiry stay exactly what the slow path does (tests/perf checks the results
are equal on every capture we have).

pcap files are read here with their own loop (the common format of big captures: tcpdump -w);
pcapng files go through the regular block reader and get the same per-packet decision.

The pcap record loop runs in C when the extension ``analyzer.events.builtin._fastloop`` is importable
(built by ``pip install``): it skips records by exactly the rules of ``skippable()`` and hands
every other record back to the Python loop below. With it, the engine's two indexes are its
``FlowIndex`` hash tables (see new_index), which it probes straight from the header bytes. ``skippable()`` and the Python loop stay the
reference and the fallback when the extension is missing or ``PROXYTRACE_PURE_PYTHON=1`` is set
(tests/perf runs the exactness tests both ways); there is no other difference in behaviour.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import stat
import struct
from collections.abc import Callable
from typing import Any, BinaryIO

from ...base.errors import CaptureError
from ...packets.decode import (
    DLT_EN10MB,
    DLT_IPV4,
    DLT_IPV6,
    DLT_LINUX_SLL,
    DLT_LINUX_SLL2,
    DLT_RAW,
    IPPROTO_TCP,
    IPPROTO_UDP,
    IPV6_EXT_HEADERS,
    IPV6_FRAGMENT,
    VLAN_TPIDS,
)
from ...source.capture_file import MAX_SNAP, PCAP_MAGICS, RawFrame, ReadState, open_capture
from .engine import DNS_PORTS, Engine

CHUNK = 4 << 20    # bytes per read() from a pipe
WINDOW = 8 << 20   # bytes per mmap window of a regular file: its pages count in RSS while mapped

# link type -> (offset of the 16-bit ethertype or -1 when there is none, offset of the IP header)
LAYOUTS: dict[int, tuple[int, int]] = {
    DLT_EN10MB: (12, 14),
    DLT_LINUX_SLL: (14, 16),
    DLT_LINUX_SLL2: (0, 20),
    DLT_RAW: (-1, 0),
    DLT_IPV4: (-1, 0),
    DLT_IPV6: (-1, 0),
}
_DNS_PORT_BYTES = frozenset(p.to_bytes(2, "big") for p in DNS_PORTS)

_DNS_PORT_TUPLE = tuple(sorted(DNS_PORTS))
_SYN, _FIN_RST = 0x02, 0x05  # TCP flag bits
# IPv6 next headers the decoder reads on (TCP, UDP, extension headers, fragments)
_IPV6_KEEP = frozenset({IPPROTO_TCP, IPPROTO_UDP, IPV6_FRAGMENT, *IPV6_EXT_HEADERS})

ScanFn = Callable[..., tuple[int, int, bool]]


def _load_scan() -> tuple[ScanFn | None, Callable[[], Any] | None]:
    """The C record loop and its index type, or None: not built, or the pure-Python loop was
    asked for."""
    if os.environ.get("PROXYTRACE_PURE_PYTHON", "") not in ("", "0"):
        return None, None
    try:
        from ._fastloop import FlowIndex, scan
    except ImportError:
        return None, None
    return scan, FlowIndex


# Module attributes so tests can switch the C loop off (None) in-process.
SCAN, FLOW_INDEX = _load_scan()


def new_index() -> Any:
    """An empty skip or live index: the C loop's FlowIndex (a hash table it reads without
    building a key object per packet; to Python, a mapping of bytes keys) when the C loop is on,
    else a dict."""
    if SCAN is not None and FLOW_INDEX is not None:
        return FLOW_INDEX()
    return {}


SlowFn = Callable[[RawFrame], None]
PlainFn = Callable[[int, float, int, bytes, int], None]
TickFn = Callable[[int], None]


def skippable(buf: bytes | mmap.mmap, p: int, caplen: int, layout: tuple[int, int], ts: float,
              engine: Engine, index: dict[bytes, Any]) -> bool:
    """True when the slow path would do nothing with this packet but note its time on a done flow
    (that is done here), or nothing at all (non-DNS UDP)."""
    etype_off, l3 = layout
    if caplen < l3 + 28:
        return False
    d = p + l3
    vhl = buf[d]
    version = vhl >> 4
    if etype_off >= 0:
        # the ethertype, not the version nibble, decides how the decoder reads the header
        e = p + etype_off
        etype = (buf[e] << 8) | buf[e + 1]
        if etype == 0x0800:
            version = 4
        elif etype == 0x86DD:
            version = 6
        else:
            # VLAN tags are the decoder's; any other ethertype (ARP, LLDP...) it drops
            return etype not in VLAN_TPIDS
    elif version != 4 and version != 6:
        return True  # raw IP link type, not IP: the decoder drops it
    if version == 4:
        if vhl != 0x45:
            return False  # IPv4 options (or a bad header): the decoder handles it
        if buf[d + 6] & 0x3F or buf[d + 7]:
            return False  # a fragment: the decoder reassembles it
        proto = buf[d + 9]
        if proto == 6:
            if caplen < l3 + 40:
                return False  # the TCP header is cut short: the decoder says what is left
            total = (buf[d + 2] << 8) | buf[d + 3]
            flags = buf[d + 33]
            if total < 40 or buf[d + 32] < 0x50 or flags & _SYN or ts >= engine.next_sweep:
                return False
            return _tcp_skippable(engine, index, buf[d + 12:d + 24], ts, flags,
                                  total == 20 + (buf[d + 32] >> 4) * 4)
        if proto == 17:
            return (buf[d + 20:d + 22] not in _DNS_PORT_BYTES
                    and buf[d + 22:d + 24] not in _DNS_PORT_BYTES)
        return True  # ICMP and other protocols: the decoder drops them
    if buf[d + 6] not in _IPV6_KEEP:
        return True  # ICMPv6 and other protocols: the decoder drops them
    if buf[d + 6] == 6:
        if caplen < l3 + 60:
            return False  # the TCP header is cut short: the decoder says what is left
        plen = (buf[d + 4] << 8) | buf[d + 5]
        flags = buf[d + 53]
        if 0 < plen < 20 or buf[d + 52] < 0x50 or flags & _SYN or ts >= engine.next_sweep:
            return False
        return _tcp_skippable(engine, index, buf[d + 8:d + 44], ts, flags,
                              plen == (buf[d + 52] >> 4) * 4)
    return False


def _tcp_skippable(engine: Engine, index: dict[bytes, Any], key: bytes, ts: float, flags: int,
                   empty: bool) -> bool:
    """The decision for a TCP packet without SYN, by its addresses and ports: a done flow's
    packet only notes its time (a FIN or RST closes the flow: slow path); otherwise see
    _empty_segment, for a packet without payload."""
    flow = index.get(key)
    if flow is None:
        return empty and _empty_segment(engine, key, ts, flags)
    if flags & _FIN_RST:
        return False  # the engine closes the done flow
    flow.last_ts = ts
    return True


def _empty_segment(engine: Engine, key: bytes, ts: float, flags: int) -> bool:
    """A TCP packet with no payload and no SYN, of no done flow. Of no open flow either, the slow
    path would do nothing with it (a connection it never saw start, or one already closed); of
    an open flow, a bare ACK only notes its time, while a FIN or RST changes the flow's state."""
    live = engine.live_index
    if key in live:
        flow = live[key]
        if flow is None or flags & _FIN_RST:
            return False  # two open flows share the key (the engine decides), or FIN/RST
        flow.last_ts = ts
    return True


def run(fh: BinaryIO, state: ReadState, engine: Engine, slow: SlowFn,
        tick: TickFn | None = None, plain: PlainFn | None = None) -> int:
    """Read a whole capture into ``engine``; return the number of packets.

    ``plain(number, ts, linktype, data, wire_len)``, when given, takes the slow path's classic pcap records
    of the link types in LAYOUTS instead of ``slow``: such a record carries no comment or
    process, so it needs no RawFrame (``slow(RawFrame(...))`` must do the same with it)."""
    engine.skip_index = new_index()
    engine.live_index = new_index()
    magic = fh.read(4)
    if magic in PCAP_MAGICS:
        if plain is None:
            def plain(number: int, ts: float, linktype: int, data: bytes, wire_len: int) -> None:
                slow(RawFrame(number, ts, linktype, data, wire_len))
        return _run_pcap(fh, magic, state, engine, slow, tick, plain)
    # pcapng (or not a capture: the regular reader gives the right error)
    return _run_frames(_Prefixed(magic, fh), state, engine, slow, tick)


class _Prefixed:
    """A file whose first bytes were already read (to sniff the magic)."""

    def __init__(self, head: bytes, fh: BinaryIO) -> None:
        self._head, self._fh = head, fh

    def read(self, n: int = -1) -> bytes:
        if not self._head:
            return self._fh.read(n)
        head, self._head = self._head, b""
        if n < 0:
            return head + self._fh.read()
        if n <= len(head):
            self._head = head[n:]
            return head[:n]
        return head + self._fh.read(n - len(head))


def _run_frames(fh: _Prefixed, state: ReadState, engine: Engine, slow: SlowFn,
                tick: TickFn | None) -> int:
    index = engine.skip_index
    assert index is not None
    packets = 0
    for frame in open_capture(fh, state):  # type: ignore[arg-type]
        packets += 1
        layout = LAYOUTS.get(frame.linktype)
        if (layout is None or frame.comments or frame.pid is not None or frame.process_block is not None
                or not skippable(frame.data, 0, len(frame.data), layout, frame.ts, engine,
                                 index)):
            slow(frame)
        if tick is not None and not packets & 0xFFFF:
            tick(packets)
    return packets


_POPULATE: int = getattr(mmap, "MAP_POPULATE", 0)  # Linux only
# The next window overlaps the end of the one before by this much (at most half a window), so
# that the record that crosses a window's end (where the next refill starts) is wholly in it;
# a longer record, up to MAX_SNAP, gets a window of its own as before.
_AHEAD_OVERLAP = 256 << 10


def _load_mapped_window() -> Callable[[int, int, int], Any] | None:
    """The C loop's mmap window (see _fastloop.c: its pages are faulted in, and it is unmapped,
    on threads that never take the GIL), or None: then Python's mmap."""
    if SCAN is None:
        return None
    try:
        from ._fastloop import MappedWindow
    except ImportError:
        return None
    return MappedWindow  # type: ignore[no-any-return]


MAPPED_WINDOW = _load_mapped_window()


class _Window:
    """The file as a moving buffer: mmap windows for a regular file (no copy, and unmapping a
    finished window keeps RSS flat), large read() chunks for a pipe. ``refill(pos, need)``
    returns (buf, pos, size) with ``need`` bytes from ``pos`` available if the file has them.

    With the C loop, windows are its ``MappedWindow``s: the window after the current one is
    mapped at once and its pages are faulted in on a thread of the extension's own while the
    current one is scanned, and a finished window is unmapped on another (on a 2 GB capture,
    0.1 s of faulting in and 0.06 s of unmapping otherwise on the main thread). A refill that
    window covers uses it."""

    def __init__(self, fh: BinaryIO, offset: int) -> None:
        self.fh = fh
        self.base = offset            # file offset of buf[0]
        self.buf: bytes | mmap.mmap = b""
        self.map: Any = None  # a MappedWindow, or an mmap without the C loop
        self.size = -1
        # the window being faulted in ahead: (file offset, length, window)
        self._ahead: tuple[int, int, Any] | None = None
        try:
            fd = fh.fileno()
            st = os.fstat(fd)
            if stat.S_ISREG(st.st_mode) and fh.seekable():
                self.size = st.st_size
                self.fd = fd
        except (OSError, ValueError, AttributeError):
            self.size = -1

    def refill(self, pos: int, need: int) -> tuple[bytes | mmap.mmap, int, int]:
        if self.size < 0:
            buf = self.buf[pos:] + self.fh.read(max(CHUNK, need))
            self.base += pos
            self.buf = buf
            return buf, 0, len(buf)
        at = self.base + pos
        # The finished window is closed last: its unmapping (on a thread of its own with the C
        # loop) holds the kernel's lock on the address space, which mapping the next one needs.
        old, self.map = self.map, None
        try:
            ahead = self._take_ahead(at, need)
            if ahead is not None:
                start, length, self.map = ahead
            else:
                start = at - at % mmap.ALLOCATIONGRANULARITY
                length = min(max(WINDOW, at - start + need), self.size - start)
                if length <= at - start:
                    self.base, self.buf = at, b""
                    return b"", 0, 0
                self.map = self._map(start, length, populate=True)
            self.base = start
            self.buf = self.map
            self._map_ahead(start + length)
        finally:
            if old is not None:
                old.close()
        return self.map, at - start, length

    def _map(self, start: int, length: int, populate: bool) -> Any:
        """The window at ``start``; with ``populate``, its pages are in when this returns."""
        if MAPPED_WINDOW is not None:
            window = MAPPED_WINDOW(self.fd, start, length)
            if populate:
                window.wait()
            return window
        if _POPULATE and populate:
            # map the window's pages in one call instead of one page fault per 64 KiB
            return mmap.mmap(self.fd, length, flags=mmap.MAP_SHARED | _POPULATE,
                             prot=mmap.PROT_READ, offset=start)
        m = mmap.mmap(self.fd, length, offset=start, access=mmap.ACCESS_READ)
        with contextlib.suppress(AttributeError, OSError):
            m.madvise(mmap.MADV_SEQUENTIAL)
        return m

    def _map_ahead(self, end: int) -> None:
        """Map the window that starts shortly before ``end``; its pages come in meanwhile."""
        if MAPPED_WINDOW is None or end >= self.size:
            return
        start = max(end - min(_AHEAD_OVERLAP, WINDOW // 2), 0)
        start -= start % mmap.ALLOCATIONGRANULARITY
        length = min(WINDOW, self.size - start)
        self._ahead = (start, length, self._map(start, length, populate=False))

    def _take_ahead(self, at: int, need: int) -> tuple[int, int, Any] | None:
        """The window mapped ahead, its pages in, if it holds ``need`` bytes from ``at``."""
        if self._ahead is None:
            return None
        start, length, window = self._ahead
        self._ahead = None
        if start <= at and at + need <= start + length:
            window.wait()
            return start, length, window
        window.close()
        return None

    def close_current(self) -> None:
        if self.map is not None:
            self.map.close()
            self.map = None

    def close(self) -> None:
        self.close_current()
        if self._ahead is not None:
            self._ahead[2].close()
            self._ahead = None


def _wide_header(layout: tuple[int, int] | None) -> tuple[struct.Struct | None, bytes]:
    """One struct that reads a pcap record header and, for IPv4 without options carrying TCP,
    every byte the skip decision needs, in one call (the hot loop's biggest saving).

    Fields after the record header: tag (ethertype + version/IHL, or version/IHL on raw IP),
    IPv4 total length (big-endian bytes, compared as bytes), the fragment field (an integer in
    the file's byte order: see _frag_mask), protocol, addresses + ports (the skip-index key),
    TCP data offset and flags.
    """
    if layout is None:
        return None, b""
    etype_off, l3 = layout
    if etype_off >= 0 and etype_off + 2 == l3:
        tag_off, tag = etype_off, b"\x08\x00\x45"
    elif etype_off < 0:
        tag_off, tag = 0, b"\x45"
    else:
        return None, b""
    gap = l3 + 2 - (tag_off + len(tag))  # from the end of the tag to the IPv4 total length
    fmt = "<IIII" + (f"{tag_off}x" if tag_off else "") + f"{len(tag)}s" + (f"{gap}x" if gap else "")
    return struct.Struct(fmt + "2s2xHxB2x12s8xBB"), tag


_MIN_TOTAL = b"\x00\x28"  # IPv4 total length 40 (IP + TCP headers), big-endian


def _frag_mask(endian: str) -> int:
    """Mask of the More-Fragments bit and fragment offset in the fragment field as the wide
    struct reads it (in the pcap file's byte order, not the network's)."""
    return 0x3FFF if endian == ">" else 0xFF3F


def _run_pcap(fh: BinaryIO, magic: bytes, state: ReadState, engine: Engine, slow: SlowFn,
              tick: TickFn | None, plain: PlainFn) -> int:
    endian, unit = PCAP_MAGICS[magic]
    rest = fh.read(20)
    if len(rest) < 20:
        raise CaptureError(f"{state.name}: pcap file header truncated")
    state.format = "pcap"
    (raw_link,) = struct.unpack_from(endian + "I", rest, 16)
    linktype = raw_link & 0x0FFFFFFF  # upper bits may carry FCS info
    state.linktypes.add(linktype)
    layout = LAYOUTS.get(linktype)
    scan = SCAN if layout is not None else None
    wide_struct, tag = _wide_header(layout) if scan is None else (None, b"")
    if wide_struct is not None:
        wide = struct.Struct(endian + wide_struct.format[1:]).unpack_from
        reach = wide_struct.size  # bytes the wide read needs from the record start
        min_tcp = reach - 16 + 6  # link + IPv4 + TCP headers (20 bytes of TCP)
    else:
        wide, reach, min_tcp = None, 1 << 62, 0
    index = engine.skip_index
    assert index is not None
    live = engine.live_index
    lookup = index.get
    header = struct.Struct(endian + "IIII").unpack_from
    frag_mask = _frag_mask(endian)
    min_total = _MIN_TOTAL
    max_snap = MAX_SNAP
    name = state.name
    window = _Window(fh, 24)
    number = 0
    buf: bytes | mmap.mmap = b""
    pos = size = 0
    safe = -1  # the wide read may run at positions <= safe
    # A packet is skipped only when its whole second is before the engine's next idle-flow scan
    # (the scan must run at the same packet as on the slow path); refreshed after slow packets.
    limit = engine.next_sweep - 1.0
    big = endian == ">"
    etype_off, l3 = layout if layout is not None else (-1, 0)
    dns_ports = _DNS_PORT_TUPLE
    try:
        while True:
            if scan is not None:
                # C skips what it can and stops at the first record the careful branch below
                # must see (slow path, refill, or damage); safe stays -1 on this path
                pos, skipped, must = scan(buf, pos, size, big, unit, etype_off, l3, index,
                                          engine.next_sweep, dns_ports, max_snap, live)
                number += skipped
                if must:
                    # a whole record that skippable() refuses (C decided exactly as it does)
                    sec, frac, caplen, wire_len = header(buf, pos)
                    p = pos + 16
                    pos = p + caplen
                    number += 1
                    state.bytes_read = window.base + pos
                    plain(number, sec + frac * unit, linktype, buf[p:pos], wire_len)
                    continue
            if pos > safe:
                # near the end of the buffer (always, without a wide read): make sure the whole
                # record is in it
                if pos + 16 > size:
                    buf, pos, size = window.refill(pos, 16)
                    state.bytes_read = window.base + pos
                    if tick is not None and number:
                        tick(number)
                    if size == pos:
                        return number
                    if size - pos < 16:
                        state.damage(f"{name}: truncated packet header after frame {number}; "
                                     "stopped there")
                        return number
                sec, frac, caplen, wire_len = header(buf, pos)
                if caplen > MAX_SNAP:
                    state.damage(f"{name}: frame {number + 1} claims {caplen} bytes "
                                 "(corrupt length); stopped there")
                    return number
                if pos + 16 + caplen > size:
                    buf, pos, size = window.refill(pos, 16 + caplen)
                    if pos + 16 + caplen > size:
                        state.damage(f"{name}: frame {number + 1} truncated "
                                     f"({size - pos - 16} of {caplen} bytes); stopped there")
                        return number
                safe = size - reach
                if pos > safe:
                    p = pos + 16
                    end = p + caplen
                    number += 1
                    pos = end
                    ts = sec + frac * unit
                    if layout is not None and skippable(buf, p, caplen, layout, ts, engine, index):
                        continue
                    state.bytes_read = window.base + pos
                    slow(RawFrame(number, ts, linktype, buf[p:end], wire_len))
                    limit = engine.next_sweep - 1.0
                    continue
            (sec, frac, caplen, wire_len, t, total, frag, proto, key, doff,
             flags) = wide(buf, pos)  # type: ignore[misc]  # not None: safe < 0 without it
            p = pos + 16
            end = p + caplen
            if end > size or caplen > max_snap:
                safe = -1  # let the careful branch refill or report the damage
                continue
            number += 1
            pos = end
            if (t == tag and proto == 6 and not flags & 7 and caplen >= min_tcp
                    and not frag & frag_mask and sec < limit and doff >= 0x50
                    and total >= min_total):
                flow = lookup(key)
                if flow is not None:
                    flow.last_ts = sec + frac * unit
                    continue
            ts = sec + frac * unit
            if layout is not None and skippable(buf, p, caplen, layout, ts, engine, index):
                continue
            state.bytes_read = window.base + pos
            slow(RawFrame(number, ts, linktype, buf[p:end], wire_len))
            limit = engine.next_sweep - 1.0
    finally:
        state.bytes_read = window.base + pos
        window.close()
