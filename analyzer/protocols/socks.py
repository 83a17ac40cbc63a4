"""SOCKS4, SOCKS4a and SOCKS5 handshakes, read passively from both directions of a connection.

Hand-written: the SOCKS libraries on PyPI (PySocks, python-socks, socksio) are client or server
endpoints that drive one side of the handshake; none reads a recorded handshake from the
client's and the server's bytes at once, which is what a capture gives. The formats are small:

- SOCKS4 (the NEC/Ying-Da Lee protocol note): ``04 CD PORT(2) IP(4) USERID NUL``, answered by
  ``00 CD PORT(2) IP(4)`` with CD 90 (granted) to 93.
- SOCKS4a: the same with IP ``0.0.0.x`` (x not 0) and ``HOSTNAME NUL`` after the user id: the
  proxy resolves the name.
- SOCKS5 (RFC 1928): a greeting ``05 N METHODS``, the server's choice ``05 METHOD``, for method 2
  the username/password subnegotiation of RFC 1929 (``01 ULEN UNAME PLEN PASSWD`` answered by
  ``01 STATUS``; the password is skipped and never kept), then ``05 CMD 00 ATYP ADDR PORT`` with
  ATYP 1 (IPv4), 3 (a name the proxy resolves) or 4 (IPv6), answered in the same shape with REP 0
  on success.

``parse_handshake(client, server)`` is fed the first bytes of each direction (from the start of
the connection, as much as has arrived) and returns what they hold so far; ``looks_like_socks``
decides from the client's first bytes whether a connection starts with a SOCKS handshake.
Malformed bytes raise ``SocksError`` (a ``ParseError``) and nothing else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Literal

from ..base.errors import ParseError

SocksKind = Literal["socks4", "socks5"]

CONNECT, BIND, UDP_ASSOCIATE = 1, 2, 3
METHOD_NONE, METHOD_GSSAPI, METHOD_USERPASS, METHOD_REFUSED = 0x00, 0x01, 0x02, 0xFF
ATYP_IPV4, ATYP_NAME, ATYP_IPV6 = 1, 3, 4
SOCKS4_GRANTED = 90
MAX_ID = 255  # SOCKS4 user id and SOCKS4a host name: no length byte, so bound the NUL search

SOCKS4_REPLIES = {90: "request granted", 91: "request rejected or failed",
                  92: "no identd on the client", 93: "identd reported a different user id"}
SOCKS5_REPLIES = {0: "succeeded", 1: "general SOCKS server failure",
                  2: "connection not allowed by ruleset", 3: "network unreachable",
                  4: "host unreachable", 5: "connection refused", 6: "TTL expired",
                  7: "command not supported", 8: "address type not supported"}
COMMANDS = {CONNECT: "CONNECT", BIND: "BIND", UDP_ASSOCIATE: "UDP ASSOCIATE"}


class SocksError(ParseError):
    """Bytes that are not a well-formed SOCKS handshake: the only exception this module raises."""


@dataclass(frozen=True, slots=True)
class SocksRequest:
    """What the client asked the proxy for."""

    version: int                 # 4 (SOCKS4 and 4a) or 5
    command: int                 # CONNECT, BIND, UDP_ASSOCIATE
    port: int
    address: str | None          # the destination address, when the client resolved the name
    hostname: str | None         # the destination name, when the proxy resolves it (4a, ATYP 3)
    length: int                  # client bytes of the whole handshake: the tunnel starts there
    userid: str | None = None    # SOCKS4 USERID
    methods: tuple[int, ...] = ()  # SOCKS5 greeting
    username: str | None = None  # RFC 1929 user name (the password is never stored)

    @property
    def kind(self) -> SocksKind:
        return "socks4" if self.version == 4 else "socks5"

    @property
    def variant(self) -> str:
        """``socks4``, ``socks4a``, ``socks5`` or ``socks5h`` (a name sent for the proxy to
        resolve), the names curl and Go give these schemes."""
        if self.version == 4:
            return "socks4a" if self.hostname else "socks4"
        return "socks5h" if self.hostname else "socks5"

    @property
    def target(self) -> str:
        return self.hostname or self.address or ""

    @property
    def command_name(self) -> str:
        return COMMANDS.get(self.command, f"command {self.command}")


@dataclass(frozen=True, slots=True)
class SocksReply:
    """The server's answer: ``granted`` when the tunnel is open."""

    version: int
    granted: bool
    stage: Literal["method", "auth", "reply"]  # the message that said no (or "reply")
    code: int                    # REP (SOCKS5), CD (SOCKS4), METHOD or auth STATUS
    length: int                  # server bytes of the whole handshake: the tunnel starts there
    method: int | None = None    # SOCKS5 method the server chose
    bound_address: str | None = None
    bound_port: int | None = None

    @property
    def reason(self) -> str:
        if self.stage == "method":
            return "no acceptable authentication method"
        if self.stage == "auth":
            return f"authentication failed (status {self.code})"
        table = SOCKS4_REPLIES if self.version == 4 else SOCKS5_REPLIES
        return table.get(self.code, f"reply code {self.code}")


