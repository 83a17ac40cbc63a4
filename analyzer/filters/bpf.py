"""The capture filter: keep every packet the analyzer reads, drop bulk download payload.

BPF is stateless: it cannot know where a TCP stream starts, so "the first few KB of each
direction" (what the analyzer reassembles) cannot be expressed. The trade-off chosen here:

* DNS on any resolver: UDP and TCP port 53 (and mDNS/LLMNR), plus every IP fragment that is
  not a first fragment (a fragmented UDP answer's later pieces carry no UDP header, so no port
  to test).
* Client -> server on a watched port (or to a watched address): everything. Requests, TLS
  ClientHellos (a post-quantum ClientHello spans two segments) and HTTP request headers are small,
  and the go command never uploads bulk data.
* Server -> client on a plaintext HTTP port (80, an ``http://`` GOPROXY's port): everything. The
  analyzer reads responses in stream order on keep-alive connections, so one missing body
  segment would hide every later response on that connection. Go's module traffic is HTTPS by
  default, so this costs little.
* Server -> client on the other ports (TLS): only segments that carry SYN/FIN/RST (connection
  set-up and end), or whose TCP payload *starts* with a TLS record header for a handshake,
  alert or change-cipher-spec record (``16 03``, ``15 03``, ``14 03``: the ServerHello flight), or with ``HTTP`` (a plaintext
  response's status line and headers). Bulk payload (application-data records, module zips,
  toolchain tarballs) starts mid-record and is dropped, as are pure ACKs.

* Server -> client on a SOCKS proxy's port (``socks_ports``: from ``socks4://``/``socks5://``
  proxy URLs): also the short segments that start like a SOCKS answer (first byte 00, 01 or 05,
  at most 300 payload bytes: a method choice, an RFC 1929 status, a reply), because the analyzer
  follows the tunnel only after a granted reply. The TLS records and HTTP heads inside the
  tunnel match the rules above.

What this loses, knowingly: server segments that continue a handshake record past its first
segment. Under TLS 1.2 that can be the end of the certificate chain, under TLS 1.3 (what Go
negotiates) the encrypted flight a key log would decrypt. ``keep_server_data=True`` keeps all
server -> client traffic on the watched ports and addresses for those cases.

With ``vlan=True`` every test is repeated behind one and two 802.1Q tags, for capture files from
trunk ports that kept their tags (Ethernet only). Link types without an IP layer libpcap can
index (NFLOG) are not supported.

IPv6 tests read the fixed 40-byte header (libpcap's ``tcp[]`` only indexes IPv4), so IPv6
packets with extension headers other than a fragment header are matched by port only.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..base.watchlist import WatchList
from .inputs import DEFAULT_PORTS, validate_addresses, validate_ports
from .libpcap import DLT_EN10MB, check_filter, compile_filter

# First payload byte offset and payload length, IPv4 (variable IP and TCP header lengths).
_OFF4 = "((tcp[12] & 0xf0) >> 2)"
_LEN4 = f"(ip[2:2] - ((ip[0] & 0x0f) << 2) - {_OFF4})"
# IPv6 with no extension header: TCP header at 40, data offset at 40 + 12.
_OFF6 = "(40 + ((ip6[52] & 0xf0) >> 2))"
_LEN6 = "(ip6[4:2] - ((ip6[52] & 0xf0) >> 2))"

# DNS, and the multicast/link-local resolvers the analyzer also reads (mDNS, LLMNR).
_DNS = "udp port 53 or tcp port 53 or udp port 5353 or udp port 5355"
_FRAGMENTS = "(ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)"


def _tls_or_http(load: str, off: str) -> str:
    # Content types 0x14..0x16 with major version 3, or "HTTP" (0x48545450).
    return (f"({load}[{off}] >= 0x14 and {load}[{off}] <= 0x16 and {load}[{off} + 1] == 0x03)"
            f" or {load}[{off}:4] == 0x48545450")


# A SOCKS answer: SOCKS4 reply (VN 0), RFC 1929 status (version 1), SOCKS5 method choice/reply.
_SOCKS_ANSWER_MAX = 300


def _socks_answer(load: str, off: str, length: str) -> str:
    return (f"{length} <= {_SOCKS_ANSWER_MAX} and ({load}[{off}] == 0x00 or {load}[{off}] == 0x01"
            f" or {load}[{off}] == 0x05)")


def _endpoints(ports: Sequence[int], addresses: Sequence[str], direction: str) -> str:
    """TCP packets whose server side (``direction`` src or dst) is a watched port or address."""
    terms = [f"tcp {direction} port {p}" for p in ports]
    terms += [f"(tcp and {direction} net {a})" for a in addresses]
    return "(" + " or ".join(terms) + ")"


def capture_filter(watch: WatchList, ports: Sequence[int] = DEFAULT_PORTS,
                   addresses: Sequence[str] = (), keep_server_data: bool = False,
                   vlan: bool = False, plaintext_ports: Sequence[int] = (80,),
                   socks_ports: Sequence[int] = ()) -> str:
    """A BPF expression keeping what the analyzer needs; compiled by libpcap before it is returned.

    ``watch`` names the hosts the filter is for; BPF cannot see names (TLS SNI and HTTP Host
    are inside payload at variable offsets), so it does not narrow the filter: every DNS
    exchange is kept because the analyzer matches names there, and ``addresses`` (for example
    the names' current addresses) widen it to any port. Server traffic on ``plaintext_ports``
    that are also in ``ports`` is kept whole (see the module docstring); on ``socks_ports`` the
    SOCKS answers are kept too. The result compiles for Ethernet and Linux SLL2 (``vlan``:
    Ethernet only).
    """
    del watch  # names cannot be matched in BPF; kept in the signature for callers and docs
    port_list = validate_ports(ports)
    plain = [p for p in validate_ports(plaintext_ports) if p in port_list]
    trimmed = port_list if keep_server_data else [p for p in port_list if p not in plain]
    socks = [p for p in validate_ports(socks_ports) if p in trimmed and not keep_server_data]
    address_list = validate_addresses(addresses)
    clauses = [_DNS, _FRAGMENTS]
    if port_list or address_list:
        clauses.append(_endpoints(port_list, address_list, "dst"))
    if keep_server_data:
        if port_list or address_list:
            clauses.append(_endpoints(port_list, address_list, "src"))
    else:
        if plain:
            clauses.append(_endpoints(plain, (), "src"))
        if trimmed or address_list:
            from_server = _endpoints(trimmed, address_list, "src")
            if socks:
                # Before the TLS/HTTP tests: their 4-byte "HTTP" load is out of bounds on a
                # 2-byte SOCKS answer, and BPF rejects a packet on an out-of-bounds load.
                from_socks = _endpoints(socks, (), "src")
                clauses += [
                    f"({from_socks} and ip and {_LEN4} > 0"
                    f" and ({_socks_answer('tcp', _OFF4, _LEN4)}))",
                    f"({from_socks} and ip6 and ip6[6] == 6 and {_LEN6} > 0"
                    f" and ({_socks_answer('ip6', _OFF6, _LEN6)}))",
                ]
            # Order matters: BPF rejects the whole packet on an out-of-bounds load, so tests that
            # read payload bytes come last and only after a non-empty payload was established.
            clauses += [
                f"({from_server} and tcp[tcpflags] & (tcp-syn|tcp-fin|tcp-rst) != 0)",
                f"({from_server} and ip6 and ip6[6] == 6 and ip6[53] & 0x07 != 0)",
                f"({from_server} and ip and {_LEN4} > 0 and ({_tls_or_http('tcp', _OFF4)}))",
                f"({from_server} and ip6 and ip6[6] == 6 and {_LEN6} > 0"
                f" and ({_tls_or_http('ip6', _OFF6)}))",
            ]
    base = " or ".join(f"({c})" if " or " in c and not c.startswith("(") else c for c in clauses)
    if not vlan:
        check_filter(base)
        return base
    # Offsets move behind an 802.1Q tag, and libpcap's "vlan" shifts every later offset: the same
    # tests again behind one tag and behind two (QinQ). Ethernet only: libpcap has no "vlan" for
    # Linux cooked captures, where the kernel has already removed the tag.
    expression = f"{base} or (vlan and ({base} or (vlan and ({base}))))"
    compile_filter(expression, DLT_EN10MB)
    return expression


def capture_filter_for_proxies(watch: WatchList, goproxy: str,
                               forward_proxies: Sequence[str] = (),
                               extra_ports: Sequence[int] = (),
                               keep_server_data: bool = False) -> str:
    """``capture_filter`` for a GOPROXY value and forward proxies (HTTPS_PROXY values): their
    ports are watched, ``http://`` GOPROXY ports are plaintext, SOCKS proxies' ports keep their
    answers, proxies given as addresses are watched addresses. Callers read GOPROXY themselves
    (``go env GOPROXY``)."""
    from .inputs import (
        parse_forward_proxy,
        parse_goproxy,
        proxy_addresses,
        proxy_ports,
        socks_proxy_ports,
    )

    proxies = list(parse_goproxy(goproxy))
    forwards = [parse_forward_proxy(v) for v in forward_proxies]
    ports = sorted({*DEFAULT_PORTS, *extra_ports, *proxy_ports(proxies + forwards)})
    plaintext = sorted({80, *(p.port for p in proxies if p.scheme == "http")})
    return capture_filter(watch, ports, proxy_addresses(proxies + forwards), keep_server_data,
                          plaintext_ports=plaintext, socks_ports=socks_proxy_ports(forwards))
