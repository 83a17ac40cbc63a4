"""Bounded state on long captures: idle flows expire (capture time), the DNS pending map, the flow
table and the per-direction reassembly store have caps; the fast path keeps all of it exact."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from analyzer.events.builtin import engine as engine_mod
from analyzer.events.builtin.engine import FLOW_IDLE_TIMEOUT, Engine, run_engine
from analyzer.events.builtin.read import read_evidence_builtin
from analyzer.flows.reassembly import StreamBuffer
from analyzer.packets.decode import TCP_ACK, TCP_SYN, Segment
from bench.gen import Generator, dns_message, tls_samples

CLIENT, SERVER = bytes([10, 9, 0, 2]), bytes([10, 9, 0, 80])


def _write(path: Path, packets: list[tuple[float, bytes]]) -> None:
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for ts, pkt in packets:
        sec = int(ts)
        out.append(struct.pack("<IIII", sec, int((ts - sec) * 1e6), len(pkt), len(pkt)) + pkt)
    path.write_bytes(b"".join(out))


def _tls_conversation(gen: Generator, t0: float, cport: int, idle_gap: float) -> list[tuple[float, bytes]]:
    """Handshake with a real ClientHello and server flight, bulk data, a long silence, more data."""
    sample = tls_samples()[0]
    c, s = 1000, 9000
    pk: list[tuple[float, bytes]] = []

    def add(ts: float, from_client: bool, flags: int, payload: bytes = b"") -> None:
        nonlocal c, s
        if from_client:
            pk.append((ts, gen.tcp(CLIENT, SERVER, cport, 443, c, s, flags, payload, True)))
            c += len(payload) + (1 if flags & TCP_SYN else 0)
        else:
            pk.append((ts, gen.tcp(SERVER, CLIENT, 443, cport, s, c, flags, payload, False)))
            s += len(payload) + (1 if flags & TCP_SYN else 0)

    add(t0, True, TCP_SYN)
    add(t0 + 0.01, False, TCP_SYN | TCP_ACK)
    add(t0 + 0.02, True, TCP_ACK)
    add(t0 + 0.03, True, TCP_ACK | 0x08, sample.hello)
    add(t0 + 0.04, False, TCP_ACK | 0x08, sample.server)
    for i in range(50):
        add(t0 + 0.05 + i * 0.001, False, TCP_ACK, b"\x17\x03\x03" + bytes(1200))
    for i in range(50):  # the same connection after a silence
        add(t0 + idle_gap + i * 0.001, False, TCP_ACK, bytes(1200))
    return pk


@pytest.mark.parametrize("gap", [10.0, FLOW_IDLE_TIMEOUT + 100.0])
def test_idle_expiry_is_exact_on_the_fast_path(gap: float, tmp_path: Path) -> None:
    gen = Generator(1)
    packets = _tls_conversation(gen, 1_790_000_000.0, 40001, gap)
    # a second, unrelated connection keeps packets flowing through the silence
    other = _tls_conversation(gen, 1_790_000_000.5, 40002, 1.0)
    for i in range(0, int(gap), 30):
        other.append((1_790_000_001.0 + i, gen.tcp(SERVER, CLIENT, 443, 40002, 1, 1, TCP_ACK,
                                                   bytes(100), False)))
    path = tmp_path / "idle.pcap"
    _write(path, sorted(packets + other, key=lambda p: p[0]))
    slow = read_evidence_builtin(path, fast=False)
    fast = read_evidence_builtin(path, fast=True)
    assert fast.tls == slow.tls and fast.stats == slow.stats
    assert len(fast.tls) == 2


def test_idle_flows_are_closed_and_emitted() -> None:
    eng = Engine("t")
    for i in range(100):
        eng.feed(Segment(i + 1, 1000.0 + i * 0.01, "tcp", "10.0.0.1", 30000 + i, "10.0.0.2", 443,
                         b"", 1, 0, TCP_SYN))
    assert eng.open_flows == 100
    eng.feed(Segment(200, 1000.0 + FLOW_IDLE_TIMEOUT + 120, "tcp", "10.0.0.1", 50000,
                     "10.0.0.2", 443, b"", 1, 0, TCP_SYN))
    assert eng.open_flows == 1


def test_dns_pending_map_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "MAX_DNS_PENDING", 50)
    eng = Engine("t")
    for i in range(500):  # queries that never get an answer, all within the linger time
        msg = dns_message(i, f"n{i}.example", False)
        eng.feed(Segment(i + 1, 1000.0 + i * 0.001, "udp", "10.0.0.1", 40000 + i, "10.0.0.53",
                         53, msg))
        assert eng.pending_dns <= 51
    ev = eng.finish()
    assert len(ev.dns) == 500  # evicted queries are still reported, not lost


def test_flow_table_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_mod, "MAX_FLOWS", 100)
    eng = Engine("t")
    for i in range(1000):
        eng.feed(Segment(i + 1, 1000.0 + i * 0.001, "tcp", "10.0.0.1", 20000 + i, "10.0.0.2",
                         443, b"", 1, 0, TCP_SYN))
        assert eng.open_flows <= 100


def test_reassembly_store_is_bounded() -> None:
    buf = StreamBuffer()
    buf.syn(0)
    for i in range(1, 2000):  # everything after a hole that never fills
        buf.add(1 + i * 1000, bytes(1000), i)
    assert buf.pending_bytes <= buf.max_pending_bytes
    assert buf.dropped > 0


def test_done_flow_buffers_are_freed(tmp_path: Path) -> None:
    """Once a TLS flow is done, out-of-order data it was holding is released."""
    gen = Generator(1)
    packets = _tls_conversation(gen, 1_790_000_000.0, 40001, 10.0)
    eng = Engine("t")
    eng.skip_index = {}
    from analyzer.packets.decode import Decoder

    dec = Decoder()
    for n, (ts, pkt) in enumerate(packets, 1):
        seg = dec.decode(n, ts, 1, pkt)
        assert seg is not None
        eng.feed(seg)
    [flow] = list(eng._flows.values())  # noqa: SLF001 - white-box check of the bound
    assert flow.done and not flow.c2s.pending and not flow.s2c.pending
    assert len(eng.skip_index) == 2
    eng.finish()
    assert not eng.skip_index


def _plain_expiry(self: Engine, now: float) -> None:
    """The DNS expiry loop without its remembered oldest time (the reference)."""
    while self._dns:
        key, pending = next(iter(self._dns.items()))
        if now - pending.ts <= engine_mod.DNS_LINGER:
            return
        del self._dns[key]
        self._emit_dns(pending)


def _remembered_and_plain(segments: list[Segment], monkeypatch: pytest.MonkeyPatch
                          ) -> tuple[list[object], list[object]]:
    """The DNS exchanges of ``segments``, with the engine's expiry and with the plain loop."""
    remembered = list(run_engine(segments, "t").dns)
    monkeypatch.setattr(Engine, "_expire_dns", _plain_expiry)
    return remembered, list(run_engine(segments, "t").dns)