@dataclass(frozen=True, slots=True)
class SocksHandshake:
    """A handshake as far as the bytes go: ``request``/``reply`` are None until complete."""

    version: int
    request: SocksRequest | None = None
    reply: SocksReply | None = None
    method: int | None = None    # SOCKS5 method the server chose, once seen
    # Why the tunnel cannot be followed although nothing is malformed (GSSAPI encapsulation...)
    unsupported: str | None = None


def looks_like_socks(first: bytes) -> bool:
    """True when a connection's first client bytes are a SOCKS4/4a request or a SOCKS5 greeting
    (with, when more bytes came along, a well-formed continuation). Strict on purpose: TLS
    (0x16), HTTP (a letter) and DNS-over-TCP on port 53 are decided before this is asked, and a
    binary protocol that happens to start with 04 or 05 must still not pass."""
    if len(first) < 3 or first[0] not in (4, 5):
        return False
    try:
        if first[0] == 4:
            if first[1] not in (CONNECT, BIND) or len(first) < 9:
                return False
            request = _socks4_request(first)
            return request is not None and (request.userid or "").isprintable()
        methods = _greeting(first)
        if methods is None or len(set(methods)) != len(methods):
            return False
        if not all(m <= 0x09 or 0x80 <= m <= 0xFE for m in methods):
            return False
        if len(first) > 2 + len(methods):
            _client5(first, None)  # what follows must parse too
        return True
    except SocksError:
        return False


def parse_handshake(client: bytes, server: bytes) -> SocksHandshake:
    """The handshake in the first bytes of each direction (either may be incomplete)."""
    if not client:
        raise SocksError("no client bytes")
    if client[0] == 4:
        request = _socks4_request(client)
        reply = _socks4_reply(server) if request is not None else None
        return SocksHandshake(4, request, reply)
    if client[0] != 5:
        raise SocksError(f"not a SOCKS handshake: version byte {client[0]:#04x}")
    method = server[1] if len(server) >= 2 else None
    if server[:1] not in (b"", b"\x05"):
        raise SocksError(f"SOCKS5 method selection with version {server[0]:#04x}")
    methods = _greeting(client)
    if methods is not None and method is not None and method != METHOD_REFUSED \
            and method not in methods:
        raise SocksError(f"SOCKS5 server chose method {method:#04x}, which was not offered")
    if method not in (None, METHOD_NONE, METHOD_USERPASS, METHOD_REFUSED):
        return SocksHandshake(5, None, None, method,
                              unsupported=f"SOCKS5 method {method:#04x} (encapsulated, not followed)")
    request = _client5(client, method)
    reply = _server5(server) if method is not None else None
    return SocksHandshake(5, request, reply, method)


# -- SOCKS4 / 4a -------------------------------------------------------------------------------------
def _nul_string(data: bytes, start: int, what: str) -> tuple[str, int] | None:
    """A NUL-terminated string at ``start``: (text, index after the NUL), or None if incomplete."""
    end = data.find(b"\x00", start, start + MAX_ID + 1)
    if end < 0:
        if len(data) - start > MAX_ID:
            raise SocksError(f"SOCKS4 {what} longer than {MAX_ID} bytes")
        return None
    return data[start:end].decode("latin-1"), end + 1


def _socks4_request(data: bytes) -> SocksRequest | None:
    if len(data) < 9:
        return None
    command = data[1]
    if command not in (CONNECT, BIND):
        raise SocksError(f"SOCKS4 command {command} is not CONNECT or BIND")
    port = int.from_bytes(data[2:4], "big")
    ip = data[4:8]
    got = _nul_string(data, 8, "user id")
    if got is None:
        return None
    userid, end = got
    hostname = None
    address: str | None = str(ipaddress.IPv4Address(ip))
    if ip[:3] == b"\x00\x00\x00" and ip[3] != 0:  # SOCKS4a: the name follows the user id
        got = _nul_string(data, end, "host name")
        if got is None:
            return None
        name, end = got
        hostname, address = _hostname(name.encode("latin-1")), None
    return SocksRequest(4, command, port, address, hostname, end, userid=userid)


def _socks4_reply(data: bytes) -> SocksReply | None:
    if len(data) < 8:
        return None
    # The protocol note says VN is 0; a few servers echo 4.
    if data[0] not in (0, 4):
        raise SocksError(f"SOCKS4 reply with version {data[0]:#04x}")
    code = data[1]
    if code not in SOCKS4_REPLIES:
        raise SocksError(f"SOCKS4 reply code {code} is not 90..93")
    return SocksReply(4, code == SOCKS4_GRANTED, "reply", code, 8,
                      bound_address=str(ipaddress.IPv4Address(data[4:8])),
                      bound_port=int.from_bytes(data[2:4], "big"))


# -- SOCKS5 ------------------------------------------------------------------------------------------
def _greeting(data: bytes) -> tuple[int, ...] | None:
    if len(data) < 2:
        return None
    count = data[1]
    if count == 0:
        raise SocksError("SOCKS5 greeting offers no method")
    if len(data) < 2 + count:
        return None
    return tuple(data[2:2 + count])


