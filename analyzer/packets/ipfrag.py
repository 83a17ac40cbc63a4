"""IP fragment reassembly, IPv4 and IPv6 (large DNS answers over UDP arrive fragmented).

Bounded: at most ``max_pending`` datagrams in flight, each at most 64 KiB, expired after
``timeout`` seconds of capture time. Overlapping fragments keep the first copy of each byte.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import NamedTuple


class FragmentKey(NamedTuple):
    src: str
    dst: str
    ident: int
    proto: int


@dataclass
class _Pending:
    """The fragments of one datagram received so far."""

    first_ts: float
    pieces: dict[int, bytes] = field(default_factory=dict)
    total: int | None = None


class Ipv4Reassembler:
    """Reassembles IPv4 fragments, and IPv6 ones (keyed by their own addresses, so the two never
    mix); the name is historical."""

    def __init__(self, max_pending: int = 1024, timeout: float = 30.0) -> None:
        self._pending: OrderedDict[FragmentKey, _Pending] = OrderedDict()
        self.max_pending = max_pending
        self.timeout = timeout
        self.dropped = 0

    def add(self, key: FragmentKey, offset: int, more: bool, data: bytes,
            ts: float) -> bytes | None:
        """Add one fragment; return the whole payload once every byte has arrived."""
        self._expire(ts)
        entry = self._pending.get(key)
        if entry is None:
            if len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            entry = self._pending[key] = _Pending(ts)
        if offset + len(data) > 65535:
            del self._pending[key]
            self.dropped += 1
            return None
        entry.pieces.setdefault(offset, data)
        if not more:
            entry.total = offset + len(data)
        if entry.total is None:
            return None
        whole = self._assemble(entry)
        if whole is not None:
            del self._pending[key]
        return whole

    @staticmethod
    def _assemble(entry: _Pending) -> bytes | None:
        assert entry.total is not None
        buf = bytearray(entry.total)
        filled = 0  # contiguous bytes covered from offset 0
        for offset in sorted(entry.pieces):
            piece = entry.pieces[offset]
            if offset > filled:
                return None  # a hole remains
            end = min(offset + len(piece), entry.total)
            if end > filled:
                # first copy wins: only bytes past what is already filled are written
                buf[filled:end] = piece[filled - offset:end - offset]
                filled = end
        return bytes(buf) if filled >= entry.total else None

    def _expire(self, now: float) -> None:
        while self._pending:
            key, entry = next(iter(self._pending.items()))
            if now - entry.first_ts <= self.timeout:
                return
            del self._pending[key]
            self.dropped += 1
