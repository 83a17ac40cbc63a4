"""The C record loop (analyzer.events.builtin._fastloop) against the pure-Python reference: the same
decisions and the same evidence on hostile bytes, and no crash whatever the buffer holds."""

from __future__ import annotations

import functools
import random
import struct
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from analyzer.events.builtin import fastpath
from analyzer.events.builtin.engine import DNS_PORTS
from analyzer.events.builtin.read import read_evidence_builtin
from analyzer.source.capture_file import MAX_SNAP
from bench.gen import write_pcap

SCAN = fastpath.SCAN
FLOW_INDEX = fastpath.FLOW_INDEX
needs_ext = pytest.mark.skipif(SCAN is None, reason="analyzer.events.builtin._fastloop not built "
                                                     "(or PROXYTRACE_PURE_PYTHON set)")
DNS = tuple(sorted(DNS_PORTS))


@functools.cache
def _mix() -> tuple[bytes, list[tuple[int, int]]]:
    """A small generated capture (Ethernet) and its (start, end) record offsets."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "mix.pcap"
        write_pcap(path, 1_200, 21)
        data = path.read_bytes()
    spans, pos = [], 24
    while pos + 16 <= len(data):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        spans.append((pos, pos + 16 + caplen))
        pos += 16 + caplen
    return data, spans


def _fi(items: dict[bytes, Any]) -> Any:
    """The C loop's index holding ``items`` (the same flow objects)."""
    index = FLOW_INDEX()  # type: ignore[misc]
    for key, value in items.items():
        index[key] = value
    return index


class _Flow:
    __slots__ = ("last_ts",)

    def __init__(self) -> None:
        self.last_ts = -1.0


def _py_scan(buf: bytes, pos: int, size: int, big: bool, unit: float,
             layout: tuple[int, int], index: dict[bytes, Any], next_sweep: float,
             live: dict[bytes, Any] | None = None) -> tuple[int, int, bool]:
    """What scan() must do, written with the reference skippable(): (offset it stops at,
    records skipped, whether it stopped at a whole record for the slow path)."""
    engine: Any = SimpleNamespace(next_sweep=next_sweep, live_index=live or {})
    header = struct.Struct((">" if big else "<") + "IIII").unpack_from
    skipped = 0
    while pos + 16 <= size:
        sec, frac, caplen, _wire = header(buf, pos)
        if caplen > MAX_SNAP or pos + 16 + caplen > size:
            break
        if not fastpath.skippable(buf, pos + 16, caplen, layout, sec + frac * unit, engine, index):
            return pos, skipped, True
        pos += 16 + caplen
        skipped += 1
    return pos, skipped, False


_mutation = st.tuples(st.integers(0, 80), st.integers(0, 255))
_record = st.tuples(st.integers(0, 1_199),                   # which real packet
                    st.one_of(st.just([]), st.lists(_mutation, max_size=3)),  # bytes changed
                    st.one_of(st.none(), st.none(), st.none(), st.integers(0, 90)),  # cut short
                    st.integers(0, 3))  # seconds added to its time


@needs_ext
@settings(max_examples=300, deadline=None)
@given(records=st.lists(_record, max_size=40), junk=st.binary(max_size=64),
       big=st.booleans(), link=st.sampled_from(sorted(fastpath.LAYOUTS)),
       unkeyed=st.integers(0, 4), sweep=st.integers(0, 5),
       size_cut=st.integers(0, 40))
