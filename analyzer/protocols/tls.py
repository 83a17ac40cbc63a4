"""TLS ClientHello and server first flight (ServerHello, Certificate, Alert), from raw stream bytes.

The record and handshake framing and the extension walk are written by hand: no maintained Python
library parses a ClientHello's extensions into the fields JA3/JA4 need without a live connection
(``ssl`` only sees its own handshakes; dpkt's TLS module has no ALPN, supported_versions or
signature_algorithms and raises assorted exceptions on hostile bytes). Certificates are read
with ``cryptography`` (see ``x509.py``). Every parser here raises only ``ParseError``.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from ..base.errors import ParseError
from .certificate import CertificateInfo
from .tls_fingerprint import is_grease, ja3_hash, ja3_string, ja4_parts, ja4_version
from .x509 import certificate_info

__all__ = [
    "CertificateInfo", "ClientHello", "ServerFlight", "ServerHello", "alpn_text", "is_grease",
    "parse_client_hello", "parse_server_flight", "tls_record_start", "version_name",
]

_RECORD_HEADER = struct.Struct("!BHH")  # content type, legacy record version, length
_HANDSHAKE_HEADER = struct.Struct("!I")  # msg_type (high byte) and a 24-bit length
_U16 = struct.Struct("!H")
_ALERT = struct.Struct("!BB")  # level, description

CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA = 20, 21, 22, 23
HS_CLIENT_HELLO, HS_SERVER_HELLO, HS_CERTIFICATE, HS_SERVER_HELLO_DONE = 1, 2, 11, 14

EXT_SERVER_NAME, EXT_SUPPORTED_GROUPS, EXT_EC_POINT_FORMATS = 0, 10, 11
EXT_SIGNATURE_ALGORITHMS, EXT_ALPN, EXT_SUPPORTED_VERSIONS = 13, 16, 43

# RFC 8446 section 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HELLO_RETRY_RANDOM = bytes.fromhex(
    "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c")

# A record holds at most 2^14 bytes of plaintext plus 2048 of expansion (RFC 5246 6.2.3).
MAX_RECORD = (1 << 14) + 2048
# Real ClientHellos are a few KB (post-quantum key shares included); anything this big is hostile.
MAX_CLIENT_HELLO = 1 << 16
# Certificate chains are larger; beyond this the length field is not believable.
MAX_SERVER_MESSAGE = 1 << 20

_VERSION_NAMES = {
    0x0304: "TLS 1.3", 0x0303: "TLS 1.2", 0x0302: "TLS 1.1", 0x0301: "TLS 1.0",
    0x0300: "SSL 3.0", 0x0002: "SSL 2.0",
    0xFEFF: "DTLS 1.0", 0xFEFD: "DTLS 1.2", 0xFEFC: "DTLS 1.3",
}


def version_name(v: int) -> str:
    return _VERSION_NAMES.get(v, f"0x{v:04x}")


class _Reader:
    """A bounds-checked cursor: reading past the end is a ParseError naming what was being read."""

    __slots__ = ("_buf", "_pos", "_what")

    def __init__(self, buf: bytes, what: str) -> None:
        self._buf, self._pos, self._what = buf, 0, what

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._buf):
            raise ParseError(f"{self._what}: truncated (need {n} bytes at offset {self._pos})")
        chunk = self._buf[self._pos:end]
        self._pos = end
        return chunk

    def take_all(self) -> bytes:
        return self.take(self.remaining)

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(_U16.unpack(self.take(2))[0])

    def u24(self) -> int:
        return int.from_bytes(self.take(3), "big")

    def vec(self, len_bytes: int, what: str) -> _Reader:
        n = int.from_bytes(self.take(len_bytes), "big")
        return _Reader(self.take(n), what)

    def u16_list(self) -> tuple[int, ...]:
        if self.remaining % 2:
            raise ParseError(f"{self._what}: odd length {self.remaining} for a list of u16")
        data = self.take(self.remaining)
        return struct.unpack(f">{len(data) >> 1}H", data)

    @property
    def remaining(self) -> int:
        return len(self._buf) - self._pos

    def expect_end(self) -> None:
        if self.remaining:
            raise ParseError(f"{self._what}: {self.remaining} unexpected trailing bytes")


def tls_record_start(data: bytes) -> bool:
    """True if ``data`` starts like a TLS handshake record (0x16 0x03 0x00-0x04)."""
    return len(data) >= 3 and data[0] == CT_HANDSHAKE and data[1] == 3 and data[2] <= 4


def _records(data: bytes) -> Iterator[tuple[int, bytes]]:
    """Complete records from the start of the stream, in order, stopping at a partial one.

    Lazy, so bytes after what a caller needs (later records, a cut-off tail) are never judged.
    """
    pos = 0
    while pos < len(data):
        head = data[pos:pos + _RECORD_HEADER.size]
        if head[0] not in (CT_CHANGE_CIPHER_SPEC, CT_ALERT, CT_HANDSHAKE, CT_APPLICATION_DATA):
            raise ParseError(f"not a TLS record: content type {head[0]} at offset {pos}")
        if len(head) >= 2 and head[1] != 3:
            raise ParseError(f"not a TLS record: version major {head[1]} at offset {pos}")
        if len(head) < _RECORD_HEADER.size:
            return
        ctype, _version, length = _RECORD_HEADER.unpack(head)
        if length > MAX_RECORD:
            raise ParseError(f"TLS record length {length} exceeds the maximum {MAX_RECORD}")
        end = pos + _RECORD_HEADER.size + length
        if end > len(data):
            return
        yield ctype, data[pos + _RECORD_HEADER.size:end]
        pos = end


def _handshake_messages(payload: bytes, limit: int) -> tuple[list[tuple[int, bytes]], bool]:
    """Split handshake messages out of concatenated handshake record payloads.

    A message may span records and a record may hold several messages; the flag says whether the
    last message is still incomplete.
    """
    messages: list[tuple[int, bytes]] = []
    pos = 0
    while pos < len(payload):
        if len(payload) - pos < _HANDSHAKE_HEADER.size:
            return messages, True
        (word,) = _HANDSHAKE_HEADER.unpack_from(payload, pos)
        msg_type, length = word >> 24, word & 0xFFFFFF
        if length > limit:
            raise ParseError(f"handshake message type {msg_type} claims {length} bytes (limit {limit})")
        end = pos + _HANDSHAKE_HEADER.size + length
        if end > len(payload):
            return messages, True
        messages.append((msg_type, payload[pos + _HANDSHAKE_HEADER.size:end]))
        pos = end
    return messages, False


def _extensions(r: _Reader, what: str) -> list[tuple[int, bytes]]:
    """The extension block (absent in old hellos) as (type, body) in wire order.

    Walked with plain offsets, not a _Reader per extension: a ClientHello has a dozen or more,
    most of which only count for the fingerprints. The errors are _Reader's, word for word.
    """
    if not r.remaining:
        return []
    where = f"{what} extensions"
    buf = r.vec(2, where).take_all()
    r.expect_end()
    n = len(buf)
    pos = 0
    out = []
    while pos < n:
        if pos + 4 > n:
            at = pos if pos + 2 > n else pos + 2
            raise ParseError(f"{where}: truncated (need 2 bytes at offset {at})")
        ext_type = (buf[pos] << 8) | buf[pos + 1]
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        end = pos + 4 + length
        if end > n:
            raise ParseError(f"{where}: truncated (need {length} bytes at offset {pos + 4})")
        out.append((ext_type, buf[pos + 4:end]))
        pos = end
    return out


def _host_name(body: _Reader) -> str | None:
    names = body.vec(2, "server_name list")
    body.expect_end()
    host = None
    while names.remaining:
        name_type = names.u8()
        name = names.vec(2, "server_name entry").take_all()
        if name_type == 0 and host is None:
            try:
                host = name.decode("ascii").lower()
            except UnicodeDecodeError:
                raise ParseError("server_name host_name is not ASCII") from None
    return host


def _alpn_list(body: _Reader) -> tuple[bytes, ...]:
    protocols = body.vec(2, "ALPN list")
    body.expect_end()
    out = []
    while protocols.remaining:
        out.append(protocols.vec(1, "ALPN protocol").take_all())
    return tuple(out)


def _u16_vector(body: _Reader, len_bytes: int, what: str) -> tuple[int, ...]:
    values = body.vec(len_bytes, what).u16_list()
    body.expect_end()
    return values


def alpn_text(raw: bytes) -> str:
    """An ALPN protocol name as text: UTF-8 where it is, ``\\xNN`` for the other bytes."""
    return raw.decode("utf-8", "backslashreplace")


@dataclass(frozen=True, slots=True)
class ClientHello:
    """A parsed ClientHello: what JA3/JA4 need, the SNI and ALPN, and the fingerprints."""

    legacy_version: int
    versions: tuple[int, ...]  # supported_versions extension values as sent (GREASE included), () if absent
    ciphers: tuple[int, ...]  # as sent, GREASE included
    extensions: tuple[int, ...]  # extension types in wire order, GREASE included
    sni: str | None  # server_name host_name, lower-cased; None if absent
    alpn: tuple[str, ...]
    groups: tuple[int, ...]  # supported_groups
    ec_point_formats: tuple[int, ...]
    sig_algs: tuple[int, ...]  # signature_algorithms as sent
    ja3: str  # md5 hex
    ja3_string: str
    ja4: str  # e.g. t13d1312h2_f57a46bbacb6_f50d94e863eb
    ja4_r: str  # JA4 raw (unhashed) form as FoxIO prints it

    @property
    def max_version(self) -> int:
        """Highest non-GREASE version offered."""
        return ja4_version(self.legacy_version, self.versions)

    @property
    def max_version_name(self) -> str:
        return version_name(self.max_version)


# the extensions whose content a ClientHello record keeps (the rest only count by type)
_HELLO_READS = frozenset({EXT_SERVER_NAME, EXT_ALPN, EXT_SUPPORTED_GROUPS, EXT_SIGNATURE_ALGORITHMS,
                          EXT_SUPPORTED_VERSIONS, EXT_EC_POINT_FORMATS})


def _client_hello_body(body: bytes) -> ClientHello:
    quick = _client_hello_quick(body)
    return quick if quick is not None else _client_hello_careful(body)


def _client_hello_quick(body: bytes) -> ClientHello | None:
    """``_client_hello_careful(body)`` for a well-formed body, by plain offsets and no
    ``_Reader`` per field (a third of the time); None at the first thing out of the ordinary,
    and the careful parser then gives the result or says what is wrong, word for word."""
    n = len(body)
    if n < 35:
        return None
    legacy_version = (body[0] << 8) | body[1]
    p = 35 + body[34]  # after the random and the session id
    if body[34] > 32 or p + 2 > n:
        return None
    length = (body[p] << 8) | body[p + 1]
    p += 2
    if length & 1 or p + length > n:
        return None
    ciphers = struct.unpack_from(f">{length >> 1}H", body, p)
    p += length
    if p >= n:
        return None
    p += 1 + body[p]  # compression methods
    if p > n:
        return None
    sni: str | None = None
    alpn_raw: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    extensions = _quick_extensions(body, p)
    if extensions is None:
        return None
    seen: set[int] = set()
    for ext_type, q, end in extensions:
        if ext_type in seen or ext_type not in _HELLO_READS:
            seen.add(ext_type)
            continue  # a repeated extension is counted (JA3/JA4 do) but the first one is used
        seen.add(ext_type)
        if ext_type == EXT_SERVER_NAME:
            if q == end:
                continue
            if q + 2 > end or q + 2 + ((body[q] << 8) | body[q + 1]) != end:
                return None
            q += 2
            while q < end:
                if q + 3 > end:
                    return None
                stop = q + 3 + ((body[q + 1] << 8) | body[q + 2])
                if stop > end:
                    return None
                if body[q] == 0 and sni is None:
                    name = body[q + 3:stop]
                    if not name.isascii():
                        return None
                    sni = name.decode("ascii").lower()
                q = stop
        elif ext_type == EXT_ALPN:
            protocols = _quick_alpn(body, q, end)
            if protocols is None:
                return None
            alpn_raw = protocols
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            if q >= end or q + 1 + body[q] != end or body[q] & 1:
                return None
            versions = struct.unpack_from(f">{body[q] >> 1}H", body, q + 1)
        elif ext_type == EXT_EC_POINT_FORMATS:
            if q >= end or q + 1 + body[q] != end:
                return None
            point_formats = tuple(body[q + 1:end])
        else:  # supported_groups, signature_algorithms: a u16 length, then u16 values
            if q + 2 > end:
                return None
            length = (body[q] << 8) | body[q + 1]
            if q + 2 + length != end or length & 1:
                return None
            values = struct.unpack_from(f">{length >> 1}H", body, q + 2)
            if ext_type == EXT_SUPPORTED_GROUPS:
                groups = values
            else:
                sig_algs = values
    return _hello(legacy_version, versions, ciphers, tuple(e[0] for e in extensions), sni,
                  alpn_raw, groups, point_formats, sig_algs)


def _quick_extensions(body: bytes, p: int) -> list[tuple[int, int, int]] | None:
    """The extension block that starts at ``p`` and ends the body, as (type, start, end)
    offsets of each extension's data in wire order ([] when the body ends at ``p``: an old
    hello without extensions); None when it is not well formed (_extensions says how)."""
    n = len(body)
    if p == n:
        return []
    if p + 2 > n or p + 2 + ((body[p] << 8) | body[p + 1]) != n:
        return None
    p += 2
    out = []
    while p < n:
        if p + 4 > n:
            return None
        end = p + 4 + ((body[p + 2] << 8) | body[p + 3])
        if end > n:
            return None
        out.append(((body[p] << 8) | body[p + 1], p + 4, end))
        p = end
    return out


def _quick_alpn(body: bytes, q: int, end: int) -> tuple[bytes, ...] | None:
    """An ALPN extension's protocol names (a u16 list of u8-framed names at ``body[q:end]``),
    or None when it is not well formed (_alpn_list says how)."""
    if q + 2 > end or q + 2 + ((body[q] << 8) | body[q + 1]) != end:
        return None
    q += 2
    protocols = []
    while q < end:
        stop = q + 1 + body[q]
        if stop > end:
            return None
        protocols.append(body[q + 1:stop])
        q = stop
    return tuple(protocols)


def _hello(legacy_version: int, versions: tuple[int, ...], ciphers: tuple[int, ...],
           extensions: tuple[int, ...], sni: str | None, alpn_raw: tuple[bytes, ...],
           groups: tuple[int, ...], point_formats: tuple[int, ...],
           sig_algs: tuple[int, ...]) -> ClientHello:
    text, ja3, ja4, ja4_r = _fingerprints(legacy_version, versions, ciphers, extensions, groups,
                                          point_formats, sig_algs,
                                          alpn_raw[0] if alpn_raw else None)
    return ClientHello(
        legacy_version=legacy_version, versions=versions, ciphers=ciphers, extensions=extensions,
        sni=sni, alpn=tuple(alpn_text(a) for a in alpn_raw),
        groups=groups, ec_point_formats=point_formats, sig_algs=sig_algs,
        ja3=ja3, ja3_string=text, ja4=ja4, ja4_r=ja4_r,
    )


def _client_hello_careful(body: bytes) -> ClientHello:
    """The reference parser: every field through a bounds-checked ``_Reader``, whose errors
    say what was being read and where."""
    r = _Reader(body, "ClientHello")
    legacy_version = r.u16()
    r.take(32)  # random
    if r.vec(1, "ClientHello session_id").remaining > 32:
        raise ParseError("ClientHello session_id longer than 32 bytes")
    ciphers = r.vec(2, "ClientHello cipher_suites").u16_list()
    r.vec(1, "ClientHello compression_methods")
    sni: str | None = None
    alpn_raw: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    point_formats: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    ext_types: list[int] = []
    seen: set[int] = set()
    for ext_type, raw in _extensions(r, "ClientHello"):
        ext_types.append(ext_type)
        if ext_type in seen or ext_type not in _HELLO_READS:
            seen.add(ext_type)
            continue  # a repeated extension is counted (JA3/JA4 do) but the first one is used
        seen.add(ext_type)
        ext = _Reader(raw, f"ClientHello extension {ext_type}")
        if ext_type == EXT_SERVER_NAME and ext.remaining:
            sni = _host_name(ext)
        elif ext_type == EXT_ALPN:
            alpn_raw = _alpn_list(ext)
        elif ext_type == EXT_SUPPORTED_GROUPS:
            groups = _u16_vector(ext, 2, "supported_groups")
        elif ext_type == EXT_SIGNATURE_ALGORITHMS:
            sig_algs = _u16_vector(ext, 2, "signature_algorithms")
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            versions = _u16_vector(ext, 1, "supported_versions")
        elif ext_type == EXT_EC_POINT_FORMATS:
            point_formats = tuple(ext.vec(1, "ec_point_formats").take_all())
            ext.expect_end()
    return _hello(legacy_version, versions, ciphers, tuple(ext_types), sni, alpn_raw, groups,
                  point_formats, sig_algs)


@functools.lru_cache(maxsize=1024)
def _fingerprints(legacy_version: int, versions: tuple[int, ...], ciphers: tuple[int, ...],
                  extensions: tuple[int, ...], groups: tuple[int, ...],
                  point_formats: tuple[int, ...], sig_algs: tuple[int, ...],
                  first_alpn: bytes | None) -> tuple[str, str, str, str]:
    """(JA3 string, JA3, JA4, JA4_r), remembered: a program sends the same fields on every
    connection it opens, and the strings and hashes are a third of a ClientHello's parse."""
    text = ja3_string(legacy_version, ciphers, extensions, groups, point_formats)
    ja4, ja4_r = ja4_parts(legacy_version=legacy_version, versions=versions, ciphers=ciphers,
                           extensions=extensions, sig_algs=sig_algs, first_alpn=first_alpn)
    return text, ja3_hash(text), ja4, ja4_r


