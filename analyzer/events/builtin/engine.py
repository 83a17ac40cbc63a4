"""The built-in engine: transport segments in, protocol events (``Evidence``) out.

UDP DNS is matched by transaction id and 5-tuple; every TCP connection gets a small state
machine that recognises its protocol from the first client bytes (TLS, HTTP, DNS over TCP, a
SOCKS handshake), whatever the port, and stops looking at the connection once it has what it
needs, so bulk payload costs one dictionary lookup per packet. Tunnels are followed: the bytes
after an HTTP CONNECT's 2xx, or after a granted SOCKS reply, are read as TLS (or, for SOCKS, as
HTTP too) exactly as a direct connection's.
"""

from __future__ import annotations

import struct
from _socket import AF_INET, AF_INET6, inet_pton  # not socket.py: see packets/decode.py
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ...base.errors import ParseError
from ...base.model import ProcessInfo, ProxyHop, field_copier
from ...flows.reassembly import Chunk, FrameIndex, StreamBuffer
from ...packets.decode import TCP_ACK, TCP_FIN, TCP_RST, TCP_SYN, Segment
from ...protocols import dns as dnsp
from ...protocols import http as httpp
from ...protocols import tls as tlsp
from ..records import DnsExchange, Evidence, FlowRef, HttpExchange, SocksExchange, TlsSession
from .intern import Interner

if TYPE_CHECKING:
    from ...protocols import socks as socksp


def _socks() -> Any:
    """The SOCKS parser, imported at the first connection that may be SOCKS (most captures
    have none: 3 ms of start-up saved)."""
    from ...protocols import socks

    return socks

DNS_PORTS = frozenset({53, 5353})
CLIENT_HELLO_LIMIT = 64 * 1024     # a ClientHello never needs more
SERVER_FLIGHT_LIMIT = 128 * 1024   # ServerHello + certificate chain
SOCKS_LIMIT = 2048                 # a SOCKS handshake is at most ~1.1 KB in either direction
MAX_FLOWS = 200_000
MAX_DNS_PENDING = 100_000
DNS_LINGER = 30.0                  # seconds of capture time a query stays open for late answers
# A connection silent this long (capture time) is closed and emitted: what it said stays in the
# evidence and its buffers are freed. Longer than Go's 90 s idle-connection timeout, so a pooled
# connection that is reused is still the same flow.
FLOW_IDLE_TIMEOUT = 900.0
SWEEP_INTERVAL = 60.0              # capture seconds between scans for idle flows


DNS_BODIES = 4096                  # DNS message bodies remembered (at most ~2 MB of bytes)


# with_txid(msg, txid): the message with another ID (see field_copier)
_with_txid: Callable[[dnsp.DnsMessage, int], dnsp.DnsMessage] = field_copier(dnsp.DnsMessage,
                                                                             ("txid",))


@dataclass(slots=True)
class _DnsPending:
    """A DNS query waiting for its responses (emitted as a DnsExchange)."""

    flow: FlowRef
    txid: int
    qname: str
    qtype: str
    ts: float
    query_frame: int | None
    responses: list[dnsp.DnsMessage] = field(default_factory=list)
    frames: list[int] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    times: list[float] = field(default_factory=list)

    def freeze(self, intern: Interner | None = None) -> DnsExchange:
        sources = tuple(self.sources)
        return DnsExchange(self.ts, self.flow, self.txid, self.qname, self.qtype, self.query_frame,
                           tuple(self.responses), tuple(self.frames),
                           intern(sources) if intern is not None else sources, tuple(self.times))


@dataclass(slots=True)
class _Tls:
    """TLS state of a connection (or of a CONNECT tunnel inside one)."""

    client_buf: bytearray = field(default_factory=bytearray)
    server_buf: bytearray = field(default_factory=bytearray)
    client_base: int = 0      # stream offset where TLS starts (after a CONNECT header block)
    hello: tlsp.ClientHello | None = None
    hello_frames: tuple[int, ...] = ()
    hello_ts: float = 0.0
    server: tlsp.ServerFlight | None = None
    server_frames: tuple[int, ...] = ()
    server_base: int = 0
    client_done: bool = False
    server_done: bool = False
    server_note: str | None = None


