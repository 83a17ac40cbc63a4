"""The fast path must give exactly the slow path's evidence (every event, frame number, warning,
count) on every capture we have and on generated ones with the awkward cases."""

from __future__ import annotations

import io
import random
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from analyzer.events.builtin import fastpath
from analyzer.events.builtin.engine import Engine
from analyzer.events.builtin.read import read_evidence_builtin
from analyzer.packets.decode import Decoder
from analyzer.source.capture_file import RawFrame, ReadState, open_capture
from bench.gen import Generator, write_pcap, write_tiled
from tests.conftest import CAPTURES, SHARED_CAPTURES


@pytest.fixture(autouse=True, params=["c", "python"])
def record_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test here runs with the C record loop and with the pure-Python one."""
    if request.param == "python":
        monkeypatch.setattr(fastpath, "SCAN", None)
    elif fastpath.SCAN is None:
        pytest.skip("analyzer.events.builtin._fastloop not built (or PROXYTRACE_PURE_PYTHON set)")
    return str(request.param)


def _captures() -> list[Path]:
    found = sorted(CAPTURES.glob("*.pcap*"))
    if SHARED_CAPTURES.is_dir():
        found += sorted(p for p in SHARED_CAPTURES.rglob("*") if p.suffix in (".pcap", ".pcapng"))
    return found


def _as_pcap(src: Path, dst: Path) -> bool:
    """Rewrite a capture as classic pcap (one link type), so the pcap fast loop sees real traffic."""
    with src.open("rb") as fh:
        frames = list(open_capture(fh, ReadState(src.name)))
    links = {f.linktype for f in frames}
    if len(links) != 1:
        return False
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, links.pop())]
    for f in frames:
        sec = int(f.ts)
        out.append(struct.pack("<IIII", sec, int(round((f.ts - sec) * 1e6)) % 1_000_000,
                               len(f.data), f.wire_len) + f.data)
    dst.write_bytes(b"".join(out))
    return True


def _assert_same(path: Path) -> None:
    slow = read_evidence_builtin(path, fast=False)
    fast = read_evidence_builtin(path, fast=True)
    assert fast.dns == slow.dns
    assert fast.tls == slow.tls
    assert fast.http == slow.http
    assert fast.socks == slow.socks
    assert fast.flow_processes == slow.flow_processes
    assert fast.stats == slow.stats


@pytest.mark.parametrize("capture", _captures(), ids=lambda p: p.name)
def test_fast_equals_slow_on_captures(capture: Path, tmp_path: Path) -> None:
    _assert_same(capture)
    converted = tmp_path / (capture.stem + ".pcap")
    if capture.suffix == ".pcapng" and _as_pcap(capture, converted):
        _assert_same(converted)


def test_captures_are_present() -> None:
    assert len(_captures()) >= 10, "the project's captures/ should hold the lab captures"


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_fast_equals_slow_on_generated_mix(seed: int, tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    write_pcap(path, 25_000, seed)
    _assert_same(path)


def test_fast_equals_slow_on_tiled_partly_captured_mix(tmp_path: Path) -> None:
    """The bench's 20M-packet layout, small: bulk packets captured to 128 bytes (caplen below
    the wire length), copies shifted past the idle timeout (flows expire, ports come back)."""
    path = tmp_path / "tiled.pcap"
    assert write_tiled(path, 12_000, 3, 128) == 36_000
    _assert_same(path)
    with path.open("rb") as fh:
        frames = list(open_capture(fh, ReadState("tiled")))
    assert len(frames) == 36_000
    assert sum(f.wire_len > len(f.data) for f in frames) > 20_000
    assert all(b.ts >= a.ts for a, b in zip(frames, frames[1:], strict=False))
    if shutil.which("tcpdump"):  # a real pcap: libpcap reads every record
        out = subprocess.run(["tcpdump", "-r", str(path), "-w", "/dev/null", "-c", "36000"],
                             capture_output=True, text=True, check=True, timeout=60)
        assert "truncated" not in out.stderr


@pytest.mark.parametrize("window", [4096 * 3, 1 << 17])
def test_fast_equals_slow_across_many_windows(window: int, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Small mmap windows: hundreds of refills and records cut at every window edge, also on a
    file cut short."""
    monkeypatch.setattr(fastpath, "WINDOW", window)
    path = tmp_path / "mix.pcap"
    write_pcap(path, 8_000, 4)
    _assert_same(path)
    path.write_bytes(path.read_bytes()[:-777])
    _assert_same(path)


