"""The second engine: the same ``Evidence`` as the builtin one, read by Wireshark's dissectors.

tshark (through pyshark, ``-T json``) does the reassembly and dissection; this module only turns
the dissected packets of interest into the project's records (``analyzer.events.tshark.fields``) and
groups them by connection (tshark's ``tcp.stream`` index). DNS pairing reuses the builtin
engine's bookkeeping so both engines answer "which responses belong to which query" the same way.

With a key log (``--keylog``), tshark decrypts TLS; the HTTP/1.1 and HTTP/2 requests read inside
each connection land on its ``TlsSession.requests``. The key log is only handed to tshark as a
preference: it is never copied anywhere.

SOCKS: Wireshark's socks dissector follows a tunnel into TLS and HTTP, but it is bound to TCP
port 1080 and has no heuristic. A first, light pass over the file (the capture reader and packet
decoder only, no protocol parsing) finds the connections whose first client bytes are a SOCKS
handshake (``analyzer.protocols.socks.looks_like_socks``) and their server ports are "decoded
as" socks in tshark's pass, as a user would set "Decode As" in Wireshark.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ...base.errors import CaptureError, ParseError
from ...base.files import open_private
from ...base.model import CaptureStats, ProcessInfo, ProxyHop
from ...packets.decode import TCP_ACK, TCP_SYN, Decoder, Segment
from ...protocols.certificate import CertificateInfo
from ...protocols.http import HttpRequest, HttpResponse
from ...protocols.socks import SocksReply, SocksRequest, looks_like_socks
from ...protocols.tls import ClientHello, ServerFlight, ServerHello
from ...source.capture_file import ReadState, open_capture
from ..builtin.engine import DNS_PORTS, Engine
from ..records import Evidence, FlowRef, HttpExchange, SocksExchange, TlsSession
from . import fields as tf
from .binary import TsharkMissing, tshark_env, tshark_path

__all__ = ["TsharkMissing", "read_evidence_tshark", "DISPLAY_FILTER"]

# Only the packets that carry something the evidence needs; tshark still reassembles everything.
DISPLAY_FILTER = ("dns or mdns or tls.handshake.type == 1 or tls.handshake.type == 2"
                  " or tls.handshake.type == 11 or tls.record.content_type == 21"
                  " or http.request or http.response or http2.type == 1 or frame.comment"
                  # SOCKS requests and answers (tunnel packets are filed under socks too)
                  " or socks.results or socks.auth_accepted_method or socks.auth_status"
                  " or socks.address_type or socks.username")
# Only these protocols' trees are printed (-J): the rest of each packet is never serialised.
PROTOCOLS = "frame ip ipv6 tcp udp dns mdns tls http http2 socks pkt_comment"
SOCKS_PORT = 1080  # the port Wireshark's socks dissector is registered on


@dataclass
class _Conn:
    """What one TCP connection (one ``tcp.stream``) showed."""

    ref: FlowRef | None = None
    hello: ClientHello | None = None
    hello_ts: float = 0.0
    hello_frames: tuple[int, ...] = ()
    server_hello: ServerHello | None = None
    hello_retry: ServerHello | None = None
    certificates: tuple[CertificateInfo, ...] = ()
    skipped_certificates: int = 0
    alert: tuple[int, int] | None = None
    server_frames: list[int] = field(default_factory=list)
    server_complete: bool = False
    server_note: str | None = None
    tunnel_host: str | None = None
    proxied: bool = False
    connect: bool = False        # a CONNECT request was seen (else proxied means absolute-form)
    socks_request: SocksRequest | None = None
    socks_reply: SocksReply | None = None
    socks_ts: float = 0.0
    socks_frames: tuple[int, ...] = ()
    socks_reply_frames: tuple[int, ...] = ()
    # clear HTTP/1.x on the connection: requests in order, responses in order
    requests: list[tuple[HttpRequest, float, int]] = field(default_factory=list)
    responses: list[tuple[HttpResponse, int]] = field(default_factory=list)
    # decrypted inside TLS: HTTP/1.1 in order, HTTP/2 by stream id
    inner_requests: list[tuple[HttpRequest, float, int]] = field(default_factory=list)
    inner_responses: list[tuple[HttpResponse, int]] = field(default_factory=list)
    h2_requests: dict[int, tuple[HttpRequest, float, int]] = field(default_factory=dict)
    h2_responses: dict[int, tuple[HttpResponse, int]] = field(default_factory=dict)


@dataclass
class _Packet:
    number: int
    ts: float
    src: str
    dst: str
    transport: str | None
    sport: int
    dport: int
    stream: int | None
    protocols: list[str]
    layers: dict[str, list[dict[str, Any]]]
    comments: tuple[str, ...]


def read_evidence_tshark(path: str | Path, keylog: Path | None = None) -> Evidence:
    """One capture through tshark; raises TsharkMissing (exit 4) when tshark is not installed."""
    tshark = tshark_path()
    name = os.fspath(path)
    if keylog is not None and not Path(keylog).is_file():
        raise CaptureError(f"{keylog}: no such key log file")
    if name == "-":
        # tshark reads standard input too, but pyshark only hands it a path: spool to a
        # private file first.
        with tempfile.TemporaryDirectory(prefix="proxytrace-stdin-") as tmp:
            spool = Path(tmp) / "stdin.pcap"
            with open_private(spool, "wb") as out:
                shutil.copyfileobj(sys.stdin.buffer, out)
            return _read(tshark, str(spool), "<stdin>", keylog)
    if Path(name).is_dir():
        raise CaptureError(f"{name}: is a directory, not a capture")
    if not Path(name).is_file():
        raise CaptureError(f"{name}: no such file")
    return _read(tshark, name, name, keylog)


def _read(tshark: str, path: str, name: str, keylog: Path | None) -> Evidence:
    reader = _Reader(name)
    problems: list[str] = []
    ports = socks_ports(path)
    for pkt in _packets(tshark, path, keylog, problems, _tshark_argv(tshark, path, keylog, ports)):
        reader.packet(pkt)
    if reader.inexact_alpn:
        _reread_alpn(tshark, path, keylog, reader, ports)
    if problems:
        problem = problems[0].replace(f'"{path}"', "").replace(path, name).replace("  ", " ")
        problem = problem.removeprefix("tshark: ").strip()
        if not reader.packets and "cut short" not in problem:
            raise CaptureError(f"{name}: {problem}")
        # A file cut short: keep what was read before the damage, as the builtin engine does.
        return reader.finish(path, damage=f"{name}: {problem}")
    return reader.finish(path)


# ClientHello frames read again with raw bytes per pass (a display filter of this many numbers)
REREAD_BATCH = 500


def _reread_alpn(tshark: str, path: str, keylog: Path | None, reader: _Reader,
                 socks_ports: tuple[int, ...]) -> None:
    """ClientHellos whose ALPN names tshark's text cannot carry exactly (bytes above 0x7f, a NUL,
    an empty name) are read again from the same frames with their raw bytes (``-x``), which
    triples tshark's output, so only for those frames, which are rare."""
    frames = sorted(reader.inexact_alpn)
    for start in range(0, len(frames), REREAD_BATCH):
        wanted = ",".join(str(f) for f in frames[start:start + REREAD_BATCH])
        argv = _tshark_argv(tshark, path, keylog, socks_ports,
                            display_filter=f"frame.number in {{{wanted}}}", raw=True)
        problems: list[str] = []
        for pkt in _packets(tshark, path, keylog, problems, argv=argv):
            reader.reread_hello(pkt)
    if reader.inexact_alpn:
        reader.warnings.append(f"{reader.name}: {len(reader.inexact_alpn)} ClientHello(s) with "
                               "ALPN names that are not plain ASCII could not be read again with "
                               "their raw bytes; their ALPN and JA4 may be wrong")