def parse_client_hello(data: bytes) -> ClientHello | None:
    """Parse the ClientHello at the start of a client->server stream; None if more bytes are needed."""
    if not data:
        return None
    if data[0] != CT_HANDSHAKE:
        raise ParseError(f"not a TLS handshake record (first byte 0x{data[0]:02x})")
    handshake = bytearray()
    for ctype, payload in _records(data):
        if ctype != CT_HANDSHAKE:
            raise ParseError(f"record type {ctype} before the ClientHello was complete")
        handshake += payload
        messages, _incomplete = _handshake_messages(bytes(handshake), MAX_CLIENT_HELLO)
        if messages:
            msg_type, body = messages[0]
            if msg_type != HS_CLIENT_HELLO:
                raise ParseError(f"first handshake message is type {msg_type}, not ClientHello")
            return _client_hello_body(body)
    if len(handshake) >= 1 and handshake[0] != HS_CLIENT_HELLO:
        raise ParseError(f"first handshake message is type {handshake[0]}, not ClientHello")
    if len(handshake) >= _HANDSHAKE_HEADER.size:
        _handshake_messages(bytes(handshake), MAX_CLIENT_HELLO)  # rejects an absurd length early
    return None


@dataclass(frozen=True, slots=True)
class ServerHello:
    """A parsed ServerHello: the version and cipher chosen."""

    legacy_version: int
    version: int  # negotiated: supported_versions extension if present, else legacy_version
    cipher: int
    alpn: str | None
    extensions: tuple[int, ...]
    is_hello_retry: bool  # HelloRetryRequest (the special random)


