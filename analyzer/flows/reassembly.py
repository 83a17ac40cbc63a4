"""TCP stream reassembly for the first bytes of each direction.

A modern Go ClientHello is ~1.5 KB and spans two segments at MTU 1500, HTTP headers can span
several, and real captures hold retransmissions, reordering and overlaps. ``StreamBuffer``
delivers each direction's bytes exactly once and in order: duplicates are dropped, overlaps
keep the first copy of every byte (what the receiver's stack already acknowledged), and early
segments wait in a bounded out-of-order store.
"""

from __future__ import annotations

from dataclasses import dataclass, field

SEQ_MOD = 1 << 32
HALF = 1 << 31


@dataclass(slots=True)
class Chunk:
    """In-order stream bytes starting at ``offset``, and the frame that completed them."""

    offset: int   # stream offset of data[0]
    data: bytes
    frame: int


@dataclass(slots=True)
class StreamBuffer:
    """One direction of a TCP connection."""

    max_pending_bytes: int = 256 * 1024
    max_gap: int = 1 << 20
    base: int | None = None          # sequence number of stream offset 0
    delivered: int = 0               # stream bytes delivered so far
    pending: dict[int, Chunk] = field(default_factory=dict)
    pending_bytes: int = 0
    dropped: int = 0                 # segments given up on (too far ahead, store full)

    def syn(self, seq: int) -> None:
        """A SYN fixes the initial sequence number: data starts at ISN + 1."""
        if self.base is None:
            self.base = (seq + 1) % SEQ_MOD

    def add(self, seq: int, data: bytes, frame: int) -> list[Chunk]:
        """Add a segment's payload; return the new in-order chunks (possibly none)."""
        if not data:
            return []
        if self.base is None:
            self.base = seq  # no SYN seen: the first data segment starts the stream
        rel = (seq - self.base) % SEQ_MOD
        offset = rel - SEQ_MOD if rel >= HALF else rel  # before the start: negative
        end = offset + len(data)
        if end <= self.delivered:
            return []  # retransmission of bytes already delivered
        if offset < self.delivered:
            data = data[self.delivered - offset:]
            offset = self.delivered
        if offset > self.delivered:
            self._store(Chunk(offset, data, frame))
            return []
        out = [Chunk(offset, data, frame)]
        self.delivered = offset + len(data)
        out.extend(self._drain())
        return out

    def _store(self, chunk: Chunk) -> None:
        if chunk.offset - self.delivered > self.max_gap or \
                self.pending_bytes + len(chunk.data) > self.max_pending_bytes:
            self.dropped += 1
            return
        existing = self.pending.get(chunk.offset)
        if existing is not None and len(existing.data) >= len(chunk.data):
            return  # first copy wins
        if existing is not None:
            self.pending_bytes -= len(existing.data)
        self.pending[chunk.offset] = chunk
        self.pending_bytes += len(chunk.data)

    def _drain(self) -> list[Chunk]:
        out: list[Chunk] = []
        while self.pending:
            ready = [o for o in self.pending if o <= self.delivered]
            if not ready:
                break
            for offset in sorted(ready):
                chunk = self.pending.pop(offset)
                self.pending_bytes -= len(chunk.data)
                end = chunk.offset + len(chunk.data)
                if end <= self.delivered:
                    continue
                data = chunk.data[self.delivered - chunk.offset:]
                out.append(Chunk(self.delivered, data, chunk.frame))
                self.delivered = end
        return out


@dataclass(slots=True)
class FrameIndex:
    """Which frames carried which stream bytes (for evidence: 'ClientHello in frames 4, 5')."""

    limit: int = 64
    chunks: list[tuple[int, int, int]] = field(default_factory=list)  # (start, end, frame)

    def add(self, chunk: Chunk) -> None:
        if len(self.chunks) < self.limit:
            self.chunks.append((chunk.offset, chunk.offset + len(chunk.data), chunk.frame))

    def frames(self, start: int, end: int) -> tuple[int, ...]:
        """Frames holding any byte of [start, end)."""
        seen: list[int] = []
        for c_start, c_end, frame in self.chunks:
            if c_start < end and c_end > start and frame not in seen:
                seen.append(frame)
        return tuple(seen)