def _tshark_argv(tshark: str, name: str, keylog: Path | None,
                 socks_ports: tuple[int, ...] = (), *,
                 display_filter: str = DISPLAY_FILTER, raw: bool = False) -> list[str]:
    # Out-of-order segments (a capture whose packets were written slightly out of time order,
    # as eBPF capturers do) are reassembled instead of being dismissed as retransmissions.
    prefs = {"tcp.desegment_tcp_streams": "TRUE", "tcp.reassemble_out_of_order": "TRUE"}
    if keylog is not None:
        prefs["tls.keylog_file"] = os.fspath(Path(keylog).resolve())
    argv = [tshark, "-n", "-r", name, "-Y", display_filter, "-T", "json", "-J", PROTOCOLS]
    if raw:
        argv.append("-x")
    for key, value in prefs.items():
        argv += ["-o", f"{key}:{value}"]
    for port in socks_ports:
        argv += ["-d", f"tcp.port=={port},socks"]
    return argv


def socks_ports(name: str) -> tuple[int, ...]:
    """Server ports, other than 1080, of connections whose first client segment (after a SYN)
    is a SOCKS handshake. A capture that cannot be read gives none: tshark's pass reports it."""
    ports: set[int] = set()
    started: set[tuple[str, int, str, int]] = set()  # SYN seen, no payload yet
    decoder = Decoder()
    try:
        with open(name, "rb") as fh:
            for frame in open_capture(fh, ReadState(name)):
                seg = decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)
                if seg is None or seg.transport != "tcp":
                    continue
                key = (seg.src, seg.sport, seg.dst, seg.dport)
                if seg.flags & TCP_SYN and not seg.flags & TCP_ACK:
                    started.add(key)
                elif seg.payload and key in started:
                    started.discard(key)
                    if seg.dport != SOCKS_PORT and looks_like_socks(seg.payload):
                        ports.add(seg.dport)
    except (OSError, CaptureError):
        return ()
    return tuple(sorted(ports))