def _server_hello_body(body: bytes) -> ServerHello:
    quick = _server_hello_quick(body)
    return quick if quick is not None else _server_hello_careful(body)


def _server_hello_quick(body: bytes) -> ServerHello | None:
    """``_server_hello_careful(body)`` for a well-formed body, by plain offsets; None at the
    first thing out of the ordinary (the careful parser then decides, word for word)."""
    n = len(body)
    if n < 35 or body[34] > 32:
        return None
    p = 35 + body[34]  # after the version, the random and the session id
    if p + 3 > n:
        return None
    legacy_version = (body[0] << 8) | body[1]
    cipher = (body[p] << 8) | body[p + 1]
    p += 3  # and the compression method
    extensions = _quick_extensions(body, p)
    if extensions is None:
        return None
    version, alpn = legacy_version, None
    for ext_type, q, end in extensions:
        if ext_type == EXT_SUPPORTED_VERSIONS:
            if end - q != 2:
                return None
            version = (body[q] << 8) | body[q + 1]
        elif ext_type == EXT_ALPN:
            protocols = _quick_alpn(body, q, end)
            if protocols is None:
                return None
            alpn = alpn_text(protocols[0]) if protocols else None
    return ServerHello(legacy_version, version, cipher, alpn, tuple(e[0] for e in extensions),
                       body[2:34] == HELLO_RETRY_RANDOM)


