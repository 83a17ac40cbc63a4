"""Deterministic generator of realistic mixed captures for the benchmark (and the fast-path tests).

Packets are written directly with ``struct`` (Ethernet/IPv4/TCP|UDP, classic pcap), so millions
of them take seconds. The mix, by packet count: mostly bulk TLS application data in MTU-sized
segments with client ACKs, the occasional retransmission and reordering; TLS handshakes whose
ClientHello and server flight are real bytes recorded by the lab (``captures/*.pcapng``: Go's
own ClientHellos to proxy.golang.org, sum.golang.org, ...), sent whole or split in two
segments; connections caught mid-stream (no SYN, no hello); client ports reused after a close;
UDP DNS queries and answers; plain HTTP requests and responses; and noise (ARP, ICMP, QUIC-like
UDP). ``python -m bench.gen OUT.pcap PACKETS [SEED]`` writes one file.
"""

from __future__ import annotations

import random
import struct
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LAB_CAPTURES = ("default", "mixed", "direct-golang-x", "forward-proxy", "mirror-direct")
MSS = 1448
DNS_NAMES = ("proxy.golang.org", "sum.golang.org", "golang.org", "go.dev", "index.golang.org",
             "github.com", "www.unrelated.example")
HTTP_HOSTS = ("proxy.golang.org", "mirror.example")
HTTP_PATHS = ("/golang.org/x/text/@v/list", "/golang.org/x/mod/@v/v0.17.0.info",
              "/github.com/pkg/errors/@v/v0.9.1.mod")

_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
_REC = struct.Struct("<IIII")
_IP = struct.Struct("!BBHHHBBH4s4s")
_TCP = struct.Struct("!HHIIBBHHH")
_UDP = struct.Struct("!HHHH")
MAC_C, MAC_S = bytes.fromhex("020000000001"), bytes.fromhex("020000000002")
ETH_IP = MAC_S + MAC_C + b"\x08\x00"
ETH_IP_REV = MAC_C + MAC_S + b"\x08\x00"
ACK, PSH, SYN, FIN = 0x10, 0x08, 0x02, 0x01


@dataclass(frozen=True)
class TlsSample:
    """A real ClientHello (one TLS record or more) and the server flight that answered it."""

    hello: bytes
    server: bytes
    sni: str | None


@lru_cache(maxsize=1)
def tls_samples() -> tuple[TlsSample, ...]:
    """ClientHellos and complete server flights from the lab's captures (ordered, deterministic)."""
    sys.path.insert(0, str(REPO))
    from analyzer.packets.decode import Decoder
    from analyzer.protocols import tls as tlsp
    from analyzer.source.capture_file import ReadState, open_capture

    samples: list[TlsSample] = []
    for name in LAB_CAPTURES:
        path = REPO / "captures" / f"{name}.pcapng"
        if not path.exists():
            continue
        client: dict[tuple[str, int, str, int], bytearray] = {}
        server: dict[tuple[str, int, str, int], bytearray] = {}
        dec = Decoder()
        with path.open("rb") as fh:
            for frame in open_capture(fh, ReadState(path.name)):
                seg = dec.decode(frame.number, frame.ts, frame.linktype, frame.data)
                if seg is None or seg.transport != "tcp" or not seg.payload:
                    continue
                key = (seg.src, seg.sport, seg.dst, seg.dport)
                rev = (seg.dst, seg.dport, seg.src, seg.sport)
                if key in client:
                    client[key] += seg.payload
                elif rev in client:
                    server.setdefault(rev, bytearray()).extend(seg.payload)
                elif seg.payload[:1] == b"\x16" and seg.payload[5:6] == b"\x01":
                    client[key] = bytearray(seg.payload)
        for key, cbuf in client.items():
            length = 5 + int.from_bytes(cbuf[3:5], "big")
            hello = bytes(cbuf[:length])
            sbuf = bytes(server.get(key, b""))[:16384]
            try:
                parsed = tlsp.parse_client_hello(hello)
                flight = tlsp.parse_server_flight(sbuf)
            except Exception:  # noqa: BLE001 - a sample we cannot use is simply left out
                continue
            if parsed is None or not flight.complete:
                continue
            samples.append(TlsSample(hello, _flight_prefix(sbuf), parsed.sni))
    if not samples:
        raise SystemExit("bench.gen: no usable TLS samples in captures/*.pcapng")
    return tuple(samples)


def _flight_prefix(data: bytes) -> bytes:
    """The server bytes up to and including the first application-data record (what a parser
    needs to call the flight complete), or all of them."""
    pos = 0
    while pos + 5 <= len(data):
        ctype = data[pos]
        pos += 5 + int.from_bytes(data[pos + 3:pos + 5], "big")
        if ctype == 0x17:
            return data[:pos]
    return data