@dataclass(slots=True)
class _Http:
    """HTTP state of a connection: a stream parser per direction and what they read."""

    client: httpp.HttpStreamParser = field(default_factory=lambda: httpp.HttpStreamParser(True))
    server: httpp.HttpStreamParser = field(default_factory=lambda: httpp.HttpStreamParser(False))
    requests: list[tuple[httpp.HttpRequest, float, tuple[int, ...]]] = field(default_factory=list)
    responses: list[tuple[httpp.HttpResponse, tuple[int, ...]]] = field(default_factory=list)
    client_seen: int = 0      # bytes fed to the client parser
    server_seen: int = 0
    client_base: int = 0      # stream offsets where HTTP starts (after a SOCKS handshake)
    server_base: int = 0


@dataclass(slots=True)
class _Socks:
    """A SOCKS handshake at the start of a connection; the tunnel after it is read as the
    connection's TLS or HTTP (``_TcpFlow.tls``/``http``), from ``client_end``/``server_end``."""

    client_buf: bytearray = field(default_factory=bytearray)
    server_buf: bytearray = field(default_factory=bytearray)
    ts: float = 0.0
    request: socksp.SocksRequest | None = None
    reply: socksp.SocksReply | None = None
    client_end: int | None = None   # stream offset where the client's tunnel bytes start
    server_end: int | None = None   # the same for the server, once the reply granted it
    inner: str | None = None        # "tls" | "http" | "other", from the first tunnel bytes
    note: str | None = None         # why the tunnel is not followed


@dataclass(slots=True)
class _TcpFlow:
    """One TCP connection: reassembly per direction and the state of the protocol it carries."""

    ref: FlowRef
    first_ts: float
    last_ts: float
    saw_syn: bool = False      # without it the capture may have started mid-connection
    c2s: StreamBuffer = field(default_factory=StreamBuffer)
    s2c: StreamBuffer = field(default_factory=StreamBuffer)
    c2s_frames: FrameIndex = field(default_factory=FrameIndex)
    s2c_frames: FrameIndex = field(default_factory=FrameIndex)
    kind: str | None = None   # "tls" | "http" | "dns" | "socks" | "other"
    tls: _Tls | None = None
    http: _Http | None = None
    dns_c2s: bytearray = field(default_factory=bytearray)
    dns_s2c: bytearray = field(default_factory=bytearray)
    tunnel: _Tls | None = None
    tunnel_host: str | None = None
    socks: _Socks | None = None
    fins: int = 0
    done: bool = False         # nothing more to learn: later packets are skipped
    wire_keys: tuple[bytes, bytes] | None = None  # its keys in Engine.skip_index and live_index