def _packets(tshark: str, name: str, keylog: Path | None, problems: list[str],
             argv: list[str]) -> Iterator[_Packet]:
    """Dissected packets; tshark's complaint about the file, if any, goes to ``problems``.

    tshark runs here with the arguments pyshark's ``FileCapture(use_json=True)`` would give it,
    and pyshark parses each packet. pyshark's own process handling is not used: it waits for
    tshark through asyncio's child watchers, which lose exit statuses now and then (tshark is
    then reported as crashed with status 255, and its error line may be missing), so a good
    capture could be reported damaged and a damaged one could pass.
    """
    from pyshark.tshark.output_parser.tshark_json import packet_from_json_packet

    # An empty configuration directory: the user's own Wireshark preferences (decode-as
    # rules, disabled protocols) must not change what the engine reports.
    with tempfile.TemporaryFile() as errors, \
            tempfile.TemporaryDirectory(prefix="proxytrace-tshark-") as config:
        proc = subprocess.Popen(  # noqa: S603 - argument list; the file name is one argument
            argv, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=errors, env=tshark_env(config))
        assert proc.stdout is not None
        try:
            for raw in _json_packets(proc.stdout):
                try:
                    parsed = packet_from_json_packet(raw)
                except UnicodeDecodeError:
                    # tshark copies text from the capture (a pcapng comment...) into its JSON
                    # byte for byte, so a damaged one is not UTF-8
                    parsed = packet_from_json_packet(raw.decode("utf-8", "replace").encode())
                yield _packet(parsed)
        finally:
            proc.stdout.close()
            if proc.poll() is None:
                proc.kill()
            status = proc.wait()
        if status != 0:
            errors.seek(0)
            lines = [line.strip() for line in errors.read().decode("utf-8", "replace").splitlines()
                     if line.strip() and "Running as user" not in line
                     and "could be dangerous" not in line]
            problems.append(lines[-1] if lines else f"tshark exited with status {status}")


def _json_packets(stream: IO[bytes]) -> Iterator[bytes]:
    """Each packet object of tshark's ``-T json`` array, as bytes, while tshark still runs.

    tshark writes the array with a fixed layout: every packet starts with a line "  {" and ends
    with "  }" or "  },", so packets can be cut out without parsing the whole document.
    """
    chunk: list[bytes] = []
    inside = False
    for line in stream:
        if not inside:
            if line.rstrip() == b"  {":
                inside = True
                chunk = [line]
            continue
        stripped = line.rstrip()
        if stripped in (b"  }", b"  },"):
            chunk.append(b"  }\n")
            inside = False
            yield b"".join(chunk)
        else:
            chunk.append(line)


def _layer_dicts(layer: Any) -> list[dict[str, Any]]:
    # pyshark keeps the parsed JSON tree of each layer (and of repeated layers, e.g. two TLS
    # layers in one segment) without wrapping every field; reading it directly is what keeps
    # this engine fast enough.
    out = [layer._all_fields]
    out.extend(dup._all_fields for dup in getattr(layer, "duplicate_layers", []))
    return [d for d in out if isinstance(d, dict)]


