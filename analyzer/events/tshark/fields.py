"""Records from the protocol trees tshark prints with ``-T json``: pure functions over dicts.

tshark's JSON nests a packet's fields the way Wireshark shows them (records, handshake messages,
extensions, DNS answers). pyshark parses it with an object hook that turns repeated keys into
lists, so any value here may be a single item or a list of them; ``items`` and ``first`` hide
that. Every function raises only ``ParseError`` on shapes it cannot use.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from ...base.errors import ParseError
from ...protocols import dns as dnsp
from ...protocols.certificate import CertificateInfo
from ...protocols.http import HttpRequest, HttpResponse
from ...protocols.socks import METHOD_REFUSED, SOCKS4_GRANTED, SocksReply, SocksRequest
from ...protocols.tls import ClientHello, ServerHello, alpn_text
from ...protocols.tls_fingerprint import ja3_hash, ja3_string, ja4_parts
from ...protocols.x509 import certificate_info

Tree = dict[str, Any]

HELLO_RETRY_RANDOM = "cf21ad74e59a6111be1d8c021e65b891c2a211167abb8c5e079e09e2c8a8339c"


def items(value: Any) -> list[Any]:
    """A field that appeared once, several times (a list), or not at all (None), as a list."""
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def first(value: Any) -> Any:
    found = items(value)
    return found[0] if found else None


def walk(tree: Any, key: str) -> Iterator[Any]:
    """Every value stored under ``key`` anywhere below ``tree``, in document order."""
    if isinstance(tree, list):
        for sub in tree:
            yield from walk(sub, key)
    elif isinstance(tree, dict):
        for k, v in tree.items():
            if k == key:
                yield from items(v)
            elif isinstance(v, dict | list):
                yield from walk(v, key)


def number(text: Any) -> int:
    """tshark prints integers in decimal or as 0x-prefixed hex, depending on the field."""
    try:
        return int(str(text), 0)
    except (TypeError, ValueError):
        raise ParseError(f"tshark field value {text!r} is not a number") from None


def hex_bytes(text: Any) -> bytes:
    """A bytes field (``aa:bb:cc``, or plain hex) as bytes."""
    try:
        return bytes.fromhex(str(text).replace(":", ""))
    except ValueError:
        raise ParseError(f"tshark field value {str(text)[:40]!r} is not hex") from None


# ------------------------------------------------------------------------------------ DNS

def _dns_name(text: Any) -> str:
    name = str(text or "")
    if name in ("<Root>", "<root>"):
        return ""
    return name.rstrip(".").lower()


def _children(tree: Tree, section: str) -> list[Tree]:
    """The per-record subtrees of a DNS section ("Queries", "Answers"...), in order."""
    out: list[Tree] = []
    for sec in items(tree.get(section)):
        if not isinstance(sec, dict):
            continue
        for value in sec.values():
            out.extend(v for v in items(value) if isinstance(v, dict))
    return out


def _svcb_record(rec: Tree) -> dnsp.SvcbData:
    priority = number(first(rec.get("dns.svcb.svcpriority")) or 0)
    target = _dns_name(first(rec.get("dns.svcb.targetname"))) or "."
    alpn: tuple[str, ...] = ()
    port = None
    v4: tuple[str, ...] = ()
    v6: tuple[str, ...] = ()
    ech = False
    keys: list[str] = []
    for param in walk(rec, "dns.svcb.svcparam.key"):
        code = number(param)
        keys.append(dnsp._SVC_KEYS.get(code, f"key{code}"))
        if code == 5:
            ech = True
    alpn = tuple(str(a) for a in walk(rec, "dns.svcb.svcparam.alpn"))
    ports = list(walk(rec, "dns.svcb.svcparam.port"))
    if ports:
        port = number(ports[0])
    v4 = tuple(str(a) for a in walk(rec, "dns.svcb.svcparam.ipv4hint.ip"))
    v6 = tuple(str(ipaddress.ip_address(a)) for a in walk(rec, "dns.svcb.svcparam.ipv6hint.ip"))
    return dnsp.SvcbData(priority, target, alpn, port, v4, v6, ech, tuple(keys))


def _dns_record(rec: Tree) -> dnsp.DnsRecord | None:
    rtype = number(first(rec.get("dns.resp.type")))
    if rtype == 41:  # OPT pseudo-record: not an answer (the builtin parser drops it too)
        return None
    name = _dns_name(first(rec.get("dns.resp.name")))
    ttl = number(first(rec.get("dns.resp.ttl")) or 0)
    kind = dnsp.type_name(rtype)
    if kind in ("A", "AAAA"):
        raw = first(rec.get("dns.a" if kind == "A" else "dns.aaaa"))
        if raw is None:
            raise ParseError(f"{kind} record without an address")
        address = str(ipaddress.ip_address(str(raw)))
        return dnsp.DnsRecord(name, kind, ttl, address, (address,))
    simple = {"CNAME": "dns.cname", "NS": "dns.ns", "PTR": "dns.ptr.domain_name"}
    if kind in simple:
        return dnsp.DnsRecord(name, kind, ttl, _dns_name(first(rec.get(simple[kind]))))
    if kind in ("SVCB", "HTTPS"):
        data = _svcb_record(rec)
        return dnsp.DnsRecord(name, kind, ttl, dnsp._svcb_text(data),
                              data.ipv4hint + data.ipv6hint, data)
    if kind == "MX":
        return dnsp.DnsRecord(name, kind, ttl, f"{number(first(rec.get('dns.mx.preference')))} "
                                              f"{_dns_name(first(rec.get('dns.mx.mail_exchange')))}")
    if kind == "SRV":
        return dnsp.DnsRecord(name, kind, ttl, " ".join((
            str(number(first(rec.get("dns.srv.priority")))),
            str(number(first(rec.get("dns.srv.weight")))),
            str(number(first(rec.get("dns.srv.port")))),
            _dns_name(first(rec.get("dns.srv.target"))))))
    if kind == "SOA":
        return dnsp.DnsRecord(name, kind, ttl, " ".join((
            _dns_name(first(rec.get("dns.soa.mname"))),
            _dns_name(first(rec.get("dns.soa.rname"))),
            str(number(first(rec.get("dns.soa.serial_number")))))))
    if kind == "TXT":
        text = " ".join(f'"{s}"' for s in walk(rec, "dns.txt"))
        return dnsp.DnsRecord(name, kind, ttl, text[:200])
    # Other types: Wireshark shows their data in type-specific fields; the generic form below
    # keeps the length only (the builtin parser adds the first bytes in hex).
    return dnsp.DnsRecord(name, kind, ttl, f"\\# {number(first(rec.get('dns.resp.len')) or 0)}")


def _dns_records(tree: Tree, section: str) -> tuple[dnsp.DnsRecord, ...]:
    out = []
    for rec in _children(tree, section):
        if "dns.resp.type" not in rec:
            continue
        record = _dns_record(rec)
        if record is not None:
            out.append(record)
    return tuple(out)


def dns_message(tree: Tree) -> dnsp.DnsMessage:
    """A DnsMessage from one ``dns`` (or ``mdns``) layer."""
    flags = first(tree.get("dns.flags_tree")) or {}
    if not isinstance(flags, dict) or "dns.id" not in tree:
        raise ParseError("DNS layer without header fields")
    rcode = number(first(flags.get("dns.flags.rcode")) or 0)
    opt = [r for r in _children(tree, "Additional records")
           if number(first(r.get("dns.resp.type")) or 0) == 41]
    payload_size = None
    do_bit = False
    if opt:
        ext_rcode = first(opt[0].get("dns.resp.ext_rcode"))
        if ext_rcode is not None:
            rcode |= number(ext_rcode) << 4
        size = first(opt[0].get("dns.rr.udp_payload_size"))
        payload_size = number(size) if size is not None else None
        z_tree = first(opt[0].get("dns.resp.z_tree")) or {}
        do_bit = isinstance(z_tree, dict) and first(z_tree.get("dns.resp.z.do")) in ("1", "True")
    questions = tuple(
        dnsp.DnsQuestion(_dns_name(first(q.get("dns.qry.name"))),
                         dnsp.type_name(number(first(q.get("dns.qry.type")))))
        for q in _children(tree, "Queries") if "dns.qry.type" in q)
    return dnsp.DnsMessage(
        txid=number(first(tree.get("dns.id"))),
        is_response=first(flags.get("dns.flags.response")) == "1",
        opcode=number(first(flags.get("dns.flags.opcode")) or 0),
        rcode=dnsp.rcode_name(rcode),
        questions=questions,
        answers=_dns_records(tree, "Answers"),
        has_edns=bool(opt),
        authority=_dns_records(tree, "Authoritative nameservers"),
        additional=_dns_records(tree, "Additional records"),
        truncated=first(flags.get("dns.flags.truncated")) == "1",
        recursion_desired=first(flags.get("dns.flags.recdesired")) == "1",
        authenticated_data=first(flags.get("dns.flags.authenticated")) == "1",
        edns_payload_size=payload_size,
        edns_do=do_bit,
    )


# ------------------------------------------------------------------------------------ TLS

def tls_records(layer: Tree) -> list[Tree]:
    return [r for r in items(layer.get("tls.record")) if isinstance(r, dict)]


def handshakes(record: Tree) -> list[Tree]:
    return [h for h in items(record.get("tls.handshake")) if isinstance(h, dict)]


def _extensions(hs: Tree) -> list[Tree]:
    """Extension subtrees in wire order (their keys are "Extension: name (len=N)")."""
    out: list[Tree] = []
    for key, value in hs.items():
        if key.startswith("Extension: "):
            out.extend(v for v in items(value) if isinstance(v, dict))
    return out


def raw_hex(value: Any) -> str | None:
    """The hex of a field's bytes from ``-x`` output (``"<field>_raw": [hex, pos, len, ...]``)."""
    found = value[0] if isinstance(value, list) and value else value
    return found if isinstance(found, str) else None


