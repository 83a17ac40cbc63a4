"""TCP reassembly: order, retransmission and overlap must never corrupt the stream."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.flows.reassembly import FrameIndex, StreamBuffer

ISN = 4_294_967_000  # close to wrap-around on purpose


def _segments(data: bytes, sizes: list[int]) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    for size in sizes:
        if pos >= len(data):
            break
        out.append((pos, data[pos:pos + size]))
        pos += size
    if pos < len(data):
        out.append((pos, data[pos:]))
    return out


def _deliver(buf: StreamBuffer, segs: list[tuple[int, bytes]]) -> bytes:
    got = bytearray()
    for frame, (offset, payload) in enumerate(segs, 1):
        for chunk in buf.add((ISN + 1 + offset) % (1 << 32), payload, frame):
            assert chunk.offset == len(got)
            got += chunk.data
    return bytes(got)


def test_in_order_across_sequence_wrap() -> None:
    data = bytes(range(256)) * 12
    buf = StreamBuffer()
    buf.syn(ISN)
    assert _deliver(buf, _segments(data, [1448] * 3)) == data


def test_out_of_order_second_segment_first() -> None:
    data = b"A" * 1448 + b"B" * 300
    segs = _segments(data, [1448])
    buf = StreamBuffer()
    buf.syn(ISN)
    assert _deliver(buf, list(reversed(segs))) == data


def test_retransmission_and_overlap_keep_first_copy() -> None:
    data = b"0123456789" * 50
    buf = StreamBuffer()
    buf.syn(ISN)
    got = bytearray()
    for chunk in buf.add(ISN + 1, data[:200], 1):
        got += chunk.data
    # a retransmission with different bytes over the delivered range must not change them
    for chunk in buf.add(ISN + 1 + 100, b"X" * 150 + data[250:300], 2):
        got += chunk.data
    for chunk in buf.add(ISN + 1, data, 3):
        got += chunk.data
    assert bytes(got[:200]) == data[:200]
    assert bytes(got[200:250]) == b"X" * 50  # first copy of those bytes won
    assert len(got) == len(data)


def test_frames_index_names_segments() -> None:
    idx = FrameIndex()
    buf = StreamBuffer()
    buf.syn(ISN)
    for frame, (offset, payload) in enumerate(_segments(b"x" * 3000, [1448, 1448]), 10):
        for chunk in buf.add(ISN + 1 + offset, payload, frame):
            idx.add(chunk)
    assert idx.frames(0, 1500) == (10, 11)
    assert idx.frames(2900, 3000) == (12,)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=4000), st.lists(st.integers(1, 700), min_size=1,
                                                      max_size=30), st.integers(0, 2**31))
def test_any_order_with_duplicates_yields_the_stream(data: bytes, sizes: list[int],
                                                     seed: int) -> None:
    segs = _segments(data, sizes)
    rng = random.Random(seed)
    shuffled = segs + rng.sample(segs, k=min(len(segs), 3))  # retransmissions
    rng.shuffle(shuffled)
    buf = StreamBuffer()
    buf.syn(ISN)
    assert _deliver(buf, shuffled) == data