def test_scan_matches_skippable(records: list[tuple[int, list[tuple[int, int]], int | None, int]],
                                junk: bytes, big: bool, link: int, unkeyed: int, sweep: int,
                                size_cut: int) -> None:
    """Records built from real packets with random bytes changed and random cuts (so both the
    skip branches and every refusal are reached; most packets' keys are in the index), then junk: the C loop stops at the same offset
    after the same records, and sets the same last_ts on the same flows, as skippable()."""
    data, spans = _mix()
    layout = fastpath.LAYOUTS[link]
    fmt = (">" if big else "<") + "IIII"
    out = [bytes(24)]
    last_sec = max((struct.unpack_from("<I", data, spans[r[0]][0])[0] + r[3] for r in records),
                   default=0)
    for i, muts, cut, later in records:
        start, end = spans[i]
        sec, frac, _caplen, wire = struct.unpack_from("<IIII", data, start)
        frame = bytearray(data[start + 16:end])
        if link != 1:
            frame = bytearray(frame[14 - layout[1]:] if layout[1] <= 14
                              else bytes(layout[1] - 14) + frame)
        for off, val in muts:
            if off < len(frame):
                frame[off] = val
        if cut is not None:
            frame = frame[:cut]
        out.append(struct.pack(fmt, sec + later, frac, len(frame), wire) + bytes(frame))
    buf = b"".join(out) + junk
    size = max(24, len(buf) - size_cut)
    # index keys: the address+port bytes of some of the packets, as the engine stores them
    l3 = layout[1]
    c_index: dict[bytes, Any] = {}
    py_index: dict[bytes, Any] = {}
    # open flows that are not done (a bare ACK of one is skipped too), and keys two share (None)
    c_live: dict[bytes, Any] = {}
    py_live: dict[bytes, Any] = {}
    pos = 24
    for n, (i, _m, _c, _l) in enumerate(records):
        p = pos + 16
        caplen = struct.unpack_from(fmt, buf, pos)[2]
        if caplen >= l3 + 44:
            for lo, hi in ((12, 24), (8, 44)):
                key = buf[p + l3 + lo:p + l3 + hi]
                if i % 5 != unkeyed:
                    c_index.setdefault(key, _Flow())
                    py_index.setdefault(key, _Flow())
                elif n % 3:
                    c_live.setdefault(key, _Flow())
                    py_live.setdefault(key, _Flow())
                else:
                    c_live[key] = py_live[key] = None
        pos = p + caplen
        if pos > len(buf):
            break
    next_sweep = float(last_sec + 2 - sweep)  # sweep 0, 1: after every packet
    got = SCAN(buf, 24, size, big, 1e-6, layout[0], l3, _fi(c_index), next_sweep, DNS, MAX_SNAP,
               _fi(c_live))
    want = _py_scan(buf, 24, size, big, 1e-6, layout, py_index, next_sweep, py_live)
    assert got == want
    event(f"skipped {min(got[1], 3)}+, {sum(f.last_ts >= 0 for f in c_index.values()) > 0} flows")
    assert {k: f.last_ts for k, f in c_index.items()} == {k: f.last_ts for k, f in py_index.items()}
    assert ({k: f and f.last_ts for k, f in c_live.items()}
            == {k: f and f.last_ts for k, f in py_live.items()})


@needs_ext
@settings(max_examples=300, deadline=None)
@given(buf=st.binary(max_size=400), pos=st.integers(0, 450), cut=st.integers(0, 450),
       big=st.booleans(), layout=st.sampled_from(sorted(set(fastpath.LAYOUTS.values()))))
def test_scan_random_bytes_no_crash(buf: bytes, pos: int, cut: int, big: bool,
                                    layout: tuple[int, int]) -> None:
    """Random bytes and offsets: the C loop never reads outside the buffer, and agrees."""
    size = max(0, len(buf) - cut)
    index: dict[bytes, Any] = {buf[i:i + 12]: _Flow() for i in range(0, len(buf) - 12, 7)}
    live: dict[bytes, Any] = {buf[i:i + 12]: _Flow() for i in range(3, len(buf) - 12, 11)}
    got = SCAN(buf, pos, size, big, 1e-9, layout[0], layout[1], _fi(index), 1e12, DNS, MAX_SNAP,
               _fi(live))
    want = _py_scan(buf, pos, size, big, 1e-9, layout, dict(index), 1e12, dict(live))
    assert got == want


@needs_ext
def test_scan_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SCAN(b"x" * 100, 0, 200, False, 1e-6, 12, 14, _fi({}), 0.0, DNS, MAX_SNAP,
             _fi({}))  # size > buffer
    with pytest.raises(ValueError):
        SCAN(b"x" * 100, 0, 100, False, 1e-6, 60, 14, _fi({}), 0.0, DNS, MAX_SNAP,
             _fi({}))  # ethertype past IP
    with pytest.raises(TypeError):
        SCAN(b"x" * 100, 0, 100, False, 1e-6, 12, 14, {}, 0.0, DNS, MAX_SNAP, {})  # not indexes