class Engine:
    """Feed segments in capture order; ``finish()`` returns the evidence."""

    def __init__(self, capture: str) -> None:
        self.capture = capture
        self.evidence = Evidence()
        self._flows: OrderedDict[tuple[str, int, str, int], _TcpFlow] = OrderedDict()
        self._dns: OrderedDict[tuple[str, str, int, int], _DnsPending] = OrderedDict()
        # the time of the oldest query in _dns as _expire_dns last found it, or None: unknown
        # (set to None wherever that query may have gone other than by expiry)
        self._dns_first_ts: float | None = None
        self.parse_errors: dict[str, int] = {}
        self.first_error_frame: dict[str, int] = {}
        # Raw address+port bytes of both directions -> flow, for every flow that is ``done``.
        # A reader that sets it (analyzer.events.builtin.fastpath) can skip such a flow's packets from
        # their header bytes alone; None keeps the index off.
        self.skip_index: dict[bytes, _TcpFlow] | None = None
        # With skip_index on: the same raw keys for every open flow, done or not (None for a key
        # two open flows share), so a bare ACK can be skipped too: on the slow path it only
        # notes its time on the flow it belongs to, if any.
        self.live_index: dict[bytes, _TcpFlow | None] = {}
        self.next_sweep = float("-inf")  # capture time of the next idle-flow scan
        self.intern = Interner()  # one object per distinct name, record, ClientHello, flight
        self._dns_bodies: dict[bytes, dnsp.DnsMessage] = {}  # see _parse_dns

    @property
    def open_flows(self) -> int:
        return len(self._flows)

    @property
    def pending_dns(self) -> int:
        return len(self._dns)

    def exchanges_seen(self) -> int:
        """DNS/TLS/HTTP exchanges recognised so far (for progress)."""
        ev = self.evidence
        return len(ev.dns) + len(ev.tls) + len(ev.http) + len(self._dns)

    # -- bookkeeping -------------------------------------------------------------------------
    def _error(self, proto: str, frame: int) -> None:
        self.parse_errors[proto] = self.parse_errors.get(proto, 0) + 1
        self.first_error_frame.setdefault(proto, frame)

    def note_process(self, seg: Segment, process: ProcessInfo) -> None:
        """Process information carried by the capture (pcapng comments) for this packet's flow
        (the first one noted for a flow stays)."""
        self.evidence.flow_processes.setdefault(self._process_flow(seg), process)

    def wants_process(self, seg: Segment) -> bool:
        """False when this packet's flow has its process already: a note would change nothing,
        so its comments need not be read (proxytrace writes one on every packet)."""
        return self._process_flow(seg) not in self.evidence.flow_processes

    def _process_flow(self, seg: Segment) -> str:
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        flow = self._flows.get(key) or self._flows.get((seg.dst, seg.dport, seg.src, seg.sport))
        if seg.transport == "tcp" and flow is not None:
            ref = flow.ref
        elif seg.dport in DNS_PORTS or seg.transport == "udp":
            ref = FlowRef(seg.transport, seg.src, seg.sport, seg.dst, seg.dport, self.capture)  # type: ignore[arg-type]
        else:
            ref = FlowRef("tcp", seg.src, seg.sport, seg.dst, seg.dport, self.capture)
        return ref.flow_id

    # -- entry point ---------------------------------------------------------------------------
    def feed(self, seg: Segment) -> None:
        if seg.transport == "udp":
            if seg.sport in DNS_PORTS or seg.dport in DNS_PORTS:
                self._udp_dns(seg)
        else:
            self._tcp(seg)

    # -- DNS -----------------------------------------------------------------------------------
    def _udp_dns(self, seg: Segment) -> None:
        payload = seg.payload
        try:
            msg = self._parse_dns(payload)
        except ParseError:
            self._error("dns", seg.frame)
            return
        self._dns_message(msg, (payload[0] << 8) | payload[1], seg, "udp")

    def _dns_message(self, msg: dnsp.DnsMessage, txid: int, seg: Segment, transport: str) -> None:
        """``msg`` is the message parsed from these bytes, or an equal one from another
        message with the same body but not always the same ID (see _parse_dns): ``txid`` is
        this one's."""
        self._expire_dns(seg.ts)
        if not msg.is_response:
            if not msg.questions:
                return
            q = msg.questions[0]
            key = (transport, seg.src, seg.sport, txid)
            flow = FlowRef(transport, seg.src, seg.sport, seg.dst, seg.dport, self.capture)  # type: ignore[arg-type]
            old = self._dns.pop(key, None)
            if old is not None:
                self._dns_first_ts = None
                self._emit_dns(old)
            self._dns[key] = _DnsPending(flow, txid, self.intern(q.name), q.qtype, seg.ts,
                                         seg.frame)
            if len(self._dns) > MAX_DNS_PENDING:
                self._dns_first_ts = None
                self._emit_dns(self._dns.popitem(last=False)[1])
            return
        if msg.txid != txid:
            msg = _with_txid(msg, txid)  # a response is kept: it carries its own ID
        key = (transport, seg.dst, seg.dport, txid)
        pending = self._dns.get(key)
        if pending is None:
            first = msg.questions[0] if msg.questions else None
            flow = FlowRef(transport, seg.dst, seg.dport, seg.src, seg.sport, self.capture)  # type: ignore[arg-type]
            pending = _DnsPending(flow, txid, first.name if first else "",
                                  first.qtype if first else "", seg.ts, None)
            self._dns[key] = pending
        pending.responses.append(msg)  # its sections shared by _parse_dns
        pending.frames.append(seg.frame)
        pending.sources.append(seg.src)
        pending.times.append(seg.ts)

    def _parse_dns(self, payload: bytes) -> dnsp.DnsMessage:
        """``parse_dns(payload)`` but for the ID, remembered per message body (everything after
        the ID): a client asks the same question every time (only the ID differs), and a
        resolver often gives the same answer within a TTL second, so most DNS messages of a
        capture were parsed before. The parser is pure, so the remembered message with the ID
        of ``payload`` is the same value; the caller gives it that ID where it keeps it (a
        query's message is not kept: copying it would be a third of a query's cost)."""
        body = bytes(payload[2:])
        known = self._dns_bodies.get(body)
        if known is not None:
            return known
        msg = self._shared_parts(dnsp.parse_dns(payload))
        if len(self._dns_bodies) >= DNS_BODIES:
            self._dns_bodies.clear()
        self._dns_bodies[body] = msg
        return msg

    def _shared_parts(self, msg: dnsp.DnsMessage) -> dnsp.DnsMessage:
        """``msg`` with its sections replaced by the equal ones already kept (see intern.py)."""
        intern = self.intern
        # The message is this engine's alone until it is stored, so its frozen fields may be set
        # once more, as a dataclass's own __post_init__ would (a copy would cost a second object).
        for name in ("questions", "answers", "authority", "additional"):
            section = getattr(msg, name)
            if section:
                object.__setattr__(msg, name, intern(tuple([intern(r) for r in section])))
        return msg

    def _expire_dns(self, now: float) -> None:
        first = self._dns_first_ts
        if first is not None and now - first <= DNS_LINGER:
            return  # the oldest query is the one seen last time, and still waits
        dns = self._dns
        while dns:
            key, pending = next(iter(dns.items()))
            if now - pending.ts <= DNS_LINGER:
                self._dns_first_ts = pending.ts
                return
            del dns[key]
            self._emit_dns(pending)
        self._dns_first_ts = None

    def _emit_dns(self, pending: _DnsPending) -> None:
        self.evidence.dns.append(pending.freeze(self.intern))

    # -- TCP -----------------------------------------------------------------------------------
    def _tcp(self, seg: Segment) -> None:
        if seg.ts >= self.next_sweep:
            self._sweep(seg.ts)
        key = (seg.src, seg.sport, seg.dst, seg.dport)
        flow = self._flows.get(key)
        from_client = True
        if flow is None:
            flow = self._flows.get((seg.dst, seg.dport, seg.src, seg.sport))
            from_client = False
        if flow is None:
            flow, from_client = self._new_flow(seg)
            if flow is None:
                return
        flow.last_ts = seg.ts
        if flow.done:
            if seg.flags & (TCP_FIN | TCP_RST):
                self._close(flow)
            return
        stream = flow.c2s if from_client else flow.s2c
        if seg.flags & TCP_SYN:
            stream.syn(seg.seq)
        if seg.payload:
            for chunk in stream.add(seg.seq, seg.payload, seg.frame):
                (flow.c2s_frames if from_client else flow.s2c_frames).add(chunk)
                self._stream_data(flow, from_client, chunk, seg.ts)
                if flow.done:
                    break
        if flow.done:
            self._retire(flow)
        if seg.flags & TCP_RST:
            self._close(flow)
        elif seg.flags & TCP_FIN:
            flow.fins += 1
            if flow.fins >= 2:
                self._close(flow)

    def _new_flow(self, seg: Segment) -> tuple[_TcpFlow | None, bool]:
        syn, ack = seg.flags & TCP_SYN, seg.flags & TCP_ACK
        if syn and not ack:
            client_first = True
        elif syn and ack:
            client_first = False
        elif seg.payload:
            client_first = _looks_like_client(seg.payload, seg.sport, seg.dport)
        else:
            return None, False  # a bare ACK/FIN of a connection we never saw start
        if client_first:
            ref = FlowRef("tcp", seg.src, seg.sport, seg.dst, seg.dport, self.capture)
            key = (seg.src, seg.sport, seg.dst, seg.dport)
        else:
            ref = FlowRef("tcp", seg.dst, seg.dport, seg.src, seg.sport, self.capture)
            key = (seg.dst, seg.dport, seg.src, seg.sport)
        flow = _TcpFlow(ref, seg.ts, seg.ts, saw_syn=bool(syn))
        self._flows[key] = flow
        if self.skip_index is not None:
            self._index_live(flow)
        if len(self._flows) > MAX_FLOWS:
            self._close(next(iter(self._flows.values())))
        return flow, client_first

    def _stream_data(self, flow: _TcpFlow, from_client: bool, chunk: Chunk, ts: float) -> None:
        if flow.kind is None:
            if not from_client:
                if flow.s2c.delivered > 65536:
                    flow.kind = "other"
                    flow.done = True
                return  # server bytes wait until the client shows the protocol
            flow.kind = _classify(chunk.data, flow.ref.server_port)
            if flow.kind == "tls":
                flow.tls = _Tls()
            elif flow.kind == "http":
                # a capture that starts mid-connection may start inside a response body
                flow.http = _Http(server=httpp.HttpStreamParser(False, midstream=not flow.saw_syn))
            elif flow.kind == "socks":
                flow.socks = _Socks(ts=ts)
            elif flow.kind == "other":
                flow.done = True
                return
            # replay server bytes that arrived before the client spoke (rare: server-first banner)
        if flow.kind == "tls":
            assert flow.tls is not None
            self._tls_data(flow, flow.tls, from_client, chunk, ts, flow.ref)
            if flow.tls.client_done and flow.tls.server_done:
                flow.done = True
        elif flow.kind == "http":
            self._http_data(flow, from_client, chunk, ts)
        elif flow.kind == "dns":
            self._tcp_dns(flow, from_client, chunk, ts)
        elif flow.kind == "socks":
            self._socks_data(flow, from_client, chunk, ts)

    # -- SOCKS ---------------------------------------------------------------------------------
    def _socks_data(self, flow: _TcpFlow, from_client: bool, chunk: Chunk, ts: float) -> None:
        socks = flow.socks
        assert socks is not None
        end = socks.client_end if from_client else socks.server_end
        if end is not None:
            self._tunnel_data(flow, socks, from_client, chunk, ts)
            return
        buf = socks.client_buf if from_client else socks.server_buf
        buf += chunk.data
        try:
            hs = _socks().parse_handshake(bytes(socks.client_buf), bytes(socks.server_buf))
        except ParseError:
            self._error("socks", chunk.frame)
            socks.note = "the SOCKS handshake is malformed"
            flow.done = True
            return
        if hs.unsupported:
            socks.note = hs.unsupported
            flow.done = True
            return
        if hs.request is not None and socks.request is None:
            socks.request = hs.request
            socks.ts = ts
            socks.client_end = hs.request.length
            self._tunnel_rest(flow, socks, True, socks.client_buf, hs.request.length, chunk, ts)
        if hs.reply is not None and socks.reply is None:
            socks.reply = hs.reply
            if not hs.reply.granted:
                socks.note = f"the SOCKS proxy refused: {hs.reply.reason}"
                flow.done = True
                return
            socks.server_end = hs.reply.length
            if flow.tls is not None:
                flow.tls.server_base = hs.reply.length
            if flow.http is not None:
                flow.http.server_base = hs.reply.length
            self._tunnel_rest(flow, socks, False, socks.server_buf, hs.reply.length, chunk, ts)
        if flow.done:
            return
        if max(len(socks.client_buf), len(socks.server_buf)) > SOCKS_LIMIT and (
                socks.request is None or socks.reply is None):
            self._error("socks", chunk.frame)
            socks.note = "the SOCKS handshake did not end"
            flow.done = True

    def _tunnel_rest(self, flow: _TcpFlow, socks: _Socks, from_client: bool, buf: bytearray,
                     end: int, chunk: Chunk, ts: float) -> None:
        """Bytes that came after the handshake in the same segment(s) start the tunnel."""
        rest = bytes(buf[end:])
        del buf[end:]  # the handshake stays: parse_handshake reads it again for the other side
        if rest:
            self._tunnel_data(flow, socks, from_client, Chunk(end, rest, chunk.frame), ts)

    def _tunnel_data(self, flow: _TcpFlow, socks: _Socks, from_client: bool, chunk: Chunk,
                     ts: float) -> None:
        """Inside a SOCKS tunnel: TLS or HTTP, as on a direct connection."""
        if socks.inner is None:
            if not from_client:
                return  # the client speaks first in TLS and HTTP
            socks.inner = _classify(chunk.data, socks.request.port if socks.request else 0)
            if socks.inner == "tls":
                flow.tls = _Tls(client_base=chunk.offset, server_base=socks.server_end or 0)
            elif socks.inner == "http":
                flow.http = _Http(client_base=chunk.offset, server_base=socks.server_end or 0)
            else:
                socks.inner = "other"
                socks.note = "the tunnel carries neither TLS nor HTTP"
                flow.done = True
                return
        if flow.tls is not None:
            self._tls_data(flow, flow.tls, from_client, chunk, ts, flow.ref)
            if flow.tls.client_done and flow.tls.server_done:
                flow.done = True
        elif flow.http is not None:
            self._http_data(flow, from_client, chunk, ts)

    def _tls_data(self, flow: _TcpFlow, state: _Tls, from_client: bool, chunk: Chunk,
                  ts: float, ref: FlowRef) -> None:
        if from_client and not state.client_done:
            state.client_buf += chunk.data
            try:
                hello = tlsp.parse_client_hello(bytes(state.client_buf))
            except ParseError:
                self._error("tls", chunk.frame)
                state.client_done = state.server_done = True
                return
            if hello is not None:
                state.hello = hello
                state.hello_ts = ts
                end = state.client_base + len(state.client_buf)
                state.hello_frames = flow.c2s_frames.frames(state.client_base, end)
                state.client_done = True
                state.client_buf = bytearray()
            elif len(state.client_buf) > CLIENT_HELLO_LIMIT:
                self._error("tls", chunk.frame)
                state.client_done = state.server_done = True
        elif not from_client and not state.server_done:
            state.server_buf += chunk.data
            try:
                flight = tlsp.parse_server_flight(bytes(state.server_buf))
            except ParseError:
                if httpp.looks_like_http_response(bytes(state.server_buf[:16])):
                    state.server_note = "the server answered the ClientHello in plaintext HTTP"
                else:
                    self._error("tls-server", chunk.frame)
                state.server_done = True
                return
            state.server = flight
            end = state.server_base + len(state.server_buf)
            state.server_frames = flow.s2c_frames.frames(state.server_base, end)
            if flight.complete or len(state.server_buf) > SERVER_FLIGHT_LIMIT:
                state.server_done = True
                state.server_buf = bytearray()

    def _http_data(self, flow: _TcpFlow, from_client: bool, chunk: Chunk, ts: float) -> None:
        http = flow.http
        assert http is not None
        parser = http.client if from_client else http.server
        if flow.tunnel is not None and parser.tunnel:
            tunnel = flow.tunnel
            if (from_client and tunnel.hello is None and not tunnel.client_buf
                    and chunk.data and 0x41 <= chunk.data[0] <= 0x5A):
                # no TLS yet and a new request: a CONNECT refused (407) and retried on this
                # connection with credentials; the parser reads it, and a new tunnel follows it
                flow.tunnel, flow.tunnel_host = None, None
            else:
                # inside an established CONNECT tunnel: the bytes are TLS, not HTTP
                self._tls_data(flow, tunnel, from_client, chunk, ts, flow.ref)
                return
        if parser.failed:
            return
        try:
            messages = parser.feed(chunk.data)
        except ParseError:
            self._error("http", chunk.frame)
            messages = []
        index = flow.c2s_frames if from_client else flow.s2c_frames
        base = http.client_base if from_client else http.server_base
        for msg in messages:
            end = chunk.offset + len(chunk.data)
            frames = index.frames(base + msg.offset, end) or (chunk.frame,)
            if isinstance(msg, httpp.HttpRequest):
                http.requests.append((msg, ts, frames))
                http.server.note_request_method(msg.method, http09=msg.version == "HTTP/0.9")
            else:
                http.responses.append((msg, frames))
        if parser.tunnel and from_client and flow.tunnel is None and http.requests:
            req = http.requests[-1][0]
            if req.method == "CONNECT":
                flow.tunnel_host = req.host
                tunnel = _Tls()
                flow.tunnel = tunnel
                tunnel_bytes = parser.tunnel_bytes
                # TLS starts right after the CONNECT header block, also when no tunnel bytes
                # came with it (the client waits for "200"): hello frames count from there.
                base = chunk.offset + len(chunk.data) - len(tunnel_bytes)
                tunnel.client_base = base
                if tunnel_bytes:
                    self._tls_data(flow, tunnel, True, Chunk(base, tunnel_bytes, chunk.frame), ts,
                                   flow.ref)
        if http.server.tunnel and flow.tunnel is not None and not from_client:
            rest = http.server.tunnel_bytes
            base = chunk.offset + len(chunk.data) - len(rest)
            flow.tunnel.server_base = base
            if rest:
                self._tls_data(flow, flow.tunnel, False, Chunk(base, rest, chunk.frame), ts,
                               flow.ref)

    def _tcp_dns(self, flow: _TcpFlow, from_client: bool, chunk: Chunk, ts: float) -> None:
        buf = flow.dns_c2s if from_client else flow.dns_s2c
        buf += chunk.data
        messages, used = dnsp.split_tcp_dns(bytes(buf))
        del buf[:used]
        ref = flow.ref
        for raw in messages:
            try:
                msg = self._parse_dns(raw)
            except ParseError:
                self._error("dns", chunk.frame)
                continue
            if from_client:
                seg = Segment(chunk.frame, ts, "tcp", ref.client, ref.client_port, ref.server,
                              ref.server_port, b"")
            else:
                seg = Segment(chunk.frame, ts, "tcp", ref.server, ref.server_port, ref.client,
                              ref.client_port, b"")
            self._dns_message(msg, (raw[0] << 8) | raw[1], seg, "tcp")

    def _retire(self, flow: _TcpFlow) -> None:
        """A flow just became ``done``: free its reassembly buffers, index it for skipping."""
        for stream in (flow.c2s, flow.s2c):
            if stream.pending:
                stream.pending = {}
                stream.pending_bytes = 0
        if self.skip_index is not None:
            fwd, rev = self._wire_keys(flow)
            self.skip_index[fwd] = flow
            self.skip_index[rev] = flow

    def _wire_keys(self, flow: _TcpFlow) -> tuple[bytes, bytes]:
        if flow.wire_keys is None:
            ref = flow.ref
            flow.wire_keys = (wire_key(ref.client, ref.client_port, ref.server, ref.server_port),
                              wire_key(ref.server, ref.server_port, ref.client, ref.client_port))
        return flow.wire_keys

    def _index_live(self, flow: _TcpFlow) -> None:
        live = self.live_index
        for k in self._wire_keys(flow):
            other = live.get(k, flow)
            live[k] = flow if other is flow else None  # shared by two open flows: slow path

    def _sweep(self, now: float) -> None:
        """Close flows idle for FLOW_IDLE_TIMEOUT of capture time (bounded state on long files)."""
        self.next_sweep = now + SWEEP_INTERVAL
        idle = [f for f in self._flows.values() if now - f.last_ts > FLOW_IDLE_TIMEOUT]
        for flow in idle:
            self._close(flow)

    def _close(self, flow: _TcpFlow) -> None:
        ref = flow.ref
        key = (ref.client, ref.client_port, ref.server, ref.server_port)
        if self._flows.pop(key, None) is None:
            return
        if flow.wire_keys is not None and self.skip_index is not None:
            for k in flow.wire_keys:
                if self.skip_index.get(k) is flow:
                    del self.skip_index[k]
                if self.live_index.get(k) is flow:
                    del self.live_index[k]
        self._emit_flow(flow)

    def _emit_flow(self, flow: _TcpFlow) -> None:
        ref = flow.ref
        socks = flow.socks
        if socks is not None and socks.request is not None:
            self._emit_socks(flow, socks)
            return
        if flow.tls is not None:
            self._emit_tls(flow.tls, ref, None, None)
        if flow.http is not None:
            http = flow.http
            absolute_or_connect = any(r.method == "CONNECT" or "://" in r.target[:12]
                                      for r, _, _ in http.requests)
            connect = any(r.method == "CONNECT" for r, _, _ in http.requests)
            hop = (ProxyHop(ref.server, ref.server_port,
                            "http-connect" if connect else "http-forward")
                   if absolute_or_connect else None)
            for i, (req, ts, frames) in enumerate(http.requests):
                resp, resp_frames = http.responses[i] if i < len(http.responses) else (None, ())
                self.evidence.http.append(HttpExchange(ts, ref, req, frames, resp, resp_frames,
                                                       hop))
            if flow.tunnel is not None:
                self._emit_tls(flow.tunnel, ref, ProxyHop(ref.server, ref.server_port,
                                                          "http-connect"), flow.tunnel_host)

    def _emit_socks(self, flow: _TcpFlow, socks: _Socks) -> None:
        """The handshake, and the TLS or HTTP read inside its tunnel with the proxy as hop."""
        ref, request = flow.ref, socks.request
        assert request is not None
        hop = ProxyHop(ref.server, ref.server_port, request.kind)
        followed = False
        if socks.reply is not None and not socks.reply.granted:
            # bytes a client sent before the answer went no further than the proxy
            flow.tls = flow.http = None
        if flow.tls is not None and flow.tls.hello is not None:
            self._emit_tls(flow.tls, ref, hop, request.hostname, request.address)
            followed = True
        if flow.http is not None:
            http = flow.http
            for i, (req, ts, frames) in enumerate(http.requests):
                resp, resp_frames = http.responses[i] if i < len(http.responses) else (None, ())
                self.evidence.http.append(HttpExchange(ts, ref, req, frames, resp, resp_frames,
                                                       hop))
                followed = True
        note = socks.note
        if not followed and note is None:
            note = ("no reply from the SOCKS proxy was seen" if socks.reply is None
                    else "nothing was seen inside the tunnel")
        client_frames = flow.c2s_frames.frames(0, request.length)
        reply_frames = (flow.s2c_frames.frames(0, socks.reply.length)
                        if socks.reply is not None else ())
        self.evidence.socks.append(SocksExchange(
            socks.ts, ref, request, client_frames, socks.reply, reply_frames, followed,
            None if followed else note))

    def _emit_tls(self, state: _Tls, ref: FlowRef, hop: ProxyHop | None,
                  tunnel_host: str | None, tunnel_address: str | None = None) -> None:
        if state.hello is None:
            return
        intern = self.intern
        self.evidence.tls.append(TlsSession(
            state.hello_ts, ref, intern(state.hello), state.hello_frames, len(state.hello_frames),
            intern(state.server), state.server_frames, hop, tunnel_host, state.server_note,
            tunnel_address=tunnel_address))

    def finish(self) -> Evidence:
        for flow in list(self._flows.values()):
            self._emit_flow(flow)
        self._flows.clear()
        if self.skip_index is not None:
            self.skip_index.clear()
        self.live_index.clear()
        for pending in self._dns.values():
            self._emit_dns(pending)
        self._dns.clear()
        self._dns_first_ts = None
        ev = self.evidence
        ev.dns.sort(key=lambda e: (e.ts, e.query_frame or 0))
        ev.tls.sort(key=lambda e: (e.ts, e.frames[:1]))
        ev.http.sort(key=lambda e: (e.ts, e.frames[:1]))
        ev.socks.sort(key=lambda e: (e.ts, e.frames[:1]))
        return ev