def _server_hello_careful(body: bytes) -> ServerHello:
    """The reference parser (see _client_hello_careful)."""
    r = _Reader(body, "ServerHello")
    legacy_version = r.u16()
    random = r.take(32)
    if r.vec(1, "ServerHello session_id").remaining > 32:
        raise ParseError("ServerHello session_id longer than 32 bytes")
    cipher = r.u16()
    r.u8()  # compression method
    version, alpn, ext_types = legacy_version, None, []
    for ext_type, raw in _extensions(r, "ServerHello"):
        ext_types.append(ext_type)
        ext = _Reader(raw, f"ServerHello extension {ext_type}")
        if ext_type == EXT_SUPPORTED_VERSIONS:
            version = ext.u16()
            ext.expect_end()
        elif ext_type == EXT_ALPN:
            protocols = _alpn_list(ext)
            alpn = alpn_text(protocols[0]) if protocols else None
    return ServerHello(legacy_version=legacy_version, version=version, cipher=cipher, alpn=alpn,
                       extensions=tuple(ext_types), is_hello_retry=random == HELLO_RETRY_RANDOM)


def _certificate_body(body: bytes) -> tuple[tuple[CertificateInfo, ...], int]:
    """TLS 1.2 Certificate message: the parsed chain, and how many entries cryptography refused."""
    r = _Reader(body, "Certificate")
    chain = r.vec(3, "Certificate list")
    r.expect_end()
    certs, skipped = [], 0
    while chain.remaining:
        info = certificate_info(chain.vec(3, "Certificate entry").take_all())
        if info is None:
            skipped += 1
        else:
            certs.append(info)
    return tuple(certs), skipped


