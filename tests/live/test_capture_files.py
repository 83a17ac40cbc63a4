"""The pcapng we write, and the capture tools' statistics."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.records import ProcessRecord, SocketRecord
from analyzer.live.annotate import annotate_capture
from analyzer.live.backends import (
    CaptureCounts,
    dumpcap_argv,
    parse_dumpcap_stats,
    parse_tcpdump_stats,
    tcpdump_argv,
)
from analyzer.live.pcapng_writer import PcapngWriter
from analyzer.source.capture_file import ReadState, open_capture

DATA = Path(__file__).parent / "data"


def test_tcpdump_and_dumpcap_statistics() -> None:
    t = parse_tcpdump_stats((DATA / "tcpdump-stderr.txt").read_text())
    assert t == CaptureCounts(captured=9, received=24, dropped=6)
    d = parse_dumpcap_stats((DATA / "dumpcap-stderr.txt").read_text())
    assert d == CaptureCounts(captured=12, received=12, dropped=0)
    assert parse_tcpdump_stats("tcpdump: no such device") == CaptureCounts()


def test_capture_argv_are_lists_with_the_filter_last() -> None:
    argv = tcpdump_argv("/usr/bin/tcpdump", "any", "udp port 53", "/tmp/x.pcap")
    assert argv[-1] == "udp port 53" and "LINUX_SLL2" in argv and "-w" in argv
    argv = dumpcap_argv("/usr/bin/dumpcap", "eth0", "tcp", "/tmp/x.pcapng")
    assert argv[argv.index("-f") + 1] == "tcp"


def _tcp_frame(src: str, sport: int, dst: str, dport: int) -> bytes:
    import dpkt

    tcp = dpkt.tcp.TCP(sport=sport, dport=dport, flags=dpkt.tcp.TH_SYN, seq=1)
    ip = dpkt.ip.IP(src=bytes(map(int, src.split("."))), dst=bytes(map(int, dst.split("."))),
                    p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(bytes(ip))
    return bytes(ip)


def _raw_pcap(path: Path, frames: list[tuple[float, bytes]]) -> None:
    import dpkt

    with path.open("wb") as fh:
        w = dpkt.pcap.Writer(fh, linktype=101, nano=True)  # LINKTYPE_RAW
        for ts, data in frames:
            w.writepkt(data, ts)


def _annotated(tmp_path: Path) -> Path:
    raw = tmp_path / "raw.pcap"
    _raw_pcap(raw, [(100.0, _tcp_frame("10.0.0.2", 5000, "10.0.0.1", 443)),
                    (100.1, _tcp_frame("10.0.0.1", 443, "10.0.0.2", 5000)),
                    (100.2, _tcp_frame("10.0.0.2", 5001, "10.0.0.1", 443))])
    att = SocketAttributor("ebpf", [SocketRecord(99.9, 77, "tcp", "10.0.0.2", 5000, "10.0.0.1", 443,
                                                 "ebpf", comm="go")],
                           [ProcessRecord(77, ppid=1, comm="go", cmdline="go mod download",
                                          exe="/usr/local/go/bin/go", uid=1000),
                            ProcessRecord(1, comm="bash", cmdline="-bash", exe="/usr/bin/bash")])
    out = tmp_path / "out.pcapng"
    res = annotate_capture(raw, out, att, CaptureCounts(3, 5, 2), "any")
    assert (res.packets, res.attributed) == (3, 2)
    return out


def test_annotated_file_reads_back_with_process_and_drops(tmp_path: Path) -> None:
    from analyzer.source.process_comments import process_from_comments

    out = _annotated(tmp_path)
    assert os.stat(out).st_mode & 0o777 == 0o600
    state = ReadState(str(out))
    with out.open("rb") as fh:
        frames = list(open_capture(fh, state))
    assert [f.pid for f in frames] == [77, 77, None]
    # ptcpdump's three lines first; the flow's first packet adds the ancestor chain
    first = frames[0].comments[0].split("\n")
    assert first[:3] == ["PID: 77", "Cmd: /usr/local/go/bin/go", "Args: go mod download"]
    assert first[3:] == ['Ancestors: [{"pid": 1, "comm": "bash", "cmdline": "-bash", '
                         '"exe": "/usr/bin/bash", "env": null}]']
    assert frames[1].comments[0] == "PID: 77\nCmd: /usr/local/go/bin/go\nArgs: go mod download"
    assert "ParentPID: 1\nParentCmd: /usr/bin/bash\nParentArgs: -bash" in frames[0].comments
    p = process_from_comments(frames[1].comments, frames[1].pid)
    assert p is not None and (p.pid, p.comm, p.uid, p.ppid) == (77, "go", 1000, 1)
    assert frames[0].ts == pytest.approx(100.0)
    assert state.kernel_drops == 2


def test_tshark_selects_attributed_packets(tmp_path: Path) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    out = _annotated(tmp_path)
    argv = [tshark, "-r", str(out), "-Y", 'frame.comment contains "PID:"', "-T", "fields", "-e",
            "frame.number"]
    proc = subprocess.run(argv, capture_output=True, text=True, check=True,  # noqa: S603
                          timeout=60)
    assert proc.stdout.split() == ["1", "2"]
    # Wireshark shows our extra lines in the same comment; only a flow's first packet has them
    argv[4] = 'frame.comment contains "Ancestors: [{\\"pid\\": 1"'
    proc = subprocess.run(argv, capture_output=True, text=True, check=True,  # noqa: S603
                          timeout=60)
    assert proc.stdout.split() == ["1"]


def test_writer_blocks_are_aligned(tmp_path: Path) -> None:
    path = tmp_path / "w.pcapng"
    with path.open("wb") as fh:
        w = PcapngWriter(fh)
        w.packet(101, 1.5, b"\x45" + b"\0" * 18, comments=["PID: 1\nCmd: x\nArgs: x"], pid=1)
        w.statistics(2.0, 10, 1)
    data = path.read_bytes()
    pos = 0
    types = []
    while pos < len(data):
        btype, length = struct.unpack("<II", data[pos:pos + 8])
        assert length % 4 == 0
        assert struct.unpack("<I", data[pos + length - 4:pos + length])[0] == length
        types.append(btype)
        pos += length
    assert types == [0x0A0D0D0A, 1, 6, 5]