@pytest.mark.parametrize("window", [4096 * 3, 1 << 16])
def test_windows_faulted_in_ahead_give_the_same_evidence(window: int, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         record_loop: str) -> None:
    """The window after the current one is mapped and faulted in ahead (C loop only): most
    refills use it, a record longer than its overlap with the one before does not (records of
    20 000 bytes here, longer than a whole small window), and the evidence is the same."""
    if fastpath.MAPPED_WINDOW is None:
        pytest.skip("no MappedWindow without the C loop")
    monkeypatch.setattr(fastpath, "WINDOW", window)
    made: list[int] = []
    real = fastpath.MAPPED_WINDOW

    def counting(fd: int, offset: int, length: int) -> object:
        made.append(length)
        return real(fd, offset, length)

    monkeypatch.setattr(fastpath, "MAPPED_WINDOW", counting)
    used: list[bool] = []
    take = fastpath._Window._take_ahead

    def taking(self: fastpath._Window, at: int, need: int) -> object:
        got = take(self, at, need)
        used.append(got is not None)
        return got

    monkeypatch.setattr(fastpath._Window, "_take_ahead", taking)
    path = tmp_path / "mix.pcap"
    write_pcap(path, 8_000, 5)
    data = path.read_bytes()
    # a few jumbo records (an Ethernet frame of zeros: a non-IP ethertype, skipped) in between
    jumbo = struct.pack("<IIII", 1, 0, 20_000, 20_000) + bytes(20_000)
    cut = [24]
    pos = 24
    while pos < len(data):  # record boundaries
        pos += 16 + struct.unpack_from("<I", data, pos + 8)[0]
        cut.append(pos)
    parts = [data[:cut[0]]]
    for i in range(len(cut) - 1):
        parts.append(data[cut[i]:cut[i + 1]])
        if i % 1_500 == 700:
            parts.append(jumbo)
    path.write_bytes(b"".join(parts))
    _assert_same(path)
    refills = len(data) // window
    assert len(made) >= refills // 2, (len(made), refills)
    assert sum(used) >= refills // 2 and not all(used), (sum(used), len(used), refills)
    path.write_bytes(path.read_bytes()[:-777])
    _assert_same(path)


def test_generated_mix_has_the_awkward_cases(tmp_path: Path) -> None:
    """Port reuse, retransmissions, reordering and mid-stream starts really occur in it."""
    path = tmp_path / "mix.pcap"
    write_pcap(path, 25_000, 1)
    dec = Decoder()
    syns: dict[tuple[str, int, str, int], int] = {}
    seen_seq: set[tuple[str, int, int]] = set()
    retrans = reorder = 0
    last_seq: dict[tuple[str, int], int] = {}
    first_flags: dict[tuple[str, int, str, int], int] = {}
    with path.open("rb") as fh:
        for frame in open_capture(fh, ReadState("mix")):
            seg = dec.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if seg is None or seg.transport != "tcp":
                continue
            key = (seg.src, seg.sport, seg.dst, seg.dport)
            rev = (seg.dst, seg.dport, seg.src, seg.sport)
            if key not in first_flags and rev not in first_flags:
                first_flags[key] = seg.flags
            if seg.flags == 0x02:
                syns[key] = syns.get(key, 0) + 1
            if seg.payload:
                ident = (seg.src, seg.sport, seg.seq)
                retrans += ident in seen_seq
                seen_seq.add(ident)
                prev = last_seq.get((seg.src, seg.sport))
                if prev is not None and seg.seq < prev and (prev - seg.seq) < 1 << 20:
                    reorder += 1
                last_seq[(seg.src, seg.sport)] = seg.seq
    assert any(n > 1 for n in syns.values()), "no client port reused"
    assert retrans > 0 and reorder > 0
    assert any(not flags & 0x02 for flags in first_flags.values()), "no mid-stream connection"


