"""Protocol events: what the engine reconstructs from packets, before any watch list applies.

An engine (the built-in dpkt one, or the tshark one) turns capture files into an ``Evidence``
bundle. Contacts, findings and filters are all derived from it, so two engines that produce the
same evidence produce the same report.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..base.model import CaptureStats, ProcessInfo, ProxyHop, Transport

if TYPE_CHECKING:
    from ..protocols.dns import DnsMessage
    from ..protocols.http import HttpRequest, HttpResponse
    from ..protocols.socks import SocksReply, SocksRequest
    from ..protocols.tls import ClientHello, ServerFlight

# An engine's progress callback: (capture, bytes_read, packets, exchanges); exchanges < 0 ends a capture.
ProgressFn = Callable[[str, int, int, int], None]


@dataclass(frozen=True, slots=True)
class FlowRef:
    """A connection seen from its client: who opened it (or sent the query) and to whom."""

    transport: Transport
    client: str
    client_port: int
    server: str
    server_port: int
    capture: str = ""

    @property
    def flow_id(self) -> str:
        """A stable id linking DNS, TLS and HTTP evidence of the same connection (like Zeek's uid)."""
        return _flow_id(self.capture, self.transport, self.client, self.client_port, self.server,
                        self.server_port)


@functools.lru_cache(maxsize=1 << 16)  # asked for many times per flow while building a report
def _flow_id(capture: str, transport: str, client: str, client_port: int, server: str,
             server_port: int) -> str:
    key = f"{capture}|{transport}|{client}|{client_port}|{server}|{server_port}"
    return "F" + hashlib.sha1(key.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class DnsExchange:
    """One DNS query and every response seen for it (more than one response is itself evidence).

    ``query_frame`` is None for a response whose query was never seen.
    """

    ts: float
    flow: FlowRef
    txid: int
    qname: str
    qtype: str
    query_frame: int | None
    responses: tuple[DnsMessage, ...] = ()
    response_frames: tuple[int, ...] = ()
    response_sources: tuple[str, ...] = ()  # address each response came from
    response_ts: tuple[float, ...] = ()

    @property
    def first_response(self) -> DnsMessage | None:
        return self.responses[0] if self.responses else None


@dataclass(frozen=True, slots=True)
class TlsSession:
    """A TLS ClientHello and, when seen, the server's first flight."""

    ts: float
    flow: FlowRef
    client_hello: ClientHello
    frames: tuple[int, ...]
    segments: int  # TCP segments the ClientHello was reassembled from
    server: ServerFlight | None = None
    server_frames: tuple[int, ...] = ()
    via_proxy: ProxyHop | None = None
    tunnel_host: str | None = None  # CONNECT target (or SOCKS host name) inside a proxy tunnel
    server_note: str | None = None  # e.g. the server answered in plaintext HTTP
    # HTTP/1.1 and HTTP/2 exchanges read inside the connection once a key log decrypted it
    requests: tuple[HttpExchange, ...] = ()
    # the destination address a SOCKS request gave (the client resolved the name itself)
    tunnel_address: str | None = None


@dataclass(frozen=True, slots=True)
class HttpExchange:
    """One HTTP/1.x request and its response on a connection (``response`` None when unseen)."""

    ts: float
    flow: FlowRef
    request: HttpRequest
    frames: tuple[int, ...]
    response: HttpResponse | None = None
    response_frames: tuple[int, ...] = ()
    via_proxy: ProxyHop | None = None  # request sent to a forward proxy (absolute URI or CONNECT)


@dataclass(frozen=True, slots=True)
class SocksExchange:
    """A SOCKS handshake at the start of a connection, and whether its tunnel was read.

    ``followed`` is true when a ClientHello or an HTTP request was read inside the tunnel (that
    evidence then carries the proxy as ``via_proxy``); ``reply`` is None when none was seen.
    """

    ts: float
    flow: FlowRef
    request: SocksRequest
    frames: tuple[int, ...]
    reply: SocksReply | None = None
    reply_frames: tuple[int, ...] = ()
    followed: bool = False
    note: str | None = None  # why the tunnel was not followed, when it was not


@dataclass(slots=True)
class Evidence:
    """Everything the engine found in one or more captures."""

    dns: list[DnsExchange] = field(default_factory=list)
    tls: list[TlsSession] = field(default_factory=list)
    http: list[HttpExchange] = field(default_factory=list)
    socks: list[SocksExchange] = field(default_factory=list)
    stats: list[CaptureStats] = field(default_factory=list)
    # Process information carried by the capture itself (pcapng comments), per flow id.
    flow_processes: dict[str, ProcessInfo] = field(default_factory=dict)

    def extend(self, other: Evidence) -> None:
        self.dns.extend(other.dns)
        self.tls.extend(other.tls)
        self.http.extend(other.http)
        self.socks.extend(other.socks)
        self.stats.extend(other.stats)
        self.flow_processes.update(other.flow_processes)
