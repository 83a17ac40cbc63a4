"""Hostile bytes into the SOCKS parser: a handshake (complete or not) or SocksError, nothing else."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer.protocols.socks import (
    SocksError,
    SocksHandshake,
    SocksReply,
    SocksRequest,
    looks_like_socks,
    parse_handshake,
)

from .test_socks import (
    AUTH,
    CH,
    CHOICE,
    GREET,
    GREET_AUTH,
    REPLY_OK,
    REQ_NAME,
    REQ_V6,
    SOCKS4_OK,
    SOCKS4_REQ,
    SOCKS4A_REQ,
)

FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SEEDS = [(SOCKS4_REQ + CH, SOCKS4_OK), (SOCKS4A_REQ, SOCKS4_OK), (GREET + REQ_NAME + CH, CHOICE + REPLY_OK),
         (GREET + REQ_V6, CHOICE + REPLY_OK),
         (GREET_AUTH + AUTH + REQ_NAME, b"\x05\x02\x01\x00" + REPLY_OK)]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(draw(st.integers(0, 4))):
        pos = draw(st.integers(0, max(0, len(out) - 1)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and out:
            out[pos] = draw(st.integers(0, 255))
        elif action == "insert":
            out[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif action == "delete" and out:
            del out[pos:pos + draw(st.integers(1, 6))]
        else:
            del out[pos:]
    return bytes(out)


def check(client: bytes, server: bytes) -> None:
    try:
        hs = parse_handshake(client, server)
    except SocksError:
        return
    assert isinstance(hs, SocksHandshake)
    if hs.request is not None:
        assert isinstance(hs.request, SocksRequest)
        assert 0 < hs.request.length <= len(client)
        assert 0 <= hs.request.port <= 65535
        _ = (hs.request.variant, hs.request.target, hs.request.command_name, hs.request.kind)
    if hs.reply is not None:
        assert isinstance(hs.reply, SocksReply)
        assert 0 < hs.reply.length <= len(server)
        assert hs.reply.reason


@FUZZ
@given(st.data())
def test_mutated_handshakes(data: st.DataObject) -> None:
    client, server = data.draw(st.sampled_from(SEEDS))
    client = data.draw(mutated(client))
    server = data.draw(mutated(server))
    looks_like_socks(client)
    check(client, server)


@FUZZ
@given(st.binary(max_size=64), st.binary(max_size=64))
def test_random_bytes(client: bytes, server: bytes) -> None:
    assert isinstance(looks_like_socks(client), bool)
    check(client, server)
