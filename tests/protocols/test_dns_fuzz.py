"""Hostile bytes into parse_dns and split_tcp_dns: a DnsMessage or ParseError, nothing else."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError
from analyzer.protocols.dns import DnsMessage, parse_dns, split_tcp_dns

from .pcap_payloads import udp_payloads

DATA = Path(__file__).resolve().parent.parent / "data" / "dns"
REAL = [p.data for name in sorted(DATA.glob("*.pcap*")) for p in udp_payloads(name)]
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _parse(data: bytes) -> DnsMessage | None:
    try:
        message = parse_dns(data)
    except ParseError:
        return None
    # A message that parses is fully usable.
    message.addresses()
    for question in message.questions:
        message.cname_chain(question.name)
    return message


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(REAL)))
    for _ in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "pointer"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if action == "flip" and data:
            data[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and data:
            del data[pos:pos + draw(st.integers(1, 8))]
        elif action == "truncate":
            del data[pos:]
        elif action == "pointer" and len(data) > pos + 1:
            target = draw(st.integers(0, len(data) + 16))
            data[pos:pos + 2] = bytes([0xC0 | (target >> 8) & 0x3F, target & 0xFF])
    return bytes(data)


def test_real_payloads_were_loaded() -> None:
    assert len(REAL) > 40


@FUZZ
@given(st.binary(max_size=700))
def test_random_bytes(data: bytes) -> None:
    _parse(data)


@FUZZ
@given(mutated())
def test_mutated_real_messages(data: bytes) -> None:
    _parse(data)


@FUZZ
@given(st.binary(min_size=12, max_size=12), st.lists(st.sampled_from(
    [b"\xc0\x0c", b"\xc0\x00", b"\x01a", b"\x00", b"\x00\x01\x00\x01", b"\x00\x41\x00\x01",
     b"\x00\x00\x00\x3c", b"\x00\x04", b"\x00\x10", b"\x7f\x00\x00\x01", b"\x3f", b"\x80"]),
    max_size=60))
def test_structured_fragments(header: bytes, parts: list[bytes]) -> None:
    _parse(header + b"".join(parts))


@FUZZ
@given(st.binary(max_size=300))
def test_split_tcp_dns_accounts_for_every_byte(stream: bytes) -> None:
    found, used = split_tcp_dns(stream)
    assert used == sum(len(m) + 2 for m in found)
    assert 0 <= len(stream) - used
    rest, _ = split_tcp_dns(stream[used:])
    assert rest == []
