"""Evidence for findings tests, built from real bytes (dpkt-built DNS, HTTP text) where it can be."""

from __future__ import annotations

import socket

import dpkt

from analyzer.base.model import Contact, DnsInfo, HttpInfo
from analyzer.events.records import DnsExchange, FlowRef, HttpExchange
from analyzer.protocols.dns import DnsMessage, parse_dns
from analyzer.protocols.http import HttpRequest, HttpResponse, HttpStreamParser

CLIENT = "192.0.2.10"
RESOLVER = "192.0.2.53"


def dns_response(name: str, addresses: list[str], txid: int = 0x1234) -> DnsMessage:
    q = dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN)
    msg = dpkt.dns.DNS(id=txid, op=dpkt.dns.DNS_QR | dpkt.dns.DNS_RD | dpkt.dns.DNS_RA, qd=[q], an=[
        dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, cls=dpkt.dns.DNS_IN, ttl=60,
                        rdata=socket.inet_aton(a)) for a in addresses])
    return parse_dns(bytes(msg))


def exchange(name: str, answers: list[list[str]], *, sources: list[str] | None = None,
             resolver: str = RESOLVER, port: int = 40000, query_frame: int | None = 1,
             ts: float = 100.0) -> DnsExchange:
    flow = FlowRef("udp", CLIENT, port, resolver, 53, "test.pcap")
    responses = tuple(dns_response(name, a) for a in answers)
    first = 1 if query_frame is None else query_frame
    frames = tuple(range(first + 1, first + 1 + len(responses)))
    return DnsExchange(ts, flow, 0x1234, name, "A", query_frame, responses, frames,
                       tuple(sources or [resolver] * len(responses)),
                       tuple(ts + 0.01 * (i + 1) for i in range(len(responses))))


def dns_contact(ex: DnsExchange) -> Contact:
    first = ex.first_response
    return Contact(ts=ex.ts, layer="dns", host=ex.qname, transport="udp", src=ex.flow.client,
                   sport=ex.flow.client_port, dst=ex.flow.server, dport=53, flow_id=ex.flow.flow_id,
                   frames=((ex.query_frame,) if ex.query_frame else ()) + ex.response_frames,
                   dns=DnsInfo(ex.qname, ex.qtype,
                               tuple(r.value for r in first.answers) if first else (),
                               first.rcode if first else None, ex.flow.server))


def http_messages(request: bytes, response: bytes | None) -> tuple[HttpRequest, HttpResponse | None]:
    req = HttpStreamParser(True).feed(request)[0]
    assert isinstance(req, HttpRequest)
    resp = None
    if response is not None:
        parser = HttpStreamParser(False)
        parser.note_request_method(req.method)
        parsed = parser.feed(response)[0]
        assert isinstance(parsed, HttpResponse)
        resp = parsed
    return req, resp


def http_exchange(request: bytes, response: bytes | None, server: str = "198.51.100.7",
                  port: int = 80, ts: float = 200.0) -> HttpExchange:
    req, resp = http_messages(request, response)
    flow = FlowRef("tcp", CLIENT, 50000, server, port, "test.pcap")
    return HttpExchange(ts, flow, req, (4,), resp, (6,) if resp else ())


def http_contact(ex: HttpExchange) -> Contact:
    req, resp = ex.request, ex.response
    host = req.host or ex.flow.server
    return Contact(ts=ex.ts, layer="http", host=host, transport="tcp", src=ex.flow.client,
                   sport=ex.flow.client_port, dst=ex.flow.server, dport=ex.flow.server_port,
                   flow_id=ex.flow.flow_id, frames=ex.frames + ex.response_frames,
                   http=HttpInfo(req.method, req.path, req.user_agent,
                                 resp.status if resp else None, resp.location if resp else None,
                                 f"http://{host}{req.target}"))