def _alpn_from_raw(hexed: str) -> tuple[bytes, ...]:
    data = hex_bytes(hexed)
    out, pos = [], 0
    while pos < len(data):
        end = pos + 1 + data[pos]
        if end > len(data):
            raise ParseError("ALPN protocol name overruns its list")
        out.append(data[pos + 1:end])
        pos = end
    return tuple(out)


def alpn_values(ext: Tree) -> tuple[tuple[bytes, ...], bool]:
    """The ALPN protocol names of an ALPN extension as bytes, and whether they are exact.

    tshark prints each name as text, and the text loses bytes: one above 0x7f becomes U+FFFD, a
    NUL ends it, and an empty name gets no text at all. The text is exact only when every name
    has text as long as the length tshark gives for it; otherwise the bytes come from the raw
    list that ``-x`` adds (``tls.handshake.extensions_alpn_list_raw``), when it is there.
    """
    hexed = raw_hex(ext.get("tls.handshake.extensions_alpn_list_raw"))
    if hexed is not None:
        return _alpn_from_raw(hexed), True
    texts = [str(a) for a in walk(ext, "tls.handshake.extensions_alpn_str")]
    lengths = [number(n) for n in walk(ext, "tls.handshake.extensions_alpn_str_len")]
    exact = len(texts) == len(lengths) and all(
        t.isascii() and len(t) == n for t, n in zip(texts, lengths, strict=True))
    return tuple(t.encode("latin-1", "replace") for t in texts), exact