@dataclass(frozen=True, slots=True)
class ServerFlight:
    """The server's first flight: ServerHello, certificates, an alert, as far as seen."""

    server_hello: ServerHello | None  # the real ServerHello; the HelloRetryRequest if only that was seen
    certificates: tuple[CertificateInfo, ...]  # leaf first; () under TLS 1.3 (encrypted) or when unseen
    alert: tuple[int, int] | None  # (level, description) if the server sent an alert first
    complete: bool  # no more server bytes can add anything
    hello_retry: ServerHello | None = None  # the HelloRetryRequest, when the server sent one
    skipped_certificates: int = 0  # chain entries cryptography could not parse


class _FlightState:
    """Accumulates what the server's records show, in order, until nothing more can be learnt."""

    def __init__(self) -> None:
        self.server_hello: ServerHello | None = None
        self.hello_retry: ServerHello | None = None
        self.certificates: tuple[CertificateInfo, ...] = ()
        self.skipped = 0
        self.alert: tuple[int, int] | None = None
        self.complete = False
        self.handshake = bytearray()
        self.consumed = 0  # handshake bytes already turned into messages

    def on_record(self, ctype: int, payload: bytes) -> None:
        if ctype == CT_HANDSHAKE:
            self.handshake += payload
            self._drain_handshake()
        elif ctype == CT_ALERT:
            if len(payload) < _ALERT.size:
                raise ParseError(f"alert record of {len(payload)} bytes")
            if self.server_hello is None:
                self.alert = _ALERT.unpack_from(payload)
            self.complete = True
        elif ctype == CT_CHANGE_CIPHER_SPEC:
            # After a HelloRetryRequest the CCS is TLS 1.3 middlebox compatibility and the real
            # ServerHello is still to come in clear; anywhere else what follows is encrypted.
            if not (self.hello_retry is not None and self.server_hello is self.hello_retry):
                self.complete = True
        else:
            self.complete = True  # application data (or encrypted handshake): nothing readable

    def _drain_handshake(self) -> None:
        messages, _incomplete = _handshake_messages(bytes(self.handshake[self.consumed:]),
                                                    MAX_SERVER_MESSAGE)
        for msg_type, body in messages:
            self.consumed += _HANDSHAKE_HEADER.size + len(body)
            self._on_message(msg_type, body)
            if self.complete:
                return

    def _on_message(self, msg_type: int, body: bytes) -> None:
        if self.server_hello is None and msg_type != HS_SERVER_HELLO:
            raise ParseError(f"server's first handshake message is type {msg_type}, not ServerHello")
        if msg_type == HS_SERVER_HELLO:
            hello = _server_hello_body(body)
            self.server_hello = hello
            if hello.is_hello_retry:
                self.hello_retry = hello
            elif hello.version >= 0x0304:
                self.complete = True  # the rest of a TLS 1.3 server flight is encrypted
        elif msg_type == HS_CERTIFICATE:
            self.certificates, self.skipped = _certificate_body(body)
            self.complete = True
        elif msg_type == HS_SERVER_HELLO_DONE:
            self.complete = True  # e.g. an anonymous or PSK suite: no certificate will come

    def result(self) -> ServerFlight:
        return ServerFlight(server_hello=self.server_hello, certificates=self.certificates,
                            alert=self.alert, complete=self.complete,
                            hello_retry=self.hello_retry, skipped_certificates=self.skipped)


def parse_server_flight(data: bytes) -> ServerFlight:
    """Read the start of a server->client stream: ServerHello, certificate chain or alert."""
    if data and data[0] not in (CT_HANDSHAKE, CT_ALERT):
        raise ParseError(f"not a TLS server flight (first byte 0x{data[0]:02x})")
    state = _FlightState()
    for ctype, payload in _records(data):
        state.on_record(ctype, payload)
        if state.complete:
            break
    return state.result()
