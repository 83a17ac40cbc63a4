"""Hostile bytes: the TLS parsers return a result or raise ParseError, never anything else."""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.base.errors import ParseError
from analyzer.protocols import tls as tls_module
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


def _first_message_body(sample: bytes, msg_type: int) -> bytes | None:
    """The body of a recorded stream's first handshake message when it is of ``msg_type``
    (1 ClientHello, 2 ServerHello), else None."""
    handshake = b""
    for ctype, payload in tls_module._records(sample):  # lazy: later records are not read
        if ctype != 22:
            return None
        handshake += payload
        messages, _incomplete = tls_module._handshake_messages(handshake, 1 << 20)
        if messages:
            return messages[0][1] if messages[0][0] == msg_type else None
    return None


HELLO_BODIES = [b for b in (_first_message_body(s, 1) for s in CLIENT_SAMPLES) if b is not None]


def _agrees(quick_parser: Callable[[bytes], object], careful_parser: Callable[[bytes], object],
            body: bytes) -> bool:
    """An offsets-only parser gives the careful parser's result, or None (and then the careful
    one decides); True when it gave a result."""
    quick = quick_parser(body)
    try:
        careful = careful_parser(body)
    except ParseError:
        assert quick is None
        return False
    assert quick is None or quick == careful
    return quick is not None


def _quick_agrees(body: bytes) -> bool:
    return _agrees(tls_module._client_hello_quick, tls_module._client_hello_careful, body)


def _reaches_both(bodies: st.SearchStrategy[bytes], agrees: Callable[[bytes], bool],
                  examples: int) -> dict[bool, int]:
    """How many bodies of ``examples`` drawn the quick parser read whole (True) and left to
    the careful one (False)."""
    seen = {True: 0, False: 0}

    @settings(max_examples=examples, deadline=None, database=None)
    @given(bodies)
    def count(body: bytes) -> None:
        seen[agrees(body)] += 1

    count()
    return seen


def test_quick_hello_parser_reads_every_recorded_hello() -> None:
    assert len(HELLO_BODIES) == len(CLIENT_SAMPLES) >= 4
    assert all(_quick_agrees(body) for body in HELLO_BODIES)


@SETTINGS
@given(mutated(HELLO_BODIES))
def test_quick_hello_parser_agrees_on_mutated_bodies(body: bytes) -> None:
    _quick_agrees(body)


@SETTINGS
@given(st.binary(max_size=600))
def test_quick_hello_parser_agrees_on_random_bodies(body: bytes) -> None:
    # a plausible start (version, random, empty session id) so the walk gets past the header
    _quick_agrees(b"\x03\x03" + bytes(32) + b"\x00" + body)


def _framed(data: bytes, size: int, fudge: int) -> bytes:
    """``data`` after a big-endian length of ``size`` bytes, the length off by ``fudge``."""
    return max(0, len(data) + fudge).to_bytes(size, "big")[-size:] + data


@st.composite
def _extension_body(draw: st.DrawFn, ext_type: int) -> bytes:
    """An extension body shaped as the parsers expect (lists of framed items), sometimes with a
    length off by one, an odd count of u16 bytes, or a name that is not ASCII."""
    fudge = st.sampled_from([0] * 12 + [-1, 1])
    u16s = st.lists(st.integers(0, 0xFFFF), max_size=4).map(
        lambda values: b"".join(v.to_bytes(2, "big") for v in values))
    odd = st.sampled_from([b""] * 12 + [b"\x07"])
    if ext_type == 0:  # server_name: a u16 list of (type, u16 name)
        names = draw(st.lists(st.tuples(st.sampled_from([0, 0, 1]),
                                        st.sampled_from([b"proxy.golang.org", b"SUM.golang.org",
                                                         b"\xc3\xa9.example", b""])),
                              max_size=3))
        items = b"".join(bytes([t]) + _framed(n, 2, draw(fudge)) for t, n in names)
        return draw(st.sampled_from([b"", _framed(items, 2, draw(fudge))]))
    if ext_type == 16:  # ALPN: a u16 list of u8 names
        names = draw(st.lists(st.sampled_from([b"h2", b"http/1.1", b"", b"\xff"]), max_size=3))
        return _framed(b"".join(_framed(n, 1, draw(fudge)) for n in names), 2, draw(fudge))
    if ext_type in (10, 13):  # u16 list of u16
        return _framed(draw(u16s) + draw(odd), 2, draw(fudge))
    if ext_type == 43:  # u8 list of u16 versions
        return _framed(draw(u16s) + draw(odd), 1, draw(fudge))
    if ext_type == 11:  # u8 list of u8 point formats
        return _framed(draw(st.binary(max_size=4)), 1, draw(fudge))
    return draw(st.binary(max_size=12))