def run_counting_slow(path: Path, name: str) -> tuple[int, Engine, list[int]]:
    """The fast path over ``path``: packets read, the engine, and the frames it sent the slow way."""
    slow_calls: list[int] = []
    engine = Engine(name)
    dec = Decoder()

    def slow(frame: RawFrame) -> None:
        slow_calls.append(frame.number)
        seg = dec.decode(frame.number, frame.ts, frame.linktype, frame.data)
        if seg is not None:
            engine.feed(seg)

    with path.open("rb") as fh:
        packets = fastpath.run(fh, ReadState(name), engine, slow)
    return packets, engine, slow_calls


def test_fast_path_skips_most_packets(tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    write_pcap(path, 25_000, 4)
    packets, _engine, slow_calls = run_counting_slow(path, "mix")
    assert packets == 25_000 or packets > 25_000 - 10
    assert len(slow_calls) < packets // 5


def test_pipe_reader_equals_mapped_file(tmp_path: Path) -> None:
    """A pipe (no mmap) takes the read() branch; same evidence, bytes and packet count."""
    path = tmp_path / "mix.pcap"
    write_pcap(path, 8_000, 5)

    def run(fh: object) -> tuple[object, ReadState, int]:
        engine, dec, state = Engine("mix"), Decoder(), ReadState("mix")

        def slow(frame: RawFrame) -> None:
            seg = dec.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if seg is not None:
                engine.feed(seg)

        n = fastpath.run(fh, state, engine, slow)  # type: ignore[arg-type]
        return engine.finish(), state, n

    with path.open("rb") as fh:
        mapped = run(fh)
    piped = run(io.BytesIO(path.read_bytes()))
    assert piped[0] == mapped[0]
    assert piped[1].bytes_read == mapped[1].bytes_read == path.stat().st_size
    assert piped[2] == mapped[2]


@pytest.mark.parametrize("cut", [3, 10, 700, 5000])
def test_damaged_pcap_same_warnings(cut: int, tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    write_pcap(path, 3_000, 6)
    path.write_bytes(path.read_bytes()[:-cut])
    _assert_same(path)
    ev = read_evidence_builtin(path)
    assert ev.stats[0].damaged and "stopped there" in ev.stats[0].warnings[0]


def test_corrupt_length_same_warning(tmp_path: Path) -> None:
    path = tmp_path / "mix.pcap"
    write_pcap(path, 2_000, 7)
    data = bytearray(path.read_bytes())
    # the 1000th record's caplen becomes absurd
    pos = 24
    for _ in range(999):
        caplen = struct.unpack_from("<I", data, pos + 8)[0]
        pos += 16 + caplen
    struct.pack_into("<I", data, pos + 8, 1 << 30)
    path.write_bytes(bytes(data))
    _assert_same(path)
    ev = read_evidence_builtin(path)
    assert ev.stats[0].packets == 999 and "corrupt length" in ev.stats[0].warnings[0]


def test_generator_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.pcap", tmp_path / "b.pcap"
    write_pcap(a, 3_000, 9)
    write_pcap(b, 3_000, 9)
    assert a.read_bytes() == b.read_bytes()
    assert Generator(9).samples  # real ClientHellos were found in captures/


def _relink(src: Path, dst: Path, linktype: int, ipv6: bool = False) -> None:
    """The generated Ethernet/IPv4 mix on another link type (raw IP, Linux cooked v1/v2), or with
    every IPv4 packet rewritten as IPv6, so each branch of the skip decision sees bulk traffic."""
    data = src.read_bytes()
    out = [data[:20] + struct.pack("<I", linktype)]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, _wire = struct.unpack_from("<IIII", data, pos)
        frame = data[pos + 16:pos + 16 + caplen]
        pos += 16 + caplen
        etype, ip = frame[12:14], frame[14:]
        if ipv6 and etype == b"\x08\x00":
            ihl = (ip[0] & 0x0F) * 4
            total = int.from_bytes(ip[2:4], "big")
            body = ip[ihl:total]
            ip = (struct.pack("!IHBB", 0x60000000, len(body), ip[9], 64)
                  + b"\xfd" + bytes(11) + ip[12:16] + b"\xfd" + bytes(11) + ip[16:20] + body)
            etype = b"\x86\xdd"
        if linktype == 1:
            new = frame[:12] + etype + ip
        elif linktype == 101:
            new = ip
        elif linktype == 113:
            new = b"\x00\x00\x00\x01\x00\x06" + bytes(8) + etype + ip
        else:  # 276, SLL2
            new = etype + b"\x00\x00" + struct.pack("!I", 2) + b"\x00\x01\x00\x06" + bytes(8) + ip
        out.append(struct.pack("<IIII", sec, frac, len(new), len(new)) + new)
    dst.write_bytes(b"".join(out))


@pytest.mark.parametrize(("linktype", "ipv6"), [(101, False), (113, False), (276, False),
                                                (1, True), (101, True)])
def test_fast_equals_slow_on_other_link_types(linktype: int, ipv6: bool, tmp_path: Path) -> None:
    src, dst = tmp_path / "mix.pcap", tmp_path / "relinked.pcap"
    write_pcap(src, 12_000, 8)
    _relink(src, dst, linktype, ipv6)
    _assert_same(dst)
    ev = read_evidence_builtin(dst)
    assert ev.tls and ev.dns  # the traffic is still understood after the rewrite


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_fast_equals_slow_on_mangled_headers(seed: int, tmp_path: Path) -> None:
    """Random bytes flipped in link/IP/TCP headers, records cut short: no crash, same evidence."""
    rng = random.Random(seed)
    src = tmp_path / "mix.pcap"
    write_pcap(src, 6_000, seed)
    data = bytearray(src.read_bytes())
    out = [bytes(data[:24])]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack_from("<IIII", data, pos)
        frame = bytearray(data[pos + 16:pos + 16 + caplen])
        pos += 16 + caplen
        r = rng.random()
        if r < 0.05:
            for _ in range(rng.randrange(1, 4)):
                i = rng.randrange(min(len(frame), 60))
                frame[i] = rng.randrange(256)
        elif r < 0.07:
            frame = frame[:rng.randrange(0, 70)]
        out.append(struct.pack("<IIII", sec, frac, len(frame), wire) + bytes(frame))
    mangled = tmp_path / "mangled.pcap"
    mangled.write_bytes(b"".join(out))
    _assert_same(mangled)


def test_fast_equals_slow_on_big_endian_pcap(tmp_path: Path) -> None:
    """A pcap written on a big-endian host: the wide header read and the fragment mask follow."""
    src, dst = tmp_path / "mix.pcap", tmp_path / "be.pcap"
    write_pcap(src, 8_000, 10)
    data = src.read_bytes()
    magic, vmaj, vmin, zone, sigfigs, snap, link = struct.unpack_from("<IHHiIII", data, 0)
    out = [struct.pack(">IHHiIII", magic, vmaj, vmin, zone, sigfigs, snap, link)]
    pos = 24
    while pos + 16 <= len(data):
        sec, frac, caplen, wire = struct.unpack_from("<IIII", data, pos)
        out.append(struct.pack(">IIII", sec, frac, caplen, wire) + data[pos + 16:pos + 16 + caplen])
        pos += 16 + caplen
    dst.write_bytes(b"".join(out))
    _assert_same(dst)
    be, le = read_evidence_builtin(dst), read_evidence_builtin(src)
    assert [t.client_hello for t in be.tls] == [t.client_hello for t in le.tls]
    assert be.tls and be.stats[0].packets == le.stats[0].packets