def alpn_exact(hs: Tree) -> bool:
    """False when this ClientHello's ALPN names cannot be read exactly from tshark's text
    (see ``alpn_values``): the caller asks tshark again with ``-x`` for that frame."""
    for ext in _extensions(hs):
        if number(first(ext.get("tls.handshake.extension.type"))) == 16:
            return alpn_values(ext)[1]
    return True


def client_hello(hs: Tree) -> ClientHello:
    """A ClientHello, fingerprinted with the same JA3/JA4 functions as the builtin parser."""
    legacy_version = number(first(hs.get("tls.handshake.version")))
    ciphers = tuple(number(c) for c in walk(hs.get("tls.handshake.ciphersuites"),
                                            "tls.handshake.ciphersuite"))
    ext_types: list[int] = []
    sni = None
    alpn_raw: tuple[bytes, ...] = ()
    versions: tuple[int, ...] = ()
    groups: tuple[int, ...] = ()
    points: tuple[int, ...] = ()
    sig_algs: tuple[int, ...] = ()
    seen: set[int] = set()
    for ext in _extensions(hs):
        ext_type = number(first(ext.get("tls.handshake.extension.type")))
        ext_types.append(ext_type)
        if ext_type in seen:
            continue
        seen.add(ext_type)
        if ext_type == 0:
            names = list(walk(ext, "tls.handshake.extensions_server_name"))
            sni = str(names[0]).lower() if names else None
        elif ext_type == 16:
            alpn_raw = alpn_values(ext)[0]
        elif ext_type == 10:
            groups = tuple(number(g) for g in walk(ext, "tls.handshake.extensions_supported_group"))
        elif ext_type == 11:
            points = tuple(number(p) for p in walk(ext, "tls.handshake.extensions_ec_point_format"))
        elif ext_type == 13:
            sig_algs = tuple(number(s) for s in walk(ext, "tls.handshake.sig_hash_alg"))
        elif ext_type == 43:
            versions = tuple(number(v) for v in walk(ext, "tls.handshake.extensions.supported_version"))
    extensions = tuple(ext_types)
    text = ja3_string(legacy_version, ciphers, extensions, groups, points)
    first_alpn = alpn_raw[0] if alpn_raw else None
    ja4, ja4_r = ja4_parts(legacy_version=legacy_version, versions=versions, ciphers=ciphers,
                           extensions=extensions, sig_algs=sig_algs, first_alpn=first_alpn)
    return ClientHello(legacy_version=legacy_version, versions=versions, ciphers=ciphers,
                       extensions=extensions, sni=sni, alpn=tuple(alpn_text(a) for a in alpn_raw),
                       groups=groups,
                       ec_point_formats=points, sig_algs=sig_algs, ja3=ja3_hash(text),
                       ja3_string=text, ja4=ja4, ja4_r=ja4_r)


