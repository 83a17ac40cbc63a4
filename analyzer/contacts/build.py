"""From protocol events to contacts with watched hosts (one per piece of evidence).

A DNS exchange for a watched name is a ``dns`` contact; a ClientHello whose SNI is watched (or,
with no SNI, a connection to an address an earlier DNS answer gave for a watched name) is a
``tls`` contact; a plaintext request whose Host is watched is an ``http`` contact. Evidence read
inside a SOCKS tunnel is the same contact with the proxy as ``via_proxy``; a SOCKS request for a
watched host whose tunnel showed no ClientHello nor HTTP request (refused, or not seen) is a
``socks`` contact, the only evidence there is.
"""

from __future__ import annotations

import bisect
from collections.abc import Container, Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from ..base.model import Contact, DnsInfo, HttpInfo, ProxyHop, TlsInfo
from ..base.watchlist import WatchList
from ..events.builtin.intern import Interner
from ..events.records import DnsExchange, Evidence, HttpExchange, SocksExchange, TlsSession
from ..protocols.tls import version_name
from .clients import infer_client
from .operations import operation_for


@dataclass
class AddressMap:
    """Time-aware map from answered addresses to the names they were answered for."""

    _by_addr: dict[str, list[tuple[float, str, int]]] = field(default_factory=dict)

    def add(self, addr: str, ts: float, name: str, frame: int) -> None:
        entries = self._by_addr.setdefault(addr, [])
        bisect.insort(entries, (ts, name, frame))

    def lookup(self, addr: str, ts: float) -> tuple[str, int] | None:
        """The name most recently answered with ``addr`` at or before ``ts``."""
        entries = self._by_addr.get(addr)
        if not entries:
            return None
        i = bisect.bisect_right(entries, (ts, "\uffff", 1 << 62))
        if i == 0:
            return None
        _, name, frame = entries[i - 1]
        return name, frame

    @classmethod
    def from_dns(cls, exchanges: Iterable[DnsExchange],
                 wanted: Container[str] | None = None) -> AddressMap:
        """Every answered address, or only those in ``wanted`` (the ones that will be looked up:
        a lookup reads its own address's entries alone, and a big capture answers tens of
        thousands of queries that nothing looks up)."""
        amap = cls()
        for ex in exchanges:
            for resp, ts, frame in zip(ex.responses, ex.response_ts, ex.response_frames,
                                       strict=False):
                for addr in resp.addresses():
                    if wanted is None or addr in wanted:
                        amap.add(addr, ts, ex.qname, frame)
        return amap


def redact_url(url: str | None) -> str | None:
    """Drop userinfo (``user:password@``) from a URL; captures hold secrets."""
    if not url or "@" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _watched_name(watch: WatchList, ex: DnsExchange) -> str | None:
    if watch.matches(ex.qname):
        return ex.qname
    resp = ex.first_response
    if resp is not None:
        for name in resp.cname_chain(ex.qname):
            if watch.matches(name):
                return name
    return None


def dns_contacts(evidence: Evidence, watch: WatchList,
                 intern: Interner | None = None) -> list[Contact]:
    intern = intern or Interner()  # one DnsInfo per distinct answer (see events.builtin.intern)
    out = []
    for ex in evidence.dns:
        contact = dns_contact(ex, watch, intern)
        if contact is not None:
            out.append(contact)
    return out


def dns_contact(ex: DnsExchange, watch: WatchList, intern: Interner) -> Contact | None:
    """The contact of one DNS exchange (None when its name is not watched)."""
    host = _watched_name(watch, ex)
    if host is None:
        return None
    resp = ex.first_response
    info = intern(DnsInfo(
        qname=ex.qname, qtype=ex.qtype,
        answers=tuple(r.value for r in resp.answers) if resp else (),
        rcode=resp.rcode if resp else None, resolver=ex.flow.server,
        cnames=resp.cname_chain(ex.qname) if resp else (),
    ))
    frames = ((ex.query_frame,) if ex.query_frame else ()) + ex.response_frames
    notes = () if resp else ("no response seen",)
    return Contact(
        ts=ex.ts, layer="dns", host=host, transport=ex.flow.transport, src=ex.flow.client,
        sport=ex.flow.client_port, dst=ex.flow.server, dport=ex.flow.server_port,
        flow_id=ex.flow.flow_id, frames=frames, capture=ex.flow.capture, dns=info,
        notes=notes)