def _packet(packet: Any) -> _Packet:
    frame = packet.frame_info._all_fields
    layers: dict[str, list[dict[str, Any]]] = {}
    for layer in packet.layers:
        layers.setdefault(layer.layer_name, []).extend(_layer_dicts(layer))
    src = dst = ""
    for lname in ("ip", "ipv6"):
        if lname in layers:
            net = layers[lname][-1]
            key = "ip" if lname == "ip" else "ipv6"
            src = str(tf.first(net.get(f"{key}.src")) or "")
            dst = str(tf.first(net.get(f"{key}.dst")) or "")
    transport = None
    sport = dport = 0
    stream = None
    if "tcp" in layers:
        tcp = layers["tcp"][0]
        transport = "tcp"
        sport = int(tf.first(tcp.get("tcp.srcport")) or 0)
        dport = int(tf.first(tcp.get("tcp.dstport")) or 0)
        stream = int(tf.first(tcp.get("tcp.stream")) or 0)
    elif "udp" in layers:
        udp = layers["udp"][0]
        transport = "udp"
        sport = int(tf.first(udp.get("udp.srcport")) or 0)
        dport = int(tf.first(udp.get("udp.dstport")) or 0)
    comments = tuple(str(c) for c in tf.walk(layers.get("pkt_comment", []), "frame.comment"))
    comments += tuple(str(c) for c in tf.items(frame.get("frame.comment")))
    return _Packet(
        number=int(frame.get("frame.number", 0)), ts=float(frame.get("frame.time_epoch", 0.0)),
        src=src, dst=dst, transport=transport, sport=sport, dport=dport, stream=stream,
        protocols=str(frame.get("frame.protocols", "")).split(":"), layers=layers,
        comments=comments)