def server_hello(hs: Tree) -> ServerHello:
    legacy_version = number(first(hs.get("tls.handshake.version")))
    version = legacy_version
    alpn = None
    ext_types = []
    for ext in _extensions(hs):
        ext_type = number(first(ext.get("tls.handshake.extension.type")))
        ext_types.append(ext_type)
        if ext_type == 43:
            chosen = list(walk(ext, "tls.handshake.extensions.supported_version"))
            if chosen:
                version = number(chosen[0])
        elif ext_type == 16:
            names = list(walk(ext, "tls.handshake.extensions_alpn_str"))
            alpn = str(names[0]) if names else None
    random = str(first(hs.get("tls.handshake.random")) or "").replace(":", "")
    return ServerHello(legacy_version=legacy_version, version=version,
                       cipher=number(first(hs.get("tls.handshake.ciphersuite")) or 0),
                       alpn=alpn, extensions=tuple(ext_types),
                       is_hello_retry=random == HELLO_RETRY_RANDOM)


def certificates(hs: Tree) -> tuple[tuple[CertificateInfo, ...], int]:
    """The chain of a Certificate message (leaf first), and how many entries were unreadable."""
    out, skipped = [], 0
    for der in walk(hs, "tls.handshake.certificate"):
        info = certificate_info(hex_bytes(der))
        if info is None:
            skipped += 1
        else:
            out.append(info)
    return tuple(out), skipped


# ------------------------------------------------------------------------------------ HTTP

