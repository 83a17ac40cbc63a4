"""Hostile bytes: the TLS parsers return a result or raise ParseError, never anything else."""

from __future__ import annotations

import struct
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError
from analyzer.protocols.tls import (
    ClientHello,
    ServerFlight,
    parse_client_hello,
    parse_server_flight,
)

from .test_tls_captures import tcp_streams  # the trivial reassembler of the capture tests

DATA = Path(__file__).resolve().parents[1] / "data" / "tls"
CAPTURES = DATA / "captures"

CLIENT_SAMPLES = sorted(p.read_bytes() for p in DATA.glob("*.client.bin"))
SERVER_SAMPLES = sorted(p.read_bytes() for p in DATA.glob("*.server.bin"))

SETTINGS = settings(max_examples=500, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _parse_client(data: bytes) -> None:
    try:
        result = parse_client_hello(data)
    except ParseError:
        return
    assert result is None or isinstance(result, ClientHello)
    if result is not None:
        assert len(result.ja3) == 32 and result.ja4.count("_") == 2


def _parse_server(data: bytes) -> None:
    try:
        result = parse_server_flight(data)
    except ParseError:
        return
    assert isinstance(result, ServerFlight)


@st.composite
def mutated(draw: st.DrawFn, samples: list[bytes]) -> bytes:
    """A real sample with a few bytes overwritten, inserted, deleted, or the tail cut."""
    data = bytearray(draw(st.sampled_from(samples)))
    for _ in range(draw(st.integers(1, 6))):
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        op = draw(st.sampled_from(["set", "insert", "delete", "cut", "length"]))
        if op == "set":
            data[at] = draw(st.integers(0, 255))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 8))]
        elif op == "cut":
            del data[at:]
        else:  # overwrite a u16 with an edge value: lengths are where parsers break
            data[at:at + 2] = struct.pack("!H", draw(st.sampled_from([0, 1, 0xFF, 0x4000, 0xFFFF])))
    return bytes(data)


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_client(data: bytes) -> None:
    _parse_client(data)


@SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_server(data: bytes) -> None:
    _parse_server(data)


@SETTINGS
@given(st.binary(max_size=2048))
def test_random_bytes_behind_a_handshake_header(body: bytes) -> None:
    # Random bytes rarely pass the record header check; frame them so the body parsers see them.
    handshake = struct.pack("!I", (1 << 24) | len(body)) + body
    _parse_client(struct.pack("!BHH", 22, 0x0301, len(handshake)) + handshake)
    server = struct.pack("!I", (2 << 24) | len(body)) + body
    _parse_server(struct.pack("!BHH", 22, 0x0303, len(server)) + server)


@SETTINGS
@given(mutated(CLIENT_SAMPLES))
def test_mutated_client_hellos(data: bytes) -> None:
    _parse_client(data)


@SETTINGS
@given(mutated(SERVER_SAMPLES))
def test_mutated_server_flights(data: bytes) -> None:
    _parse_server(data)


def _capture_server_flights() -> list[bytes]:
    flights = []
    for pcap in sorted(CAPTURES.glob("*.pcap")):
        flights += [server for _client, server in tcp_streams(pcap).values() if server]
    return flights


@SETTINGS
@given(st.data())
def test_mutated_capture_flights_with_certificates(data: st.DataObject) -> None:
    # These flights carry real certificate chains (TLS 1.2), so mutations reach cryptography.
    _parse_server(data.draw(mutated(CAPTURE_FLIGHTS)))


CAPTURE_FLIGHTS = _capture_server_flights()