@settings(max_examples=40, deadline=None)
@given(cut_at=st.integers(0, 1_199), junk=st.binary(max_size=2_000), tail=st.integers(0, 300))
def test_random_pcap_body_same_evidence(cut_at: int, junk: bytes, tail: int) -> None:
    """Real records, then random bytes as the rest of the pcap body, then more real records:
    the C loop, the pure-Python loop and the slow path give the same evidence and warnings."""
    data, spans = _mix()
    body = data[:spans[cut_at][0]] + junk + data[spans[cut_at][0]:spans[min(cut_at + tail, 1_199)][1]]
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "fuzz.pcap"
        path.write_bytes(body)
        slow = read_evidence_builtin(path, fast=False)
        results = []
        for scan in (SCAN, None):
            saved = fastpath.SCAN
            fastpath.SCAN = scan
            try:
                results.append(read_evidence_builtin(path, fast=True))
            finally:
                fastpath.SCAN = saved
    for fast in results:
        assert fast.dns == slow.dns
        assert fast.tls == slow.tls
        assert fast.http == slow.http
        assert fast.stats == slow.stats


def test_extension_is_built() -> None:
    """`pip install -e .` (make install) builds the C loop; without it everything still works,
    only slower, so say so loudly here rather than silently."""
    import os

    if os.environ.get("PROXYTRACE_PURE_PYTHON", "") not in ("", "0"):
        pytest.skip("PROXYTRACE_PURE_PYTHON set: the C loop is off on purpose")
    assert fastpath.SCAN is not None, "analyzer.events.builtin._fastloop is not built: run make install"


_keys = st.binary(min_size=0, max_size=36)
_ops = st.lists(st.tuples(st.sampled_from(["set", "del", "get", "in"]), _keys,
                          st.one_of(st.none(), st.integers(0, 5))), max_size=300)


@needs_ext
@settings(max_examples=200, deadline=None)
@given(ops=_ops, few=st.booleans())
def test_flow_index_is_a_mapping_like_dict(ops: list[tuple[str, bytes, int | None]],
                                           few: bool) -> None:
    """The C loop's index answers get / [] / in / del / len / items as a dict does, through
    growth and deletions (few distinct keys: many deletes and re-inserts of the same slots)."""
    index, ref = FLOW_INDEX(), {}  # type: ignore[misc]
    for op, key, value in ops:
        if few:
            key = key[:1]
        if op == "set":
            index[key] = ref[key] = value
        elif op == "del":
            if key in ref:
                del index[key]
                del ref[key]
            else:
                with pytest.raises(KeyError):
                    del index[key]
        elif op == "get":
            assert index.get(key) == ref.get(key)
            assert index.get(key, "absent") == ref.get(key, "absent")
        else:
            assert (key in index) == (key in ref)
        assert len(index) == len(ref)
    assert sorted(index.items(), key=repr) == sorted(ref.items(), key=repr)
    for key, value in ref.items():
        assert index[key] == value
    index.clear()
    assert len(index) == 0 and not index


@needs_ext
def test_flow_index_refuses_what_cannot_be_a_key() -> None:
    index = FLOW_INDEX()  # type: ignore[misc]
    with pytest.raises(TypeError):
        index[b"x" * 37] = 1
    with pytest.raises(TypeError):
        index["text"] = 1
    assert index.get("text") is None and "text" not in index and b"x" * 37 not in index
    with pytest.raises(KeyError):
        index[b"missing"]  # noqa: B018 - the lookup is the test


@needs_ext
def test_flow_index_many_flows() -> None:
    """200 000 IPv4 keys and as many IPv6 ones (the engine's flow bound), then half removed."""
    index = FLOW_INDEX()  # type: ignore[misc]
    keys = [i.to_bytes(12, "big") for i in range(200_000)] + [
        i.to_bytes(36, "little") for i in range(200_000)]
    for i, key in enumerate(keys):
        index[key] = i
    assert len(index) == len(keys) and index[keys[123_456]] == 123_456
    for key in keys[::2]:
        del index[key]
    assert len(index) == len(keys) // 2
    assert all(index.get(k) is None for k in keys[::2][:1000])
    assert all(index[k] == i for i, k in list(enumerate(keys))[1::2][:1000])