def tls_contacts(evidence: Evidence, watch: WatchList, amap: AddressMap,
                 redact: bool = True, intern: Interner | None = None) -> list[Contact]:
    intern = intern or Interner()
    out = []
    for s in evidence.tls:
        hello = s.client_hello
        notes: list[str] = []
        from_dns = False
        host = hello.sni
        request = _tunnel_request(s.via_proxy)
        if host is None and s.tunnel_host:
            host = s.tunnel_host
            notes.append(f"no SNI; name from the {request} ({s.tunnel_host})")
        elif host is None:
            # through a SOCKS tunnel the destination is the request's address, not the proxy's
            dest = s.tunnel_address or s.flow.server
            found = amap.lookup(dest, s.ts)
            if found is not None:
                host, frame = found
                from_dns = True
                notes.append(f"no SNI; {dest} was the DNS answer for {host} "
                             f"in frame {frame}")
        if host is None or not watch.matches(host):
            continue
        notes.extend(_socks_notes(s.via_proxy, s.tunnel_host))
        if s.server_note:
            notes.append(s.server_note)
        if s.tunnel_host and hello.sni and s.tunnel_host != hello.sni:
            notes.append(f"{request} target {s.tunnel_host} differs from SNI {hello.sni}")
        server = s.server
        version = None
        issuer = subject = None
        sans: tuple[str, ...] = ()
        if server is not None and server.server_hello is not None:
            version = version_name(server.server_hello.version)
        if server is not None and server.certificates:
            leaf = server.certificates[0]
            issuer, subject, sans = leaf.issuer, leaf.subject, leaf.sans
        info = intern(TlsInfo(sni=hello.sni, alpn=hello.alpn, version=version, ja4=hello.ja4,
                              ja3=hello.ja3, cert_issuer=issuer, cert_subject=subject,
                              cert_sans=sans, offered_version=hello.max_version_name,
                              name_from_dns=from_dns))
        http_info, operations, url = _decrypted(s, host, redact)
        ua = http_info.user_agent if http_info else None
        client, evidence_text = infer_client(hello.ja4, ua, host, operations)
        out.append(Contact(
            ts=s.ts, layer="tls", host=host, transport="tcp", src=s.flow.client,
            sport=s.flow.client_port, dst=s.flow.server, dport=s.flow.server_port,
            flow_id=s.flow.flow_id, frames=s.frames + s.server_frames, capture=s.flow.capture,
            client=client, client_evidence=evidence_text,
            tls=info, via_proxy=s.via_proxy, notes=intern(tuple(notes)), http=http_info,
            operation=operations[0] if operations else None, operations=operations, url=url))
    return out


def _tunnel_request(hop: ProxyHop | None) -> str:
    if hop is not None and hop.kind in ("socks4", "socks5"):
        return f"{hop.kind.upper()} request"
    return "CONNECT request"


def _socks_notes(hop: ProxyHop | None, hostname: str | None) -> list[str]:
    """What a SOCKS tunnel says about name resolution (socks4a / socks5h)."""
    if hop is None or hop.kind not in ("socks4", "socks5") or not hostname:
        return []
    return [f"the {hop.kind.upper()} request named {hostname} for the proxy to resolve: "
            "no DNS lookup for it on this machine"]


def _decrypted(s: TlsSession, host: str,
               redact: bool) -> tuple[HttpInfo | None, tuple[str, ...], str | None]:
    """What the requests read inside the connection (with a key log) say: the first request's
    details, every Go operation in order, and the first request's https URL."""
    if not s.requests:
        return None, (), None
    operations = []
    for ex in s.requests:
        req = ex.request
        op = operation_for(req.host or host, req.path, req.method, req.user_agent)
        if op is not None:
            operations.append(op)
    first = s.requests[0]
    req, resp = first.request, first.response
    url: str | None = f"https://{req.host or host}{req.path}"
    location = resp.location if resp else None
    if redact:
        url, location = redact_url(url), redact_url(location)
    info = HttpInfo(method=req.method, path=req.path, user_agent=req.user_agent,
                    status=resp.status if resp else None, location=location, url=url)
    return info, tuple(operations), url


def _http_url(ex: HttpExchange) -> str:
    req = ex.request
    if req.method == "CONNECT":
        return req.target
    if "://" in req.target[:12]:
        return req.target
    authority = req.header("host") or (req.target if req.authority_form else ex.flow.server)
    if not req.target.startswith("/"):
        # asterisk-form, authority-form or no target: the URL has no path (RFC 9112 3.3)
        return f"http://{authority}"
    return f"http://{authority}{req.target}"


