"""Wireshark display filters, per layer and combined, generated from a watch list.

Names are matched with ``matches`` (a PCRE that Wireshark applies case-insensitively), so one
expression covers exact names and ``*.suffix`` patterns the way ``WatchList.matches`` does. The
regular expressions use ``[.]`` rather than ``\\.``: no backslash ever appears in a filter, so the
same text is valid in a display filter, a ``dfilters`` line and a UAT field.

Wireshark shows a field in the frame where it reassembled the message: a ClientHello that spans
two TCP segments carries ``tls.handshake.extensions_server_name`` in its second frame only. A
display filter cannot join frames, so a per-layer filter selects that one frame of each message.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from ..base.errors import UsageError
from ..base.watchlist import WatchList
from .inputs import validate_address

PREFIX = "proxytrace"

# Answers that point a public name at a private or local address (dns-private-answer).
PRIVATE_V4 = ("0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16",
              "172.16.0.0/12", "192.168.0.0/16")
PRIVATE_V6 = ("::1", "fc00::/7", "fe80::/10")

_COMM = re.compile(r"^[A-Za-z0-9._+-]{1,64}$")


@dataclass(frozen=True, slots=True)
class DisplayFilter:
    """A named display filter; ``layer`` is dns, tls, http, socks, process, findings or all."""

    name: str
    layer: str
    expression: str
    description: str

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "layer": self.layer, "filter": self.expression,
                "description": self.description}


def _quote(text: str) -> str:
    # Every caller builds text from validated names, ports and fixed fragments; this guard keeps
    # it that way if someone adds a caller.
    if '"' in text or "\\" in text or any(ord(ch) < 0x20 for ch in text):
        raise UsageError(f"refusing to build a display filter string from {text!r}")
    return f'"{text}"'


def host_pattern(watch: WatchList) -> str | None:
    """A regex group matching the watched names (no anchors); None when the list is empty."""
    if watch.match_all:
        return "[^ ]+"
    alternatives = [name.replace(".", "[.]") for name in sorted(watch.exact)]
    alternatives += [".+" + suffix.replace(".", "[.]") for suffix in watch.suffixes]
    if not alternatives:
        return None
    return "(" + "|".join(alternatives) + ")"


def _require(watch: WatchList) -> str:
    pattern = host_pattern(watch)
    if pattern is None:
        raise UsageError("the watch list is empty: nothing to filter on")
    return pattern


def dns_filter(watch: WatchList) -> str:
    """Queries and responses whose question is a watched name."""
    return f"dns.qry.name matches {_quote('^' + _require(watch) + '$')}"


def tls_filter(watch: WatchList) -> str:
    """ClientHellos whose SNI is a watched name."""
    return (f"tls.handshake.type == 1 && tls.handshake.extensions_server_name matches "
            f"{_quote('^' + _require(watch) + '$')}")


def tls_no_sni_filter(addresses: Sequence[str]) -> str:
    """ClientHellos without SNI sent to addresses a DNS answer gave for a watched name."""
    clean = sorted({validate_address(a) for a in addresses})
    v4 = [a for a in clean if ipaddress.ip_network(a, strict=False).version == 4]
    v6 = [a for a in clean if ipaddress.ip_network(a, strict=False).version == 6]
    targets = []
    if v4:
        targets.append("ip.dst in {" + ", ".join(v4) + "}")
    if v6:
        targets.append("ipv6.dst in {" + ", ".join(v6) + "}")
    if not targets:
        raise UsageError("no addresses for the TLS-without-SNI filter")
    where = targets[0] if len(targets) == 1 else "(" + " || ".join(targets) + ")"
    return f"tls.handshake.type == 1 && !tls.handshake.extensions_server_name && {where}"


def http_filter(watch: WatchList) -> str:
    """Plaintext requests to a watched host, and their responses.

    The host is taken as the analyzer takes it (analyzer.protocols.http.HttpRequest.host): a
    CONNECT target, else an absolute-form URI's authority, else the Host header, port dropped.
    """
    hosts = _require(watch)
    port = "(:[0-9]+)?"
    # Requests in absolute form never carry userinfo (RFC 9112 section 3.2.2), and "@" cannot
    # appear in a colorfilters rule, so the authority is the host and an optional port.
    absolute = f"^[a-z][a-z0-9+.-]*://{hosts}{port}([/?#]|$)"
    # Wireshark's http.response_for.uri is the request's absolute URI, or the CONNECT target.
    response = f"^([a-z][a-z0-9+.-]*://)?{hosts}{port}([/?#]|$)"
    return ("(http.request.method == \"CONNECT\" && http.request.uri matches "
            f"{_quote('^' + hosts + port + '$')})"
            " || (http.request.method != \"CONNECT\""
            f" && http.request.uri matches {_quote(absolute)})"
            f" || (http.request.method != \"CONNECT\" && !(http.request.uri contains \"://\")"
            f" && http.host matches {_quote('^' + hosts + port + '$')})"
            f" || (http.response && http.response_for.uri matches {_quote(response)})")


def socks_filter(watch: WatchList) -> str:
    """SOCKS requests that name a watched host for the proxy to resolve (SOCKS4a, SOCKS5 with a
    domain name: socks5h:// in Go and curl); a request by address names no host. Wireshark
    decodes SOCKS on TCP port 1080 only, unless told otherwise (Decode As)."""
    anchored = _quote("^" + _require(watch) + "$")
    return f"socks.remote_name matches {anchored} || socks.v4a_dns_name matches {anchored}"


def process_filter(pid: int | None = None, comm: str | None = None) -> str:
    """Frames whose pcapng comment names a process (ours and ptcpdump's ``PID: n`` / ``Cmd:``)."""
    terms = []
    if pid is not None:
        if isinstance(pid, bool) or not isinstance(pid, int) or not 0 < pid < 2**32:
            raise UsageError(f"invalid pid {pid!r}")
        terms.append(f"frame.comment matches {_quote(f'(^|[^a-z0-9])pid[:=] ?{pid}([^0-9]|$)')}")
    if comm is not None:
        if not _COMM.match(comm):
            raise UsageError(f"invalid process name {comm!r}: letters, digits and ._+- only")
        name = re.sub(r"([.+])", r"[\1]", comm)
        terms.append("frame.comment matches "
                     + _quote(f"(cmd|comm)[:=] ?([^ ]*/)?{name}([^a-z0-9._+-]|$)"))
    if not terms:
        return f"frame.comment matches {_quote('(^|[^a-z0-9])pid[:=] ?[0-9]')}"
    return " && ".join(terms)


def findings_filter(watch: WatchList) -> str:
    """Packets that show a hijack finding on their own (no state needed): a private or loopback
    DNS answer for a watched name (dns-private-answer), a plaintext request to a watched host
    (http-plaintext), a decrypted redirect to http:// (http-downgrade-redirect). Findings that
    need expectations or several packets (issuers, mismatches, duplicates) are not expressible."""
    hosts = _require(watch)
    private = ("(dns.a in {" + ", ".join(PRIVATE_V4) + "} || dns.aaaa in {"
               + ", ".join(PRIVATE_V6) + "})")
    return (f"(dns.qry.name matches {_quote('^' + hosts + '$')} && dns.flags.response == 1"
            f" && {private})"
            " || (http.request && http.request.method != \"CONNECT\" && !tls"
            f" && http.host matches {_quote('^' + hosts + '(:[0-9]+)?$')})"
            # A redirect to http:// seen inside TLS (decrypted with a key log) is a downgrade;
            # in clear the request itself is already the plaintext finding.
            " || (tls && http.response.code in {301, 302, 303, 307, 308}"
            f" && http.location matches {_quote('^http://')})")


def standard_filters(watch: WatchList, no_sni_addresses: Iterable[str] = (),
                     pid: int | None = None, comm: str | None = None) -> list[DisplayFilter]:
    """The filters ``proxytrace filters display`` prints and the profile saves, in a fixed order."""
    dns, tls, http = dns_filter(watch), tls_filter(watch), http_filter(watch)
    socks = socks_filter(watch)
    addresses = sorted(set(no_sni_addresses))
    layers = [f"({dns})", f"({tls})", f"({http})", f"({socks})"]
    out = [
        DisplayFilter(f"{PREFIX} dns", "dns", dns, "DNS queries and answers for watched names"),
        DisplayFilter(f"{PREFIX} tls", "tls", tls, "TLS ClientHellos whose SNI is watched"),
    ]
    if addresses:
        no_sni = tls_no_sni_filter(addresses)
        layers.append(f"({no_sni})")
        out.append(DisplayFilter(f"{PREFIX} tls-no-sni", "tls", no_sni,
                                 "TLS ClientHellos without SNI to addresses DNS gave for "
                                 "watched names"))
    out += [
        DisplayFilter(f"{PREFIX} http", "http", http,
                      "Plaintext HTTP requests to watched hosts, CONNECT tunnels, and responses"),
        DisplayFilter(f"{PREFIX} socks", "socks", socks,
                      "SOCKS4a/5 requests naming a watched host (Wireshark: port 1080)"),
        DisplayFilter(f"{PREFIX} process", "process", process_filter(pid, comm),
                      "Frames whose capture comment names the process"),
        DisplayFilter(f"{PREFIX} findings", "findings", findings_filter(watch),
                      "Private DNS answers, plaintext requests, decrypted redirects to http://"),
        DisplayFilter(f"{PREFIX} all", "all", " || ".join(layers),
                      "Every layer at once"),
    ]
    return out