class _Reader:
    """Dissected packets in capture order -> Evidence."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.dns = Engine(name)   # its DNS pairing only: TCP segments are never fed to it
        self.conns: dict[int, _Conn] = {}
        self.packets = 0
        self.last_frame = 0
        self.errors: dict[str, int] = {}
        self.first_error: dict[str, int] = {}
        self.processes: dict[str, ProcessInfo] = {}
        self.pending_comments: list[tuple[_Packet, ProcessInfo]] = []
        # frame -> tcp.stream of ClientHellos whose ALPN names need their raw bytes
        self.inexact_alpn: dict[int, int] = {}
        self.warnings: list[str] = []
        try:
            from ...source.process_comments import process_from_comments
            self._comments: Any = process_from_comments
        except ImportError:
            self._comments = None

    def _error(self, proto: str, frame: int) -> None:
        self.errors[proto] = self.errors.get(proto, 0) + 1
        self.first_error.setdefault(proto, frame)

    def packet(self, pkt: _Packet) -> None:
        self.packets += 1
        self.last_frame = max(self.last_frame, pkt.number)
        if pkt.comments and self._comments is not None:
            proc = self._comments(list(pkt.comments), None)
            if proc is not None:
                self.pending_comments.append((pkt, proc))
        if pkt.transport is None:
            return
        for lname in ("dns", "mdns"):
            for tree in pkt.layers.get(lname, []):
                self._dns(pkt, tree)
        if pkt.transport != "tcp" or pkt.stream is None:
            return
        conn = self.conns.setdefault(pkt.stream, _Conn())
        decrypted = "tls" in pkt.protocols
        for tree in pkt.layers.get("http", []):
            self._http(pkt, conn, tree, inside_tls=decrypted and self._after_tls(pkt, "http"))
        for tree in pkt.layers.get("tls", []):
            self._tls(pkt, conn, tree)
        for tree in pkt.layers.get("http2", []):
            self._http2(pkt, conn, tree)
        for tree in pkt.layers.get("socks", []):
            self._socks(pkt, conn, tree)

    # -- SOCKS -----------------------------------------------------------------------------
    def _socks(self, pkt: _Packet, conn: _Conn, tree: dict[str, Any]) -> None:
        from_client = conn.ref is None or (pkt.src, pkt.sport) == (conn.ref.client,
                                                                   conn.ref.client_port)
        try:
            msg = tf.socks_message(tree, from_client)
        except (ParseError, ValueError):
            self._error("socks", pkt.number)
            return
        if isinstance(msg, SocksRequest) and conn.socks_request is None:
            if conn.ref is None:
                conn.ref = FlowRef("tcp", pkt.src, pkt.sport, pkt.dst, pkt.dport, self.name)
            conn.socks_request, conn.socks_ts = msg, pkt.ts
            conn.socks_frames = _segment_frames(pkt)
        elif isinstance(msg, SocksReply) and conn.socks_request is not None \
                and conn.socks_reply is None:
            conn.socks_reply = msg
            conn.socks_reply_frames = _segment_frames(pkt)

    @staticmethod
    def _after_tls(pkt: _Packet, proto: str) -> bool:
        """True when ``proto`` was dissected from decrypted TLS (it follows "tls" in the stack)."""
        stack = pkt.protocols
        return "tls" in stack and proto in stack and stack.index("tls") < len(stack) - 1 - stack[::-1].index(proto)

    # -- DNS -------------------------------------------------------------------------------
    def _dns(self, pkt: _Packet, tree: dict[str, Any]) -> None:
        if pkt.transport == "udp" and not (pkt.sport in DNS_PORTS or pkt.dport in DNS_PORTS):
            return
        if pkt.transport == "tcp" and not (pkt.sport in DNS_PORTS or pkt.dport in DNS_PORTS):
            return
        if "_ws.malformed" in tree or "_ws.malformed" in str(list(tree.keys())):
            self._error("dns", pkt.number)
            return
        try:
            msg = tf.dns_message(tree)
        except ParseError:
            self._error("dns", pkt.number)
            return
        seg = Segment(pkt.number, pkt.ts, pkt.transport, pkt.src, pkt.sport, pkt.dst,  # type: ignore[arg-type]
                      pkt.dport, b"")
        # The builtin engine's pairing of queries and responses (by 5-tuple and id, with its
        # linger time), so both engines group responses the same way.
        self.dns._dns_message(msg, msg.txid, seg, pkt.transport or "udp")

    # -- TLS -------------------------------------------------------------------------------
    def _tls(self, pkt: _Packet, conn: _Conn, tree: dict[str, Any]) -> None:
        for record in tf.tls_records(tree):
            ctype = record.get("tls.record.content_type")
            if tf.first(ctype) == "21" and conn.hello is not None and not conn.server_complete:
                if conn.ref is not None and pkt.src == conn.ref.server and pkt.sport == conn.ref.server_port:
                    alert = tf.walk_first(record, "tls.alert_message")
                    if isinstance(alert, dict) and conn.server_hello is None:
                        try:
                            conn.alert = (tf.number(tf.first(alert.get("tls.alert_message.level"))),
                                          tf.number(tf.first(alert.get("tls.alert_message.desc"))))
                        except ParseError:
                            pass
                    conn.server_frames.append(pkt.number)
                    conn.server_complete = True
                continue
            for hs in tf.handshakes(record):
                try:
                    kind = tf.number(tf.first(hs.get("tls.handshake.type")))
                except ParseError:
                    continue
                try:
                    self._handshake(pkt, conn, kind, hs)
                except ParseError:
                    self._error("tls" if kind == 1 else "tls-server", pkt.number)

    def _handshake(self, pkt: _Packet, conn: _Conn, kind: int, hs: dict[str, Any]) -> None:
        if kind == 1:
            if conn.hello is not None:
                return  # the builtin engine keeps the first ClientHello of a connection
            conn.hello = tf.client_hello(hs)
            if not tf.alpn_exact(hs) and pkt.stream is not None:
                self.inexact_alpn[pkt.number] = pkt.stream
            conn.hello_ts = pkt.ts
            conn.hello_frames = _segment_frames(pkt)
            if conn.ref is None:
                conn.ref = FlowRef("tcp", pkt.src, pkt.sport, pkt.dst, pkt.dport, self.name)
            return
        if conn.hello is None or conn.server_complete:
            return
        if kind == 2:
            hello = tf.server_hello(hs)
            conn.server_frames.extend(_segment_frames(pkt))
            conn.server_hello = hello
            if hello.is_hello_retry:
                conn.hello_retry = hello
            elif hello.version >= 0x0304:
                conn.server_complete = True
        elif kind == 11:
            conn.certificates, conn.skipped_certificates = tf.certificates(hs)
            conn.server_frames.extend(_segment_frames(pkt))
            conn.server_complete = True

    def reread_hello(self, pkt: _Packet) -> None:
        """The same ClientHello frame again, dissected with raw bytes (see ``_reread_alpn``)."""
        conn = self.conns.get(pkt.stream) if pkt.stream is not None else None
        if conn is None or self.inexact_alpn.get(pkt.number) != pkt.stream:
            return
        for tree in pkt.layers.get("tls", []):
            for record in tf.tls_records(tree):
                for hs in tf.handshakes(record):
                    if tf.first(hs.get("tls.handshake.type")) == "1":
                        try:
                            conn.hello = tf.client_hello(hs)
                        except ParseError:
                            self._error("tls", pkt.number)
                        del self.inexact_alpn[pkt.number]
                        return

    # -- HTTP ------------------------------------------------------------------------------
    def _http(self, pkt: _Packet, conn: _Conn, tree: dict[str, Any], *, inside_tls: bool) -> None:
        try:
            msg = tf.http_message(tree)
        except ParseError:
            self._error("http", pkt.number)
            return
        if msg is None:
            return
        if isinstance(msg, HttpRequest):
            if inside_tls:
                conn.inner_requests.append((msg, pkt.ts, pkt.number))
                return
            if conn.ref is None:
                conn.ref = FlowRef("tcp", pkt.src, pkt.sport, pkt.dst, pkt.dport, self.name)
            conn.requests.append((msg, pkt.ts, pkt.number))
            if msg.method == "CONNECT":
                conn.tunnel_host = msg.host
                conn.connect = True
            if msg.method == "CONNECT" or msg.absolute_form:
                conn.proxied = True
        elif inside_tls:
            conn.inner_responses.append((msg, pkt.number))
        else:
            conn.responses.append((msg, pkt.number))
            if conn.hello is not None and not conn.server_complete and conn.tunnel_host is None:
                conn.server_note = "the server answered the ClientHello in plaintext HTTP"
                conn.server_complete = True

    def _http2(self, pkt: _Packet, conn: _Conn, tree: dict[str, Any]) -> None:
        for sid, headers in tf.http2_streams(tree):
            pseudo = {k: v for k, v in headers if k.startswith(":")}
            regular = tuple((k, v) for k, v in headers if not k.startswith(":"))
            if ":method" in pseudo and sid not in conn.h2_requests:
                host = pseudo.get(":authority")
                req_headers = ((("host", host),) if host else ()) + regular
                req = HttpRequest(pseudo[":method"], pseudo.get(":path", "/"), "HTTP/2",
                                  req_headers, 0)
                conn.h2_requests[sid] = (req, pkt.ts, pkt.number)
            elif ":status" in pseudo and sid not in conn.h2_responses:
                try:
                    status = int(pseudo[":status"])
                except ValueError:
                    self._error("http2", pkt.number)
                    continue
                conn.h2_responses[sid] = (HttpResponse("HTTP/2", status, "", regular, 0),
                                          pkt.number)

    # -- results ---------------------------------------------------------------------------
    def finish(self, path: str, damage: str | None = None) -> Evidence:
        evidence = self.dns.finish()
        for conn in self.conns.values():
            self._emit(evidence, conn)
        for pkt, proc in self.pending_comments:
            evidence.flow_processes.setdefault(self._flow_for(pkt).flow_id, proc)
        evidence.dns.sort(key=lambda e: (e.ts, e.query_frame or 0))
        evidence.tls.sort(key=lambda e: (e.ts, e.frames[:1]))
        evidence.http.sort(key=lambda e: (e.ts, e.frames[:1]))
        evidence.socks.sort(key=lambda e: (e.ts, e.frames[:1]))
        warnings = [f"{self.name}: {count} malformed {proto} message(s), first in frame "
                    f"{self.first_error[proto]}" for proto, count in self.errors.items()]
        warnings += self.warnings
        if damage is not None:
            warnings.insert(0, damage)
        evidence.stats.append(CaptureStats(
            capture=self.name, packets=self.last_frame, bytes=_size(path),
            warnings=tuple(warnings), parse_errors=dict(self.errors), damaged=damage is not None))
        return evidence

    def _flow_for(self, pkt: _Packet) -> FlowRef:
        if pkt.transport == "tcp" and pkt.stream is not None:
            conn = self.conns.get(pkt.stream)
            if conn is not None and conn.ref is not None:
                return conn.ref
        return FlowRef(pkt.transport or "tcp", pkt.src, pkt.sport, pkt.dst, pkt.dport,  # type: ignore[arg-type]
                       self.name)

    def _emit(self, evidence: Evidence, conn: _Conn) -> None:
        ref = conn.ref
        if ref is None:
            return
        hop = (ProxyHop(ref.server, ref.server_port, "http-connect" if conn.connect
                        else "http-forward") if conn.proxied else None)
        socks = conn.socks_request
        if socks is not None:
            hop = ProxyHop(ref.server, ref.server_port, socks.kind)
            if conn.socks_reply is not None and not conn.socks_reply.granted:
                # bytes a client sent before the answer went no further than the proxy
                conn.hello, conn.requests = None, []
            self._emit_socks(evidence, conn, ref, socks)
        for i, (req, ts, frame) in enumerate(conn.requests):
            resp, resp_frame = conn.responses[i] if i < len(conn.responses) else (None, None)
            evidence.http.append(HttpExchange(ts, ref, req, (frame,), resp,
                                              (resp_frame,) if resp_frame else (), hop))
        if conn.hello is None:
            return
        server = None
        if conn.server_hello is not None or conn.alert is not None:
            server = ServerFlight(server_hello=conn.server_hello, certificates=conn.certificates,
                                  alert=conn.alert, complete=conn.server_complete,
                                  hello_retry=conn.hello_retry,
                                  skipped_certificates=conn.skipped_certificates)
        inner = self._inner_exchanges(conn, ref)
        tunnel_hop = (ProxyHop(ref.server, ref.server_port, "http-connect")
                      if conn.tunnel_host is not None else None)
        tunnel_host, tunnel_address = conn.tunnel_host, None
        if socks is not None:
            tunnel_hop, tunnel_host, tunnel_address = hop, socks.hostname, socks.address
        evidence.tls.append(TlsSession(
            conn.hello_ts, ref, conn.hello, conn.hello_frames, len(conn.hello_frames), server,
            tuple(dict.fromkeys(conn.server_frames)), tunnel_hop, tunnel_host, conn.server_note,
            requests=inner, tunnel_address=tunnel_address))

    @staticmethod
    def _emit_socks(evidence: Evidence, conn: _Conn, ref: FlowRef, request: SocksRequest) -> None:
        """The handshake; ``followed`` as the builtin engine decides it."""
        reply = conn.socks_reply
        followed = conn.hello is not None or bool(conn.requests)
        note = None
        if not followed:
            if reply is None:
                note = "no reply from the SOCKS proxy was seen"
            elif not reply.granted:
                note = f"the SOCKS proxy refused: {reply.reason}"
            else:
                note = "nothing was seen inside the tunnel"
        evidence.socks.append(SocksExchange(conn.socks_ts, ref, request, conn.socks_frames,
                                            reply, conn.socks_reply_frames, followed, note))

    @staticmethod
    def _inner_exchanges(conn: _Conn, ref: FlowRef) -> tuple[HttpExchange, ...]:
        out = []
        for i, (req, ts, frame) in enumerate(conn.inner_requests):
            resp, resp_frame = (conn.inner_responses[i] if i < len(conn.inner_responses)
                                else (None, None))
            out.append(HttpExchange(ts, ref, req, (frame,), resp,
                                    (resp_frame,) if resp_frame else ()))
        for sid, (req, ts, frame) in conn.h2_requests.items():
            resp2 = conn.h2_responses.get(sid)
            out.append(HttpExchange(ts, ref, req, (frame,), resp2[0] if resp2 else None,
                                    (resp2[1],) if resp2 else ()))
        out.sort(key=lambda ex: (ex.ts, ex.frames))
        return tuple(out)


def _segment_frames(pkt: _Packet) -> tuple[int, ...]:
    """The frames a reassembled PDU came from (tshark lists them), else this frame."""
    tcp = pkt.layers.get("tcp", [{}])[0]
    frames = [int(f) for f in tf.walk(tcp, "tcp.segment") if str(f).isdigit()]
    return tuple(frames) if frames else (pkt.number,)


def _size(name: str) -> int:
    try:
        return os.path.getsize(name)
    except OSError:
        return 0
