"""Reading pcap and pcapng: every frame dpkt sees, damage reported, nothing before it lost."""

from __future__ import annotations

import io
import socket
import struct
from pathlib import Path

import dpkt
import pytest

from analyzer.base.errors import CaptureError
from analyzer.packets.decode import Decoder
from analyzer.source.capture_file import ReadState, open_capture
from tests.conftest import SHARED_CAPTURES

PUBLIC = sorted(p for p in SHARED_CAPTURES.glob("*/*") if p.suffix in (".pcap", ".pcapng"))


def _frames(data: bytes, name: str = "t") -> tuple[list, ReadState]:
    state = ReadState(name)
    return list(open_capture(io.BytesIO(data), state)), state


def _dpkt_frames(path: Path) -> list[tuple[float, bytes]]:
    with path.open("rb") as fh:
        reader = dpkt.pcapng.Reader(fh) if path.suffix == ".pcapng" else dpkt.pcap.Reader(fh)
        return list(reader)


@pytest.mark.parametrize("path", PUBLIC, ids=lambda p: p.name)
def test_same_frames_as_dpkt(path: Path) -> None:
    frames, state = _frames(path.read_bytes(), path.name)
    try:
        reference = _dpkt_frames(path)
    except ValueError:
        pytest.skip("dpkt cannot read this file (e.g. several interfaces)")
    assert not state.damaged
    assert len(frames) == len(reference)
    for ours, (ts, buf) in zip(frames, reference, strict=True):
        assert ours.data == buf
        assert abs(ours.ts - ts) < 1e-5


@pytest.mark.parametrize("path", PUBLIC, ids=lambda p: p.name)
def test_truncation_keeps_everything_before(path: Path) -> None:
    data = path.read_bytes()
    whole, _ = _frames(data)
    if len(whole) < 2:
        pytest.skip("needs two frames")
    cut = len(data) - 7  # mid-way through the last record
    frames, state = _frames(data[:cut])
    assert state.damaged and state.warnings
    assert "stopped there" in state.warnings[0]
    assert [f.data for f in frames] == [f.data for f in whole[:len(frames)]]
    assert len(frames) == len(whole) - 1


def test_empty_and_foreign_files_are_refused() -> None:
    with pytest.raises(CaptureError, match="empty file"):
        _frames(b"", "empty.pcap")
    with pytest.raises(CaptureError, match="not a pcap or pcapng file"):
        _frames(b"GIF89a....", "x.gif")
    with pytest.raises(CaptureError, match="file header truncated"):
        _frames(b"\xd4\xc3\xb2\xa1\x02\x00", "short.pcap")


def test_absurd_record_length_stops_with_warning() -> None:
    hdr = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    rec = struct.pack("<IIII", 1, 0, 0x7FFFFFFF, 60)
    frames, state = _frames(hdr + rec + b"x" * 100)
    assert frames == [] and state.damaged
    assert "corrupt length" in state.warnings[0]


def _sll2_udp_frame() -> bytes:
    udp = dpkt.udp.UDP(sport=40000, dport=53, data=b"hello")
    udp.ulen = 8 + len(udp.data)
    ip = dpkt.ip.IP(src=socket.inet_aton("10.0.0.1"), dst=socket.inet_aton("10.0.0.2"),
                    p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = 20 + len(bytes(udp))
    sll2 = struct.pack("!HHIHBB8s", 0x0800, 0, 3, 1, 4, 6, b"\x00" * 8)
    return sll2 + bytes(ip)


def test_pcapng_several_interfaces_comments_and_pid() -> None:
    buf = io.BytesIO()
    writer = dpkt.pcapng.Writer(buf, linktype=276)
    writer.writepkt(_sll2_udp_frame(), ts=1.5)
    raw = buf.getvalue()
    # add an EPB with a comment and a process id option by hand after the dpkt-written ones
    comment = b"PID: 42\nCmd: /usr/bin/go"
    opts = struct.pack("<HH", 1, len(comment)) + comment + b"\x00" * (-len(comment) % 4)
    opts += struct.pack("<HHII", 8, 8, 42, 43) + struct.pack("<HH", 0, 0)
    pkt = _sll2_udp_frame()
    body = struct.pack("<IIIII", 0, 0, 2_000_000, len(pkt), len(pkt)) + pkt + \
        b"\x00" * (-len(pkt) % 4) + opts
    block = struct.pack("<II", 6, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    frames, state = _frames(raw + block)
    assert len(frames) == 2 and not state.damaged
    assert frames[1].comments == ("PID: 42\nCmd: /usr/bin/go",)
    assert frames[1].pid == 42
    seg = Decoder().decode(2, frames[1].ts, frames[1].linktype, frames[1].data)
    assert seg is not None and (seg.src, seg.sport, seg.dst, seg.dport) == (
        "10.0.0.1", 40000, "10.0.0.2", 53)
    assert seg.payload == b"hello"


def test_apple_process_information_blocks() -> None:
    """macOS `tcpdump -k` writes Process Information Blocks and points EPBs at them."""
    from analyzer.events.builtin.read import _apple_process

    buf = io.BytesIO()
    writer = dpkt.pcapng.Writer(buf, linktype=276)
    writer.writepkt(_sll2_udp_frame(), ts=1.0)
    raw = buf.getvalue()

    def block(btype: int, body: bytes) -> bytes:
        body += b"\x00" * (-len(body) % 4)
        return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)

    def opt(code: int, value: bytes) -> bytes:
        return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)

    pib = block(0x80000001, struct.pack("<I", 4242) + opt(2, b"go") +
                opt(3, b"/usr/local/go/bin/go") + opt(0, b""))
    pkt = _sll2_udp_frame()
    epb_body = struct.pack("<IIIII", 0, 0, 2_000_000, len(pkt), len(pkt)) + pkt + \
        b"\x00" * (-len(pkt) % 4) + opt(0x8001, struct.pack("<I", 0)) + opt(0, b"")
    frames, state = _frames(raw + pib + block(6, epb_body))
    assert not state.damaged
    assert frames[0].process_block is None
    assert frames[1].process_block == (4242, "go", "/usr/local/go/bin/go")
    proc = _apple_process(frames[1].process_block)
    assert (proc.pid, proc.comm, proc.source) == (4242, "go", "pcapng-comment")