def dns_message(txid: int, name: str, response: bool, qtype: int = 1,
                answer: bytes = b"\xc0\x00\x02\x01") -> bytes:
    flags = 0x8180 if response else 0x0100
    qname = b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"
    head = struct.pack("!HHHHHH", txid, flags, 1, 1 if response else 0, 0, 0)
    body = qname + struct.pack("!HH", qtype, 1)
    if response:
        rdata = answer if qtype == 1 else bytes(15) + b"\x01"
        body += b"\xc0\x0c" + struct.pack("!HHIH", qtype, 1, 300, len(rdata)) + rdata
    return head + body


@dataclass
class _Conn:
    """One connection's packets, produced lazily: (from_client, flags, payload) steps."""

    client: bytes
    server: bytes
    cport: int
    sport: int
    # (from_client, TCP flags, payload, seq offset from the next byte: None, or a retransmission
    # (< 0) or an early segment (> 0) that does not advance the stream)
    steps: Iterator[tuple[bool, int, bytes, int | None]]
    cseq: int = 0
    sseq: int = 0
    udp: bool = False
    pending: list[bytes] = field(default_factory=list)


class _Bulk(bytes):
    """Bulk application data: captured only up to ``Generator.bulk_caplen`` bytes when set."""


class Generator:
    def __init__(self, seed: int = 1, bulk_caplen: int | None = None) -> None:
        self.rng = random.Random(seed)
        # With a value: bulk TLS application-data packets are captured only up to that many
        # bytes (caplen < wire length, as a per-packet snap length of a BPF filter gives), so
        # a capture of tens of millions of packets stays a few GB.
        self.bulk_caplen = bulk_caplen
        self.samples = tls_samples()
        self.blob = bytes(self.rng.getrandbits(8) for _ in range(4096))
        record = b"\x17\x03\x03\x40\x11" + (self.blob * 5)[:0x4011]
        self.records = record * 2  # one period twice: any MSS slice is contiguous
        self.ts = 1_790_000_000.0
        self.ident = 0
        # closed connections' (client, client port, server, server port): some are used again
        self.closed: list[tuple[bytes, int, bytes, int]] = []
        self.clients = [bytes([10, 20, i // 256, i % 256]) for i in range(1, 41)]
        self.servers = [bytes([198, 51, 100, i]) for i in range(1, 30)]
        self.resolver = bytes([10, 20, 255, 53])

    # -- packet bytes --------------------------------------------------------------------------
    def _ip(self, src: bytes, dst: bytes, proto: int, payload_len: int) -> bytes:
        self.ident = (self.ident + 1) & 0xFFFF
        return _IP.pack(0x45, 0, 20 + payload_len, self.ident, 0x4000, 64, proto, 0, src, dst)

    def tcp(self, src: bytes, dst: bytes, sport: int, dport: int, seq: int, ack: int,
            flags: int, payload: bytes, to_server: bool) -> bytes:
        tcp = _TCP.pack(sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, 0x50, flags, 64240, 0, 0)
        return ((ETH_IP if to_server else ETH_IP_REV) + self._ip(src, dst, 6, 20 + len(payload))
                + tcp + payload)

    def udp(self, src: bytes, dst: bytes, sport: int, dport: int, payload: bytes,
            to_server: bool) -> bytes:
        udp = _UDP.pack(sport, dport, 8 + len(payload), 0)
        return ((ETH_IP if to_server else ETH_IP_REV) + self._ip(src, dst, 17, 8 + len(payload))
                + udp + payload)

    # -- connections ---------------------------------------------------------------------------
    def _tls_steps(self, mid_stream: bool) -> Iterator[tuple[bool, int, bytes, int | None]]:
        rng = self.rng
        if not mid_stream:
            sample = self.samples[rng.randrange(len(self.samples))]
            yield True, SYN, b"", None
            yield False, SYN | ACK, b"", None
            yield True, ACK, b"", None
            hello = sample.hello
            if rng.random() < 0.5 and len(hello) > 200:
                cut = rng.randrange(100, len(hello) - 50)
                yield True, PSH | ACK, hello[:cut], None
                yield True, PSH | ACK, hello[cut:], None
            else:
                yield True, PSH | ACK, hello, None
            flight = sample.server
            for i in range(0, len(flight), MSS):
                yield False, ACK | (PSH if i + MSS >= len(flight) else 0), flight[i:i + MSS], None
        # The server stream is a run of full-size application-data records (16401-byte bodies,
        # as TLS stacks send bulk data), cut into MSS segments: framing stays consistent for
        # dissectors that reassemble records (tshark).
        records = self.records
        period = len(records) // 2
        start = 0 if not mid_stream else rng.randrange(period)
        segments = rng.choice((40, 150, 400, 900, 1600))
        bulk = _Bulk if self.bulk_caplen is not None else bytes
        for i in range(segments):
            off = (start + i * MSS) % period
            data = bulk(records[off:off + MSS])
            if rng.random() < 0.004:
                # reordering: the next segment arrives first (and again, in order, later)
                ahead = (off + MSS) % period
                yield False, ACK, records[ahead:ahead + MSS], len(data)
            yield False, ACK, data, None
            if i % 2:
                yield True, ACK, b"", None
            r = rng.random()
            if r < 0.004:
                yield False, ACK, data, -len(data)   # retransmission of the segment just sent
        yield True, FIN | ACK, b"", None
        yield False, FIN | ACK, b"", None
        yield True, ACK, b"", None

    def _http_steps(self) -> Iterator[tuple[bool, int, bytes, int | None]]:
        rng = self.rng
        host = rng.choice(HTTP_HOSTS)
        path = rng.choice(HTTP_PATHS)
        req = (f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: Go-http-client/1.1\r\n"
               "Accept-Encoding: gzip\r\n\r\n").encode()
        body = b"v0.1.0\nv0.2.0\n" * rng.randrange(1, 40)
        resp = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=UTF-8\r\n"
                b"Content-Length: %d\r\n\r\n" % len(body)) + body
        yield True, SYN, b"", None
        yield False, SYN | ACK, b"", None
        yield True, ACK, b"", None
        yield True, PSH | ACK, req, None
        for i in range(0, len(resp), MSS):
            yield False, PSH | ACK, resp[i:i + MSS], None
        yield True, ACK, b"", None
        yield True, FIN | ACK, b"", None
        yield False, FIN | ACK, b"", None
        yield True, ACK, b"", None

    def _new_conn(self) -> _Conn:
        rng = self.rng
        if self.closed and rng.random() < 0.15:
            # port reuse: a new connection on the 4-tuple of one that closed
            client, cport, server, sport = self.closed.pop(0)
            steps = self._http_steps() if sport == 80 else self._tls_steps(False)
        else:
            client = self.clients[rng.randrange(len(self.clients))]
            cport = rng.randrange(32768, 60999)
            r = rng.random()
            if r < 0.05:
                server, sport, steps = self.servers[0], 80, self._http_steps()
            else:
                server = self.servers[rng.randrange(len(self.servers))]
                sport, steps = 443, self._tls_steps(r > 0.97)
        return _Conn(client, server, cport, sport, steps, rng.getrandbits(32),
                     rng.getrandbits(32))

    def _step(self, conn: _Conn) -> tuple[bytes, int] | None:
        """The connection's next packet and its captured length."""
        try:
            from_client, flags, payload, rewind = next(conn.steps)
        except StopIteration:
            self.closed.append((conn.client, conn.cport, conn.server, conn.sport))
            return None
        if from_client:
            seq, ack = conn.cseq, conn.sseq
        else:
            seq, ack = conn.sseq, conn.cseq
        if rewind:
            seq += rewind
        elif flags & (SYN | FIN):
            seq_len = 1
            if from_client:
                conn.cseq += seq_len + len(payload)
            else:
                conn.sseq += seq_len + len(payload)
        elif from_client:
            conn.cseq += len(payload)
        else:
            conn.sseq += len(payload)
        if from_client:
            pkt = self.tcp(conn.client, conn.server, conn.cport, conn.sport, seq, ack, flags,
                           payload, True)
        else:
            pkt = self.tcp(conn.server, conn.client, conn.sport, conn.cport, seq, ack, flags,
                           payload, False)
        if type(payload) is _Bulk and self.bulk_caplen is not None:
            return pkt, min(len(pkt), self.bulk_caplen)
        return pkt, len(pkt)

    def _noise(self) -> list[bytes]:
        rng = self.rng
        r = rng.random()
        client = self.clients[rng.randrange(len(self.clients))]
        if r < 0.12:  # DNS query and answer
            name = DNS_NAMES[rng.randrange(len(DNS_NAMES))]
            txid, port = rng.getrandbits(16), rng.randrange(32768, 60999)
            qtype = 1 if rng.random() < 0.6 else 28
            return [self.udp(client, self.resolver, port, 53, dns_message(txid, name, False, qtype),
                             True),
                    self.udp(self.resolver, client, 53, port, dns_message(txid, name, True, qtype),
                             False)]
        if r < 0.75:  # QUIC-like UDP
            off = rng.randrange(0, 2000)
            return [self.udp(client, self.servers[1], rng.randrange(32768, 60999), 443,
                             self.blob[off:off + 1200], True)]
        if r < 0.9:  # ARP request
            return [b"\xff" * 6 + MAC_C + b"\x08\x06" + bytes.fromhex("0001080006040001")
                    + MAC_C + client + bytes(6) + self.resolver]
        icmp = b"\x08\x00\x00\x00" + struct.pack("!HH", 1, rng.randrange(65535)) + bytes(56)
        return [ETH_IP + self._ip(client, self.resolver, 1, len(icmp)) + icmp]

    def packets(self, count: int, concurrency: int = 24) -> Iterator[tuple[float, bytes, int]]:
        """(timestamp, packet, captured length) of ``count`` packets (a few more at most)."""
        rng = self.rng
        active = [self._new_conn() for _ in range(concurrency)]
        made = 0
        held: tuple[bytes, int] | None = None
        while made < count:
            self.ts += rng.expovariate(20_000.0)
            if rng.random() < 0.03:
                for pkt in self._noise():
                    yield self.ts, pkt, len(pkt)
                    made += 1
                continue
            i = rng.randrange(concurrency)
            step = self._step(active[i])
            if step is None:
                active[i] = self._new_conn()
                continue
            pkt = step[0]
            if held is None and rng.random() < 0.002 and pkt[47] == ACK and len(pkt) > 600:
                held = step  # reorder: this segment goes out after the next packet
                continue
            yield self.ts, pkt, step[1]
            made += 1
            if held is not None:
                yield self.ts, held[0], held[1]
                made += 1
                held = None


def write_pcap(path: Path, count: int, seed: int = 1, bulk_caplen: int | None = None) -> int:
    """Write ``count`` packets (a few more at most); return the number written. ``bulk_caplen``:
    see Generator."""
    gen = Generator(seed, bulk_caplen)
    written = 0
    rec = _REC.pack
    with path.open("wb") as fh:
        fh.write(_PCAP_HEADER)
        parts: list[bytes] = []
        for ts, pkt, caplen in gen.packets(count):
            sec = int(ts)
            parts.append(rec(sec, int((ts - sec) * 1e6), caplen, len(pkt)))
            parts.append(pkt if caplen == len(pkt) else pkt[:caplen])
            written += 1
            if len(parts) >= 8192:
                fh.write(b"".join(parts))
                parts.clear()
        fh.write(b"".join(parts))
    return written


def tile_pcap(src: Path, dst: Path, copies: int, shift: int = 10_000) -> int:
    """Write ``copies`` back-to-back copies of the classic little-endian pcap ``src`` to ``dst``,
    each ``shift`` seconds after the one before (longer than the engine's idle timeout, so a
    copy's leftover flows have expired when the next copy's begin); return the packets written.

    A fast path to a capture of tens of millions of packets: only the record headers' seconds
    are rewritten, the packet bytes are copied as they are."""
    data = src.read_bytes()
    if data[:4] != _PCAP_HEADER[:4]:
        raise ValueError(f"{src}: not a little-endian microsecond pcap")
    offsets = []
    pos, end = 24, len(data)
    caplen_at = struct.Struct("<I").unpack_from
    while pos + 16 <= end:
        offsets.append(pos)
        pos += 16 + caplen_at(data, pos + 8)[0]
    sec_at = caplen_at
    secs = [sec_at(data, off)[0] for off in offsets]
    put = struct.Struct("<I").pack_into
    with dst.open("wb") as fh:
        fh.write(data[:24])
        body = bytearray(data[24:pos])
        for copy in range(copies):
            if copy:
                delta = copy * shift
                for off, sec in zip(offsets, secs, strict=True):
                    put(body, off - 24, sec + delta)
            fh.write(body)
    return copies * len(offsets)


def write_tiled(path: Path, tile_packets: int, copies: int, bulk_caplen: int) -> int:
    """A capture of ``tile_packets * copies`` packets: ``copies`` time-shifted copies of a mix
    whose bulk packets are captured to ``bulk_caplen`` bytes (see tile_pcap)."""
    tile = path.with_name(path.name + ".tile")
    try:
        write_pcap(tile, tile_packets, 1, bulk_caplen)
        return tile_pcap(tile, path, copies)
    finally:
        tile.unlink(missing_ok=True)


USAGE = ("usage: python -m bench.gen OUT.pcap PACKETS [SEED]\n"
         "       python -m bench.gen --tiled OUT.pcap TILE_PACKETS COPIES BULK_CAPLEN")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--tiled"] and len(argv) == 5:
        n = write_tiled(Path(argv[1]), int(argv[2]), int(argv[3]), int(argv[4]))
        print(f"{argv[1]}: {n} packets")
        return 0
    if len(argv) not in (2, 3) or argv[0].startswith("-"):
        print(USAGE, file=sys.stderr)
        return 2
    n = write_pcap(Path(argv[0]), int(argv[1]), int(argv[2]) if len(argv) == 3 else 1)
    print(f"{argv[0]}: {n} packets")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
