"""Speed must not cost completeness: the ready line is true, and stopping loses nothing.

The live session no longer sleeps: it learns that the capture has caught up from marker
datagrams it finds in the capture file, and that bpftrace has from a traced connect of its own.
These tests check what those events promise (no timing is asserted).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.attribution import ebpf
from analyzer.live.annotate import annotate_capture
from analyzer.live.backends import Capture
from analyzer.live.marker import LOOPBACK, Marker, filter_with_marker, sees_loopback
from analyzer.packets.decode import Decoder
from analyzer.source.capture_file import ReadState, open_capture
from tests.live.loopback_http import serve_ok

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from analyzer.cli import main; main()"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="capturing needs root")


def test_the_marker_widens_the_filter_and_is_recognised() -> None:
    assert filter_with_marker("", 4000) == ""  # no filter already lets it through
    assert filter_with_marker("tcp port 443", 4000) == (
        "(tcp port 443) or (udp and dst host 127.0.0.1 and dst port 4000)")
    assert sees_loopback("any") and sees_loopback("lo") and not sees_loopback("eth0")
    marker = Marker()
    try:
        assert marker.is_marker("udp", LOOPBACK, marker.port, b"head" + marker.token + b"tail")
        assert not marker.is_marker("udp", LOOPBACK, marker.port, b"someone else's datagram")
        assert not marker.is_marker("tcp", LOOPBACK, marker.port, marker.token)
        assert not marker.is_marker("udp", "10.0.0.1", marker.port, marker.token)
    finally:
        marker.close()


def _udp_ports(path: Path, port: int) -> tuple[int, int]:
    """(datagrams to ``port``, frames in all) in a capture file."""
    decoder = Decoder()
    with path.open("rb") as fh:
        frames = list(open_capture(fh, ReadState(str(path))))
    mine = 0
    for f in frames:
        seg = decoder.decode(f.number, f.ts, f.linktype, f.data)
        if seg is not None and seg.transport == "udp" and seg.dport == port:
            mine += 1
    return mine, len(frames)


def _send_udp(port: int, count: int) -> None:
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind((LOOPBACK, port))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
        for i in range(count):
            tx.sendto(b"datagram %d" % i, (LOOPBACK, port))
    rx.close()


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@needs_root
@pytest.mark.parametrize("backend", ["tcpdump", "dumpcap"])
def test_stopping_right_after_the_traffic_keeps_every_packet(backend: str, tmp_path: Path) -> None:
    """The last packets sit in a ring block the kernel has not handed over yet; the stop's
    markers get them into the file before SIGINT, and the final pcapng leaves the markers out."""
    if not shutil.which(backend):
        pytest.skip(f"{backend} is not installed")
    port = _free_udp_port()
    raw = tmp_path / ("raw.pcapng" if backend == "dumpcap" else "raw.pcap")
    cap = Capture(backend, "any", f"udp port {port}", raw)
    assert cap.marker is not None
    cap.start()
    _send_udp(port, 300)
    counts = cap.stop()  # at once: no pause for the traffic to settle
    assert cap.flushed_by_marker
    mine, frames = _udp_ports(raw, port)
    assert mine == 300
    assert frames > mine  # the markers reached the raw file ...
    out = tmp_path / "out.pcapng"
    result = annotate_capture(raw, out, None, counts, "any", skip=cap.marker.is_marker)
    assert result.skipped == frames - mine and result.packets == mine
    assert _udp_ports(out, port) == (300, 300)  # ... and not the one we write


@needs_root
def test_without_loopback_markers_the_timed_wait_still_keeps_every_packet(tmp_path: Path) -> None:
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    port = _free_udp_port()
    cap = Capture("tcpdump", "any", f"udp port {port}", tmp_path / "raw.pcap", markers=False)
    assert cap.marker is None
    cap.start()
    _send_udp(port, 50)
    cap.stop()
    assert not cap.flushed_by_marker
    assert _udp_ports(tmp_path / "raw.pcap", port) == (50, 50)


@needs_root
def test_the_tracer_has_read_a_connect_made_just_before_stop(ebpf_loader: str) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    tracer = ebpf.EbpfTracer()
    tracer.start()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("127.0.0.1", 7))
            lport = s.getsockname()[1]
    finally:
        att = tracer.stop(wait_exit=False)  # what `run` does: no wait for bpftrace's detach
    try:
        assert [r.pid for r in att.sockets if r.local_port == lport] == [os.getpid()]
        # the tracer's own sync connects are not records
        assert not [r for r in att.sockets if r.remote_port == ebpf.SYNC_ADDR[1]
                    and r.pid == os.getpid()]
    finally:
        assert tracer.wait_exit(30)


@pytest.fixture
def http_port() -> Iterator[int]:
    with serve_ok() as port:
        yield port


@needs_root
@pytest.mark.skipif(not (shutil.which("tcpdump") and shutil.which("curl")),
                    reason="tcpdump and curl are needed")
def test_a_connection_right_after_the_ready_line_is_captured_and_attributed(
        tmp_path: Path, http_port: int, ebpf_loader: str) -> None:
    """`capture` prints its ready line only once the capture and the tracer see traffic: a
    short curl started the moment the line appears is in the report, with its process; a
    Ctrl-C right after it still writes everything."""
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    report = tmp_path / "r.jsonl"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    cap = subprocess.Popen([*CLI, "capture", "--attribution", "ebpf", "--filter",  # noqa: S603
                            f"tcp port {http_port}", "-w", str(tmp_path / "c.pcapng"), "-f",
                            "jsonl", "-o", str(report)], cwd=tmp_path, env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cap.stderr is not None
        line = cap.stderr.readline()
        assert line.startswith("proxytrace: capturing on any"), line
        curl = subprocess.run(["curl", "-s", "-o", "/dev/null", "-H", "Host: proxy.golang.org",  # noqa: S603
                               f"http://127.0.0.1:{http_port}/"], timeout=30, check=False)
        assert curl.returncode == 0
        cap.send_signal(signal.SIGINT)
        _out, err = cap.communicate(timeout=60)
    finally:
        if cap.poll() is None:
            cap.kill()
            cap.wait()
    assert cap.returncode == 0, err
    contacts = [json.loads(ln) for ln in report.read_text().splitlines()]
    assert [c["host"] for c in contacts] == ["proxy.golang.org"]
    process = contacts[0]["process"]
    assert process is not None and process["comm"] == "curl" and process["source"] == "ebpf"


@needs_root
def test_a_tracer_launched_early_and_never_used_is_stopped(ebpf_loader: str) -> None:
    """`run` and `capture` launch bpftrace before anything can fail; when the session never
    takes it (an error first), it is stopped, even in the middle of compiling."""
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    from analyzer.live import early

    early.launch("procfs")
    assert early.take() is None  # another tier: nothing launched
    early.launch("ebpf")
    tracer = early._launched  # what a session would take; none does here
    assert tracer is not None and tracer.launched
    early.discard()
    assert early.take() is None
    assert tracer.wait_exit(0)  # discard waited for it: gone, not left to run
