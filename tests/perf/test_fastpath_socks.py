"""SOCKS tunnels on the fast path: the same evidence as the slow path, with the C record loop and
the pure-Python one, and the tunnels' bulk payload is skipped once their handshakes are read."""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.utils import wrpcap

from analyzer.events.builtin import fastpath
from analyzer.events.builtin.read import read_evidence_builtin
from tests.core.test_engine import Conversation
from tests.perf.test_fastpath import run_counting_slow
from tests.protocols.test_socks import CHOICE, GREET, REPLY_OK, SOCKS4_OK
from tests.protocols.test_tls import data

HELLO = data("go1.27.3.client.bin")[:5 + int.from_bytes(data("go1.27.3.client.bin")[3:5], "big")]
SERVER_FLIGHT = data("go1.27.3.server.bin")
NAME_REQ = b"\x05\x01\x00\x03\x10proxy.golang.org\x01\xbb"


@pytest.fixture(params=["c", "python"])
def record_loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(fastpath, "SCAN", None)
    elif fastpath.SCAN is None:
        pytest.skip("analyzer.source._fastloop not built (or PROXYTRACE_PURE_PYTHON set)")
    return str(request.param)


def _tunnels(path: Path, count: int = 12, bulk: int = 100) -> int:
    packets: list = []
    for i in range(count):
        conv = Conversation(sport=41000 + i, dport=1080 if i % 2 else 9050).handshake()
        if i % 3 == 0:  # SOCKS4 by address
            conv.client(b"\x04\x01\x01\xbb\x0a\x4d\x00\x50\x00").server_data(SOCKS4_OK)
        else:
            conv.client(GREET).server_data(CHOICE).client(NAME_REQ).server_data(REPLY_OK)
        conv.client(HELLO[:900]).client(HELLO[900:])
        conv.server_data(SERVER_FLIGHT[:1400]).server_data(SERVER_FLIGHT[1400:])
        for _ in range(bulk):  # a module zip through the tunnel
            conv.server_data(b"\x17\x03\x03\x05\x00" + bytes(1200))
        packets += conv.packets
    wrpcap(str(path), packets)
    return len(packets)


@pytest.fixture(scope="module")
def tunnels(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    path = tmp_path_factory.mktemp("socks") / "socks.pcap"
    return path, _tunnels(path)


def test_fast_equals_slow_on_socks_tunnels(record_loop: str, tunnels: tuple[Path, int]) -> None:
    path, _ = tunnels
    slow = read_evidence_builtin(path, fast=False)
    fast = read_evidence_builtin(path, fast=True)
    assert len(fast.socks) == 12 and len(fast.tls) == 12
    assert all(t.via_proxy is not None for t in fast.tls)
    assert (fast.dns, fast.tls, fast.http, fast.socks, fast.stats) == (
        slow.dns, slow.tls, slow.http, slow.socks, slow.stats)


def test_bulk_inside_tunnels_takes_the_fast_path(record_loop: str,
                                                 tunnels: tuple[Path, int]) -> None:
    path, total = tunnels
    packets, engine, slow_calls = run_counting_slow(path, "socks")
    assert packets == total
    assert len(engine.finish().tls) == 12
    assert len(slow_calls) < total // 5