def _header_lines(lines: list[Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for line in lines:
        name, sep, value = str(line).partition(":")
        if sep:
            out.append((name.strip(), value.strip()))
    return tuple(out)


def http_message(tree: Tree) -> HttpRequest | HttpResponse | None:
    """An HTTP/1.x request or response head from one ``http`` layer."""
    if "http.request.line" in tree or any(k.startswith("http.request.method") for k in walk_keys(tree)):
        method = first(walk_first(tree, "http.request.method"))
        target = first(walk_first(tree, "http.request.uri"))
        if method is None or target is None:
            return None
        version = first(walk_first(tree, "http.request.version")) or "HTTP/1.1"
        headers = _header_lines(items(tree.get("http.request.line")))
        return HttpRequest(str(method), str(target), str(version), headers, 0)
    code = first(walk_first(tree, "http.response.code"))
    if code is None:
        return None
    version = first(walk_first(tree, "http.response.version")) or "HTTP/1.1"
    reason = first(walk_first(tree, "http.response.phrase")) or ""
    headers = _header_lines(items(tree.get("http.response.line")))
    return HttpResponse(str(version), number(code), str(reason), headers, 0)


def walk_keys(tree: Any) -> Iterator[str]:
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield k
            if isinstance(v, dict | list):
                yield from walk_keys(v)
    elif isinstance(tree, list):
        for sub in tree:
            yield from walk_keys(sub)


def walk_first(tree: Any, key: str) -> Any:
    for value in walk(tree, key):
        return value
    return None


def http2_streams(layer: Tree) -> list[tuple[int, tuple[tuple[str, str], ...]]]:
    """(stream id, decoded header list) of every HEADERS frame in one ``http2`` layer."""
    out = []
    for stream in walk(layer, "http2.stream"):
        if not isinstance(stream, dict):
            continue
        if number(first(stream.get("http2.type")) or -1) != 1:  # HEADERS
            continue
        sid = number(first(stream.get("http2.streamid")) or 0)
        headers = []
        for header in walk(stream, "http2.header"):
            if not isinstance(header, dict):
                continue
            name = first(header.get("http2.header.name"))
            value = first(header.get("http2.header.value"))
            if name is not None:
                headers.append((str(name), "" if value is None else str(value)))
        out.append((sid, tuple(headers)))
    return out


# ------------------------------------------------------------------------------------ SOCKS

def socks_message(tree: Tree, from_client: bool) -> SocksRequest | SocksReply | None:
    """The SOCKS request or answer in one ``socks`` layer, or None for other SOCKS packets (the
    greeting, RFC 1929 credentials, which are never read, and the tunnel's own bytes, which
    Wireshark also files under ``socks``). Lengths are 0: tshark does not give them."""
    version = first(tree.get("socks.version"))
    if version is None:
        return None
    if from_client:
        if first(tree.get("socks.command")) is None or "tcp.payload" in tree:
            return None
        command = number(first(tree.get("socks.command")))
        if version == "4" and "socks.username" in tree:
            name = first(tree.get("socks.v4a_dns_name"))
            address = None if name else str(first(tree.get("socks.dst")) or "")
            return SocksRequest(4, command, number(first(tree.get("socks.dstport"))), address,
                                str(name).rstrip(".").lower() if name else None, 0,
                                userid=str(first(tree.get("socks.username")) or ""))
        if version == "5" and "socks.address_type" in tree:
            name = first(tree.get("socks.remote_name"))
            address = first(tree.get("socks.dst")) or first(tree.get("socks.dstV6"))
            return SocksRequest(5, command, number(first(tree.get("socks.port"))),
                                None if name else str(ipaddress.ip_address(str(address))),
                                str(name).rstrip(".").lower() if name else None, 0)
        return None
    method = first(tree.get("socks.auth_accepted_method"))
    if method is not None and number(method) == METHOD_REFUSED:
        return SocksReply(5, False, "method", METHOD_REFUSED, 0, method=METHOD_REFUSED)
    status = first(tree.get("socks.auth_status"))
    if status is not None and number(status) != 0:
        return SocksReply(5, False, "auth", number(status), 0)
    results = first(tree.get("socks.results"))
    if results is None:
        return None
    code = number(results)
    if version == "5":
        return SocksReply(5, code == 0, "reply", code, 0,
                          bound_port=number(first(tree.get("socks.port")) or 0))
    return SocksReply(4, code == SOCKS4_GRANTED, "reply", code, 0,
                      bound_port=number(first(tree.get("socks.dstport")) or 0))