@needs_ext
@pytest.mark.parametrize("flows", [2, 20, 1000])
def test_scan_last_ts_of_flows_with_two_keys(flows: int, tmp_path: Path) -> None:
    """As in the engine, one flow object under both directions' keys. scan() writes last_ts
    once per flow per call (and mid-call when more than 64 keys wait): every flow must still
    end with its last packet's time, whichever direction it came in, as skippable() leaves it.
    Only TCP packets without SYN/FIN/RST of indexed flows: one call skips them all."""
    path = tmp_path / "mix.pcap"
    write_pcap(path, 30_000, 22)
    data = path.read_bytes()
    c_index: dict[bytes, Any] = {}
    py_index: dict[bytes, Any] = {}
    c_flows: dict[frozenset[bytes], _Flow] = {}
    py_flows: dict[frozenset[bytes], _Flow] = {}
    out, pos, n = [data[:24]], 24, 0
    while pos + 16 <= len(data):
        _sec, _frac, caplen, wire = struct.unpack_from("<IIII", data, pos)
        frame, pos = data[pos + 16:pos + 16 + caplen], pos + 16 + caplen
        if frame[12:14] != b"\x08\x00" or frame[23] != 6 or frame[47] & 0x07:
            continue
        fwd = frame[26:38]
        rev = fwd[4:8] + fwd[:4] + fwd[10:12] + fwd[8:10]
        pair = frozenset((fwd, rev))
        if pair not in c_flows:
            if len(c_flows) >= flows:
                continue
            c_flows[pair], py_flows[pair] = _Flow(), _Flow()
        for key in (fwd, rev):
            c_index[key], py_index[key] = c_flows[pair], py_flows[pair]
        # distinct, rising times: a stale write would show
        out.append(struct.pack("<IIII", 1000 + n // 1000, (n % 1000) * 1000, caplen, wire) + frame)
        n += 1
    # more than 32 flows: more than 64 keys (the C loop's pending writes) touched in the call
    assert len(c_flows) == flows if flows < 100 else len(c_flows) > 32
    buf = b"".join(out)
    layout = fastpath.LAYOUTS[1]
    got = SCAN(buf, 24, len(buf), False, 1e-6, layout[0], layout[1], _fi(c_index), 1e12, DNS,
               MAX_SNAP, _fi({}))
    assert got == (len(buf), n, False)  # every packet skipped, in one call
    assert got == _py_scan(buf, 24, len(buf), False, 1e-6, layout, py_index, 1e12)
    assert [f.last_ts for f in c_flows.values()] == [f.last_ts for f in py_flows.values()]
    assert all(f.last_ts > 0 for f in c_flows.values())


def test_mapped_window_reads_as_the_file_does(tmp_path: Path) -> None:
    """The C loop's mmap window: the file's bytes by index and slice, len(), a buffer for
    struct and scan(); close() refused while a buffer is in use, then every read refused."""
    from analyzer.events.builtin._fastloop import MappedWindow

    data = bytes(random.Random(7).randrange(256) for _ in range(3 * 4096 + 123))
    path = tmp_path / "w.bin"
    path.write_bytes(data)
    with path.open("rb") as fh:
        with pytest.raises(ValueError):
            MappedWindow(fh.fileno(), 0, 0)
        with pytest.raises(OSError):
            MappedWindow(fh.fileno(), 1, 10)  # not a page-aligned offset
        w = MappedWindow(fh.fileno(), 4096, len(data) - 4096)
        w.wait()
        part = data[4096:]
        assert len(w) == len(part)
        assert [w[i] for i in (0, 1, 5000, len(part) - 1, -1, -len(part))] == \
            [part[i] for i in (0, 1, 5000, len(part) - 1, -1, -len(part))]
        for sl in (slice(0, 10), slice(100, 5000), slice(-50, None), slice(None, None, 7),
                   slice(9000, 3, -3), slice(5, 5), slice(len(part) - 3, len(part) + 99)):
            assert w[sl] == part[sl]
        with pytest.raises(IndexError):
            w[len(part)]
        with pytest.raises(TypeError):
            w["x"]  # type: ignore[index]
        assert struct.unpack_from("<I", w, 8) == struct.unpack_from("<I", part, 8)
        view = memoryview(w)
        with pytest.raises(BufferError):
            w.close()
        assert bytes(view[:4]) == part[:4]
        view.release()
        w.close()
        assert len(w) == 0
        with pytest.raises(ValueError):
            w[0]
        with pytest.raises(ValueError):
            memoryview(w)
        w.close()  # twice is fine