@st.composite
def _hello_bodies(draw: st.DrawFn) -> bytes:
    types = draw(st.lists(st.sampled_from([0, 10, 11, 13, 16, 43, 51, 0x0A0A, 65281]),
                          max_size=6))
    exts = b"".join(t.to_bytes(2, "big") + _framed(draw(_extension_body(t)), 2,
                                                   draw(st.sampled_from([0] * 12 + [-1, 1])))
                    for t in types)
    session = draw(st.sampled_from([b"", bytes(32), bytes(33)]))
    ciphers = _framed(draw(st.binary(max_size=8)), 2, draw(st.sampled_from([0, 0, 1])))
    tail = draw(st.sampled_from([b"", _framed(exts, 2, 0), _framed(exts, 2, 1),
                                 _framed(exts, 2, 0) + b"\x00"]))
    return b"\x03\x03" + bytes(32) + _framed(session, 1, 0) + ciphers + b"\x01\x00" + tail


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_hello_bodies())
def test_quick_hello_parser_agrees_on_built_bodies(body: bytes) -> None:
    _quick_agrees(body)


def test_built_bodies_reach_both_parsers() -> None:
    """The strategy above makes hellos the quick parser reads whole and ones it leaves to the
    careful parser (so the agreement test sees both)."""
    seen = _reaches_both(_hello_bodies(), _quick_agrees, 400)
    assert seen[True] > 40 and seen[False] > 40, seen


SERVER_HELLO_BODIES = [b for b in (_first_message_body(s, 2) for s in SERVER_SAMPLES)
                       if b is not None]


def _quick_server_agrees(body: bytes) -> bool:
    return _agrees(tls_module._server_hello_quick, tls_module._server_hello_careful, body)


def test_quick_server_hello_parser_reads_every_recorded_hello() -> None:
    assert len(SERVER_HELLO_BODIES) >= 3
    assert all(_quick_server_agrees(body) for body in SERVER_HELLO_BODIES)


@SETTINGS
@given(mutated(SERVER_HELLO_BODIES))
def test_quick_server_hello_parser_agrees_on_mutated_bodies(body: bytes) -> None:
    _quick_server_agrees(body)


@st.composite
def _server_hello_bodies(draw: st.DrawFn) -> bytes:
    types = draw(st.lists(st.sampled_from([43, 16, 51, 0x0A0A]), max_size=4))
    exts = b"".join(t.to_bytes(2, "big") + _framed(draw(_server_extension(t)), 2,
                                                   draw(st.sampled_from([0] * 12 + [-1, 1])))
                    for t in types)
    random = draw(st.sampled_from([bytes(32), tls_module.HELLO_RETRY_RANDOM]))
    session = draw(st.sampled_from([b"", bytes(32), bytes(33)]))
    tail = draw(st.sampled_from([b"", _framed(exts, 2, 0), _framed(exts, 2, 1),
                                 _framed(exts, 2, 0) + b"\x00", b"\x00"]))
    return b"\x03\x03" + random + _framed(session, 1, 0) + b"\x13\x01\x00" + tail


@st.composite
def _server_extension(draw: st.DrawFn, ext_type: int) -> bytes:
    if ext_type == 43:  # supported_versions: one u16 (sometimes one byte more or less)
        return draw(st.sampled_from([b"\x03\x04", b"\x03", b"\x03\x04\x00", b""]))
    if ext_type == 16:
        names = draw(st.lists(st.sampled_from([b"h2", b"http/1.1", b"", b"\xff"]), max_size=2))
        fudge = st.sampled_from([0] * 8 + [-1, 1])
        return _framed(b"".join(_framed(n, 1, draw(fudge)) for n in names), 2, draw(fudge))
    return draw(st.binary(max_size=8))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_server_hello_bodies())
def test_quick_server_hello_parser_agrees_on_built_bodies(body: bytes) -> None:
    _quick_server_agrees(body)


def test_built_server_bodies_reach_both_parsers() -> None:
    seen = _reaches_both(_server_hello_bodies(), _quick_server_agrees, 300)
    assert seen[True] > 30 and seen[False] > 30, seen