def _classify(first: bytes, server_port: int) -> str:
    if tlsp.tls_record_start(first):
        return "tls"
    if httpp.looks_like_http_request(first):
        return "http"
    if server_port in DNS_PORTS:
        return "dns"
    if first[:1] in (b"\x04", b"\x05") and _socks().looks_like_socks(first):
        return "socks"
    return "other"


def _looks_like_client(payload: bytes, sport: int, dport: int) -> bool:
    """Without a SYN, guess which side is the client from the first bytes, then from ports."""
    if len(payload) > 5 and payload[0] == 0x16 and payload[1] == 0x03:
        return payload[5] == 1  # handshake type 1: ClientHello
    if httpp.looks_like_http_request(payload):
        return True
    if httpp.looks_like_http_response(payload):
        return False
    if payload[:1] in (b"\x04", b"\x05") and _socks().looks_like_socks(payload):
        return True
    if dport in DNS_PORTS or sport in DNS_PORTS:
        return dport in DNS_PORTS
    return dport < sport


def wire_key(src: str, sport: int, dst: str, dport: int) -> bytes:
    """Addresses and ports as a packet carries them: IPv4 header bytes 12-19 (or IPv6 8-39),
    then the first four bytes of the TCP header."""
    family = AF_INET6 if ":" in src else AF_INET
    return (inet_pton(family, src) + inet_pton(family, dst)
            + struct.pack("!HH", sport, dport))


def run_engine(segments: Iterable[Segment], capture: str) -> Evidence:
    engine = Engine(capture)
    for seg in segments:
        engine.feed(seg)
    return engine.finish()
