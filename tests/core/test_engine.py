"""End-to-end engine tests on edge cases crafted with scapy around real protocol bytes.

The ClientHellos are real ones taken from FoxIO's and Zeek's public captures; scapy only
re-segments them (split, reordered, retransmitted, overlapping) the way real networks do.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRR
from scapy.layers.inet import IP, TCP, UDP
from scapy.layers.l2 import Ether
from scapy.utils import wrpcap

from analyzer.base.watchlist import WatchList
from analyzer.events.builtin.read import read_evidence_builtin
from analyzer.packets.decode import Decoder
from analyzer.pipeline import AnalyzeOptions, analyze_files
from analyzer.source.capture_file import ReadState, open_capture

CLIENT, SERVER, RESOLVER = "10.77.0.2", "10.77.0.80", "10.77.0.53"


def _first_client_payload(path: Path) -> bytes:
    """The first TCP payload that starts a TLS handshake, from a real capture."""
    dec = Decoder()
    with path.open("rb") as fh:
        for frame in open_capture(fh, ReadState(path.name)):
            seg = dec.decode(frame.number, frame.ts, frame.linktype, frame.data)
            if seg is not None and seg.payload[:1] == b"\x16" and seg.payload[5:6] == b"\x01":
                return seg.payload
    raise AssertionError("no ClientHello")


@pytest.fixture
def hello_with_sni(shared_captures: Path) -> bytes:
    return _first_client_payload(shared_captures / "ja4" / "tls-alpn-h2.pcap")


@pytest.fixture
def hello_without_sni(shared_captures: Path) -> bytes:
    return _first_client_payload(shared_captures / "public" / "tls_hrr.pcap")


class Conversation:
    """A TCP connection written packet by packet (client-side sequence numbers tracked)."""

    def __init__(self, sport: int = 40001, dport: int = 443, server: str = SERVER) -> None:
        self.sport, self.dport, self.server = sport, dport, server
        self.cseq, self.sseq = 1000, 5000
        self.packets: list = []

    def _pkt(self, from_client: bool, flags: str, seq: int, payload: bytes = b"") -> object:
        if from_client:
            ip = IP(src=CLIENT, dst=self.server)
            tcp = TCP(sport=self.sport, dport=self.dport, flags=flags, seq=seq)
        else:
            ip = IP(src=self.server, dst=CLIENT)
            tcp = TCP(sport=self.dport, dport=self.sport, flags=flags, seq=seq)
        return Ether() / ip / tcp / payload if payload else Ether() / ip / tcp

    def handshake(self) -> Conversation:
        self.packets += [self._pkt(True, "S", self.cseq - 1), self._pkt(False, "SA", self.sseq - 1),
                         self._pkt(True, "A", self.cseq)]
        return self

    def client(self, data: bytes, at: int | None = None) -> Conversation:
        """Client data at stream offset ``at`` (default: next)."""
        seq = self.cseq + (at if at is not None else 0)
        self.packets.append(self._pkt(True, "PA", seq, data))
        if at is None:
            self.cseq += len(data)
        return self

    def server_data(self, data: bytes) -> Conversation:
        self.packets.append(self._pkt(False, "PA", self.sseq, data))
        self.sseq += len(data)
        return self

    def advance_client(self, n: int) -> None:
        self.cseq += n


def _analyze(tmp_path: Path, packets: list, watch: list[str]) -> object:
    path = tmp_path / "t.pcap"
    wrpcap(str(path), packets)
    return analyze_files([path], AnalyzeOptions(watch=WatchList.build(watch)))


def test_split_reordered_overlapping_client_hello(tmp_path: Path, hello_with_sni: bytes) -> None:
    whole = Conversation().handshake().client(hello_with_sni).packets
    reference = _analyze(tmp_path, whole, ["www.cloudflare.com"])
    conv = Conversation().handshake()
    cut = len(hello_with_sni) // 2
    conv.client(hello_with_sni[cut:], at=cut)            # second segment first
    conv.client(hello_with_sni[cut - 50:cut + 20], at=cut - 50)  # overlapping retransmission
    conv.client(hello_with_sni[:cut], at=0)              # then the first
    conv.client(hello_with_sni[:cut], at=0)              # duplicate
    report = _analyze(tmp_path, conv.packets, ["www.cloudflare.com"])
    [contact] = report.contacts
    [ref] = reference.contacts
    assert contact.layer == "tls" and contact.host == "www.cloudflare.com"
    assert contact.tls is not None and ref.tls is not None
    assert contact.tls.ja4 == ref.tls.ja4 and contact.tls.ja3 == ref.tls.ja3
    assert len(contact.frames) >= 2  # the hello came from more than one segment


def test_tls_without_sni_named_from_earlier_dns(tmp_path: Path, hello_without_sni: bytes) -> None:
    dns_q = Ether() / IP(src=CLIENT, dst=RESOLVER) / UDP(sport=50000, dport=53) / DNS(
        id=1, rd=1, qd=DNSQR(qname="proxy.golang.org"))
    dns_r = Ether() / IP(src=RESOLVER, dst=CLIENT) / UDP(sport=53, dport=50000) / DNS(
        id=1, qr=1, qd=DNSQR(qname="proxy.golang.org"),
        an=DNSRR(rrname="proxy.golang.org", type="A", rdata=SERVER))
    conv = Conversation().handshake().client(hello_without_sni)
    report = _analyze(tmp_path, [dns_q, dns_r, *conv.packets], ["proxy.golang.org"])
    layers = sorted(c.layer for c in report.contacts)
    assert layers == ["dns", "tls"]
    tls = next(c for c in report.contacts if c.layer == "tls")
    assert tls.host == "proxy.golang.org" and tls.tls is not None
    assert tls.tls.sni is None and tls.tls.name_from_dns
    assert any("no SNI" in n for n in tls.notes)


def test_dns_over_tcp_split_in_two(tmp_path: Path) -> None:
    query = bytes(DNS(id=9, rd=1, qd=DNSQR(qname="sum.golang.org", qtype="AAAA")))
    answer = bytes(DNS(id=9, qr=1, qd=DNSQR(qname="sum.golang.org", qtype="AAAA"),
                       an=DNSRR(rrname="sum.golang.org", type="AAAA", rdata="fd00::1")))
    q = len(query).to_bytes(2, "big") + query
    a = len(answer).to_bytes(2, "big") + answer
    conv = Conversation(dport=53, server=RESOLVER).handshake()
    conv.client(q[:5]).client(q[5:])
    conv.server_data(a[:1]).server_data(a[1:])
    report = _analyze(tmp_path, conv.packets, ["sum.golang.org"])
    [contact] = report.contacts
    assert contact.layer == "dns" and contact.transport == "tcp"
    assert contact.dns is not None and contact.dns.qtype == "AAAA"
    assert contact.dns.answers == ("fd00::1",)


def test_http_keepalive_headers_across_segments(tmp_path: Path) -> None:
    r1 = (b"GET /golang.org/x/text/@v/list HTTP/1.1\r\nHost: proxy.golang.org\r\n"
          b"User-Agent: GoCommand/1 (+https://go.dev/cmd/go)\r\n\r\n")
    r2 = (b"GET /golang.org/x/text/@v/v0.3.0.zip HTTP/1.1\r\nHost: proxy.golang.org\r\n"
          b"User-Agent: GoCommand/1 (+https://go.dev/cmd/go)\r\n\r\n")
    body = b"PK" + b"z" * 3000
    resp1 = b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nv0.3.0\n"
    resp2 = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    conv = Conversation(dport=80).handshake()
    conv.client(r1[:20]).client(r1[20:])
    conv.server_data(resp1)
    conv.client(r2)
    conv.server_data(resp2[:1000]).server_data(resp2[1000:])
    report = _analyze(tmp_path, conv.packets, ["proxy.golang.org"])
    ops = [(c.http.path if c.http else None, c.operation, c.http.status if c.http else None,
            c.client) for c in report.contacts]
    assert ops == [("/golang.org/x/text/@v/list", "module-list", 200, "go-command"),
                   ("/golang.org/x/text/@v/v0.3.0.zip", "module-zip", 200, "go-command")]


def test_connect_tunnel_reports_host_and_proxy(tmp_path: Path, hello_with_sni: bytes) -> None:
    conv = Conversation(dport=3128).handshake()
    conv.client(b"CONNECT www.cloudflare.com:443 HTTP/1.1\r\nHost: www.cloudflare.com:443\r\n"
                b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n")
    conv.server_data(b"HTTP/1.1 200 Connection established\r\n\r\n")
    conv.client(hello_with_sni)
    report = _analyze(tmp_path, conv.packets, ["www.cloudflare.com"])
    by_layer = {c.layer: c for c in report.contacts}
    assert set(by_layer) == {"http", "tls"}
    assert by_layer["http"].http is not None and by_layer["http"].http.method == "CONNECT"
    tls = by_layer["tls"]
    assert tls.via_proxy is not None and (tls.via_proxy.address, tls.via_proxy.port) == (
        SERVER, 3128)
    assert tls.tls is not None and tls.tls.sni == "www.cloudflare.com"
    assert "dXNlcjpzZWNyZXQ" not in str([c.to_dict() for c in report.contacts])


def test_connect_retried_after_407_is_followed_into_its_tunnel(tmp_path: Path,
                                                              hello_with_sni: bytes) -> None:
    """curl and NTLM/Negotiate proxies: CONNECT, 407, the same CONNECT with credentials on the
    same connection, 200, then TLS."""
    conv = Conversation(dport=3128).handshake()
    conv.client(b"CONNECT www.cloudflare.com:443 HTTP/1.1\r\nHost: www.cloudflare.com:443\r\n\r\n")
    conv.server_data(b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                     b"Proxy-Authenticate: Basic realm=\"corp\"\r\nContent-Length: 5\r\n\r\ndeny\n")
    conv.client(b"CONNECT www.cloudflare.com:443 HTTP/1.1\r\nHost: www.cloudflare.com:443\r\n"
                b"Proxy-Authorization: Basic dXNlcjpzZWNyZXQ=\r\n\r\n")
    conv.server_data(b"HTTP/1.1 200 Connection established\r\n\r\n")
    hello_frame = len(conv.packets) + 1
    conv.client(hello_with_sni)
    report = _analyze(tmp_path, conv.packets, ["www.cloudflare.com"])
    http = [c for c in report.contacts if c.layer == "http"]
    assert [(c.http.method, c.http.status) for c in http if c.http] == [("CONNECT", 407),
                                                                        ("CONNECT", 200)]
    tls = [c for c in report.contacts if c.layer == "tls"]
    assert len(tls) == 1 and tls[0].tls is not None
    assert tls[0].tls.sni == "www.cloudflare.com" and tls[0].tls.ja4
    assert tls[0].via_proxy is not None and tls[0].via_proxy.port == 3128
    assert tls[0].frames[0] == hello_frame
    assert "dXNlcjpzZWNyZXQ" not in str([c.to_dict() for c in report.contacts])


def test_truncated_capture_keeps_contacts_before_damage(tmp_path: Path,
                                                       hello_with_sni: bytes) -> None:
    conv = Conversation().handshake().client(hello_with_sni)
    path = tmp_path / "cut.pcap"
    wrpcap(str(path), conv.packets + Conversation(sport=40002).handshake().packets)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    ev = read_evidence_builtin(path)
    assert len(ev.tls) == 1
    assert ev.stats[0].damaged and "stopped there" in ev.stats[0].warnings[0]