@pytest.mark.parametrize("seed", range(6))
def test_dns_expiry_remembering_the_oldest_query_is_exact(seed: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Queries and answers with times that go back and forth across the linger time, IDs reused
    by the same client (a query replacing a pending one), answers without a query, and a pending
    map at its bound: the same exchanges, in the same order, as the plain loop gives."""
    import random

    rng = random.Random(seed)
    monkeypatch.setattr(engine_mod, "MAX_DNS_PENDING", 40)
    segments: list[Segment] = []
    ts = 1000.0
    for i in range(3000):
        ts += rng.choice([0.01, 0.5, 3.0, 12.0, -8.0, -35.0, 31.0, 0.0])
        client = f"10.0.{rng.randrange(3)}.{rng.randrange(1, 4)}"
        port, txid = 30000 + rng.randrange(5), rng.randrange(60)
        response = rng.random() < 0.45
        name = rng.choice(["proxy.golang.org", "sum.golang.org"])
        payload = dns_message(txid, name, response)
        if response:
            segments.append(Segment(i + 1, ts, "udp", "10.0.0.53", 53, client, port, payload))
        else:
            segments.append(Segment(i + 1, ts, "udp", client, port, "10.0.0.53", 53, payload))

    remembered, plain = _remembered_and_plain(segments, monkeypatch)
    assert remembered == plain and len(plain) > 500


def test_dns_expiry_after_the_oldest_query_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    """The oldest query replaced by a new one with its ID leaves an older-stamped query first:
    that one must expire on time (a response after it is then an exchange of its own)."""
    q = "10.0.0.53"
    segments = [
        Segment(1, 100.0, "udp", "10.0.0.1", 30000, q, 53, dns_message(1, "proxy.golang.org", False)),
        Segment(2, 90.0, "udp", "10.0.0.2", 30000, q, 53, dns_message(2, "sum.golang.org", False)),
        Segment(3, 101.0, "udp", "10.0.0.3", 30000, q, 53, dns_message(3, "sum.golang.org", False)),
        Segment(4, 105.0, "udp", "10.0.0.1", 30000, q, 53, dns_message(1, "proxy.golang.org", False)),
        Segment(5, 125.0, "udp", "10.0.0.3", 30001, q, 53, dns_message(4, "sum.golang.org", False)),
        Segment(6, 126.0, "udp", q, 53, "10.0.0.2", 30000, dns_message(2, "sum.golang.org", True)),
    ]

    remembered, plain = _remembered_and_plain(segments, monkeypatch)
    assert remembered == plain
    late = [ex for ex in plain if ex.txid == 2]  # type: ignore[attr-defined]
    assert len(late) == 2 and {ex.query_frame for ex in late} == {2, None}  # type: ignore[attr-defined]