def http_contacts(evidence: Evidence, watch: WatchList, redact: bool = True) -> list[Contact]:
    out = []
    socks_names = {s.flow: s.request.hostname for s in evidence.socks}
    for ex in evidence.http:
        req = ex.request
        host = req.host
        if not watch.matches(host):
            continue
        assert host is not None
        resp = ex.response
        url = _http_url(ex)
        location = resp.location if resp else None
        if redact:
            url, location = redact_url(url) or url, redact_url(location)
        ua = req.user_agent
        path = None if req.method == "CONNECT" else req.path
        info = HttpInfo(method=req.method, path=path, user_agent=ua,
                        status=resp.status if resp else None, location=location, url=url)
        operation = None if req.method == "CONNECT" else operation_for(host, path, req.method, ua)
        client, client_evidence = infer_client(None, ua, host, (operation,) if operation else ())
        via_socks = ex.via_proxy is not None and ex.via_proxy.kind in ("socks4", "socks5")
        notes = _socks_notes(ex.via_proxy, socks_names.get(ex.flow)) if via_socks else []
        out.append(Contact(
            ts=ex.ts, layer="http", host=host, transport="tcp", src=ex.flow.client,
            sport=ex.flow.client_port, dst=ex.flow.server, dport=ex.flow.server_port,
            flow_id=ex.flow.flow_id, frames=ex.frames + ex.response_frames,
            capture=ex.flow.capture, client=client, client_evidence=client_evidence,
            http=info, via_proxy=ex.via_proxy, operation=operation, url=url,
            notes=tuple(notes) + req.unusual))
    return out


def socks_contacts(evidence: Evidence, watch: WatchList, amap: AddressMap) -> list[Contact]:
    """SOCKS requests for watched hosts whose tunnel showed no TLS or HTTP (refused by the
    proxy, not answered, or carrying something else): the request is the only evidence."""
    out = []
    for s in evidence.socks:
        if s.followed or s.request.command != 1:
            continue
        req = s.request
        notes: list[str] = []
        host = req.hostname
        if host is None and req.address:
            found = amap.lookup(req.address, s.ts)
            if found is not None:
                host, frame = found
                notes.append(f"{req.address} was the DNS answer for {host} in frame {frame}")
        if host is None or not watch.matches(host):
            continue
        hop = ProxyHop(s.flow.server, s.flow.server_port, req.kind)
        notes.insert(0, _socks_summary(s))
        notes.extend(_socks_notes(hop, req.hostname))
        if s.note and (s.reply is None or s.reply.granted):  # a refusal is in the summary
            notes.append(s.note)
        out.append(Contact(
            ts=s.ts, layer="socks", host=host, transport="tcp", src=s.flow.client,
            sport=s.flow.client_port, dst=s.flow.server, dport=s.flow.server_port,
            flow_id=s.flow.flow_id, frames=s.frames + s.reply_frames, capture=s.flow.capture,
            via_proxy=hop, notes=tuple(notes)))
    return out


def _socks_summary(s: SocksExchange) -> str:
    req = s.request
    target = f"[{req.target}]" if ":" in req.target else req.target
    text = f"{req.variant} {req.command_name} {target}:{req.port}"
    if s.reply is not None:
        text += f"; reply: {s.reply.reason}"
    return text


def looked_up(evidence: Evidence) -> set[str]:
    """The addresses ``tls_contacts`` and ``socks_contacts`` look up in the DNS answers: the
    destination of a ClientHello with no SNI and no tunnel name, and a SOCKS request's address
    when it names no host."""
    wanted = {s.tunnel_address or s.flow.server for s in evidence.tls
              if s.client_hello.sni is None and not s.tunnel_host}
    wanted.update(s.request.address for s in evidence.socks
                  if s.request.hostname is None and s.request.address)
    return wanted


_NO_FRAME = float("-inf")  # before every frame number, as () is before every (frame,)


def build_contacts(evidence: Evidence, watch: WatchList, redact: bool = True) -> list[Contact]:
    amap = AddressMap.from_dns(evidence.dns, looked_up(evidence))
    intern = Interner()
    contacts = dns_contacts(evidence, watch, intern)
    contacts += other_contacts(evidence, watch, amap, redact, intern)
    sort_contacts(contacts)
    return contacts


def other_contacts(evidence: Evidence, watch: WatchList, amap: AddressMap, redact: bool = True,
                   intern: Interner | None = None) -> list[Contact]:
    """The TLS, HTTP and SOCKS contacts, in that order (``build_contacts`` without DNS)."""
    contacts = tls_contacts(evidence, watch, amap, redact, intern)
    contacts += http_contacts(evidence, watch, redact)
    contacts += socks_contacts(evidence, watch, amap)
    return contacts


def sort_contacts(contacts: list[Contact]) -> None:
    """By (time, first frame), stable: two stable sorts, the second key first, order exactly as
    one sort by the pair would, without a key tuple per contact."""
    contacts.sort(key=lambda c: c.frames[0] if c.frames else _NO_FRAME)
    contacts.sort(key=_time)


def _time(contact: Contact) -> float:
    return contact.ts