def _client5(data: bytes, method: int | None) -> SocksRequest | None:
    """Greeting, optional RFC 1929 subnegotiation, request. ``method`` is the server's choice
    when known; without it the byte after the greeting tells (01 subnegotiation, 05 request)."""
    methods = _greeting(data)
    if methods is None:
        return None
    pos = 2 + len(methods)
    if pos >= len(data):
        return None
    username = None
    if method == METHOD_USERPASS or (method is None and data[pos] == 1):
        if METHOD_USERPASS not in methods:
            raise SocksError("SOCKS5 username/password sent but not offered")
        auth = _userpass(data, pos)
        if auth is None:
            return None
        username, pos = auth
        if pos >= len(data):
            return None
    return _request5(data, pos, methods, username)


def _userpass(data: bytes, pos: int) -> tuple[str, int] | None:
    """RFC 1929: (user name, index after the password). The password is skipped unread."""
    if data[pos] != 1:
        raise SocksError(f"RFC 1929 subnegotiation with version {data[pos]:#04x}")
    if len(data) < pos + 2:
        return None
    ulen = data[pos + 1]
    if len(data) < pos + 3 + ulen:
        return None
    username = data[pos + 2:pos + 2 + ulen].decode("latin-1")
    plen = data[pos + 2 + ulen]
    end = pos + 3 + ulen + plen
    if len(data) < end:
        return None
    return username, end


def _address(data: bytes, pos: int, what: str) -> tuple[int, str, int] | None:
    """ATYP, address (or name) and port at ``pos``: (atyp, text, end), None if incomplete."""
    if len(data) <= pos:
        return None
    atyp = data[pos]
    if atyp == ATYP_IPV4:
        end = pos + 1 + 4
        text = str(ipaddress.IPv4Address(data[pos + 1:end])) if len(data) >= end else ""
    elif atyp == ATYP_IPV6:
        end = pos + 1 + 16
        text = str(ipaddress.IPv6Address(data[pos + 1:end])) if len(data) >= end else ""
    elif atyp == ATYP_NAME:
        if len(data) <= pos + 1:
            return None
        end = pos + 2 + data[pos + 1]
        text = _hostname(data[pos + 2:end]) if len(data) >= end else ""
    else:
        raise SocksError(f"SOCKS5 {what} with address type {atyp}")
    if len(data) < end + 2:
        return None
    return atyp, text, end + 2


def _request5(data: bytes, pos: int, methods: tuple[int, ...],
              username: str | None) -> SocksRequest | None:
    head = data[pos:pos + 3]
    if head[:1] != b"\x05":
        raise SocksError(f"SOCKS5 request with version {data[pos]:#04x}")
    if len(head) < 3:
        return None
    if head[1] not in COMMANDS:
        raise SocksError(f"SOCKS5 command {head[1]} is not CONNECT, BIND or UDP ASSOCIATE")
    if head[2] != 0:
        raise SocksError("SOCKS5 request with a non-zero reserved byte")
    got = _address(data, pos + 3, "request")
    if got is None:
        return None
    atyp, text, end = got
    port = int.from_bytes(data[end - 2:end], "big")
    name = text if atyp == ATYP_NAME else None
    return SocksRequest(5, head[1], port, None if name else text, name, end, methods=methods,
                        username=username)


def _server5(data: bytes) -> SocksReply | None:
    """Method choice, RFC 1929 status when method 2, reply."""
    if len(data) < 2:
        return None
    method = data[1]
    if method == METHOD_REFUSED:
        return SocksReply(5, False, "method", method, 2, method=method)
    pos = 2
    if method == METHOD_USERPASS:
        if len(data) < 4:
            return None
        if data[2] not in (1, 5):  # RFC 1929 says 1; some servers answer with 5
            raise SocksError(f"RFC 1929 status with version {data[2]:#04x}")
        if data[3] != 0:
            return SocksReply(5, False, "auth", data[3], 4, method=method)
        pos = 4
    head = data[pos:pos + 3]
    if not head:
        return None
    if head[0] != 5:
        raise SocksError(f"SOCKS5 reply with version {head[0]:#04x}")
    if len(head) < 3:
        return None
    if head[2] != 0:
        raise SocksError("SOCKS5 reply with a non-zero reserved byte")
    got = _address(data, pos + 3, "reply")
    if got is None:
        return None
    _atyp, text, end = got
    return SocksReply(5, head[1] == 0, "reply", head[1], end, method=method, bound_address=text,
                      bound_port=int.from_bytes(data[end - 2:end], "big"))


def _hostname(raw: bytes) -> str:
    """A destination name as the client sent it: printable ASCII, lower-cased, no final dot."""
    if not raw or not all(0x21 <= b <= 0x7E for b in raw):
        raise SocksError(f"SOCKS destination name {raw[:40]!r} is not a printable host name")
    return raw.decode("ascii").rstrip(".").lower()
