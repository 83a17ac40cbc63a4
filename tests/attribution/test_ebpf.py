"""The ebpf tier: the parser on recorded bpftrace output, and (as root) the real tracer."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from analyzer.attribution import ebpf
from analyzer.attribution.joiner import SocketAttributor
from analyzer.base.errors import ParseError
from analyzer.events.records import FlowRef

DATA = Path(__file__).parent / "data"


def test_recorded_output_parses() -> None:
    text = (DATA / "bpftrace-loopback.txt").read_text()
    sockets, procs = ebpf.parse_output(text, clock_offset=1000.0)
    curl = [s for s in sockets if s.comm == "curl" and s.remote_port == 18080]
    assert curl and all((s.pid, s.transport, s.local_port) == (25639, "tcp", 56742) for s in curl)
    assert curl[0].ts == pytest.approx(4546779972503 / 1e9 + 1000.0)
    v6 = [s for s in sockets if s.remote == "::1" and s.transport == "udp"]
    assert v6 and v6[0].remote_port == 5353
    execs = [p for p in procs if p.exe]
    assert execs[0].exe == "/usr/bin/tshark" and execs[0].comm == "tshark" and execs[0].ppid == 24709
    unbound = [s for s in sockets if s.local_port is None]
    assert unbound and unbound[0].remote_port == 60833


def test_recorded_output_attributes_flows_both_ways() -> None:
    sockets, procs = ebpf.parse_output((DATA / "bpftrace-loopback.txt").read_text())
    att = SocketAttributor("ebpf", sockets, procs)
    ts = 4546.78
    p = att.process_for(FlowRef("tcp", "127.0.0.1", 56742, "127.0.0.1", 18080), ts)
    assert p is not None and (p.pid, p.comm) == (25639, "curl")
    # the server side of the same connection belongs to the server process
    srv = att.process_for(FlowRef("tcp", "127.0.0.1", 18080, "127.0.0.1", 56742), ts)
    assert srv is not None and srv.pid == 9743


@pytest.mark.parametrize("line", [
    "S\t1\t2\t3\t4\t5\t6",                     # too few fields
    "S\tx\t2\t3\t4\t5\t6\ta\t1\tb\t2\tc",      # not a number
    "S\t1\t2\t3\t4\t5\t99\ta\t1\tb\t2\tc",     # unknown protocol
    "E\t1\t2\tz\t0\tc\t/x",
])
def test_hostile_lines_raise_parse_error(line: str) -> None:
    with pytest.raises(ParseError):
        ebpf.parse_line(line)


def test_chatter_is_ignored() -> None:
    assert ebpf.parse_line("Attaching 9 probes...") is None
    assert ebpf.parse_line("") is None


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def _skip_reason() -> str | None:
    return ebpf.unavailable_reason() or (None if shutil.which("curl") else "curl is not installed")


@pytest.mark.skipif(os.geteuid() != 0, reason="the ebpf tier needs root")
def test_live_tracer_sees_curl_and_a_connected_udp_socket(ebpf_loader: str) -> None:
    reason = _skip_reason()
    if reason:
        pytest.skip(reason)
    server = HTTPServer(("127.0.0.1", 0), _Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    tracer = ebpf.EbpfTracer()
    tracer.start()
    assert tracer.backend == ebpf_loader  # forced: no fallback to the other one
    try:
        argv = ["curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{port}/"]
        proc = subprocess.run(argv, check=True, timeout=30)  # noqa: S603 - fixed argument list
        assert proc.returncode == 0
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.connect(("127.0.0.1", 9))  # connect + send: what the Go resolver does
        udp.send(b"x")
        uport = udp.getsockname()[1]
        udp.close()
    finally:
        att = tracer.stop()
        server.shutdown()
    curl = [s for s in att.sockets if s.remote_port == port and s.comm == "curl"]
    assert curl, "curl's short-lived connection was traced"
    assert att.processes[curl[0].pid].exe == shutil.which("curl") or att.processes[curl[0].pid].comm == "curl"
    mine = [s for s in att.sockets if s.transport == "udp" and s.local_port == uport]
    assert mine and mine[0].pid == os.getpid()


@pytest.mark.skipif(os.geteuid() != 0, reason="the ebpf tier needs root")
def test_live_tracer_sees_unconnected_udp_sends(ebpf_loader: str) -> None:
    """sendto and sendmsg with a destination on an unconnected socket (dig, some resolvers):
    the peer comes from the call, the local port from the kernel, one record per peer."""
    reason = ebpf.unavailable_reason()
    if reason:
        pytest.skip(reason)
    tracer = ebpf.EbpfTracer()
    tracer.start()
    assert tracer.backend == ebpf_loader  # forced: no fallback to the other one
    try:
        v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        v4.sendto(b"x", ("127.0.0.1", 9))
        v4.sendto(b"y", ("127.0.0.1", 9))     # the same peer again: no second record
        v4.sendmsg([b"z"], [], 0, ("127.0.0.2", 7))
        port4 = v4.getsockname()[1]
        v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        v6.sendto(b"x", ("::1", 9))
        port6 = v6.getsockname()[1]
        v4.close()
        v6.close()
    finally:
        att = tracer.stop()
    mine = sorted((s.remote, s.remote_port, s.local_port) for s in att.sockets
                  if s.transport == "udp" and s.pid == os.getpid())
    assert mine == sorted([("127.0.0.1", 9, port4), ("127.0.0.2", 7, port4), ("::1", 9, port6)])
