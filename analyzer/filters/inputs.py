"""Validation of everything a user can put into a filter: ports, addresses, GOPROXY values.

Hostnames go through ``analyzer.base.watchlist.normalize_hostname``; what leaves this module is an
int in 1..65535, a canonical ``ipaddress`` text, or a normalized hostname, so no filter syntax
(quotes, spaces, operators, parentheses) can ride along.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from ..base.errors import UsageError
from ..base.watchlist import is_ip_address, normalize_hostname

DEFAULT_PORTS: tuple[int, ...] = (80, 443)
# $GOROOT/go.env's value since Go 1.21 (../shared/GO_NETWORK_FACTS.md section 1.1).
DEFAULT_GOPROXY = "https://proxy.golang.org,direct"


def validate_port(value: object) -> int:
    """A TCP port as an int in 1..65535 (bools and text with anything but digits refused)."""
    if isinstance(value, bool):
        raise UsageError(f"invalid port {value!r}: not a number")
    if isinstance(value, str):
        text = value.strip()
        if not text.isdigit() or not text.isascii():
            raise UsageError(f"invalid port {value!r}: not a number")
        value = int(text)
    if not isinstance(value, int):
        raise UsageError(f"invalid port {value!r}: not a number")
    if not 1 <= value <= 65535:
        raise UsageError(f"invalid port {value}: must be 1..65535")
    return value


def validate_ports(values: Iterable[object]) -> tuple[int, ...]:
    return tuple(sorted({validate_port(v) for v in values}))


def validate_address(value: str) -> str:
    """An IPv4/IPv6 address or network in canonical text (``10.0.0.0/8``, ``2001:db8::1``)."""
    text = str(value).strip()
    try:
        if "/" in text:
            net = ipaddress.ip_network(text, strict=False)
            if net.num_addresses == 1:
                return str(net.network_address)
            return str(net)
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise UsageError(f"invalid address {value!r}: not an IPv4/IPv6 address or network") \
            from None


def validate_addresses(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted({validate_address(v) for v in values}, key=_address_key))


def _address_key(text: str) -> tuple[int, int, str]:
    net = ipaddress.ip_network(text, strict=False)
    return (net.version, int(net.network_address), text)


@dataclass(frozen=True, slots=True)
class ProxyEntry:
    """One proxy of a GOPROXY list (``direct`` and ``off`` carry no network endpoint)."""

    scheme: str
    host: str
    port: int


def parse_goproxy(value: str) -> tuple[ProxyEntry, ...]:
    """The proxies a GOPROXY value names, in order, as network endpoints.

    The list itself is read by ``analyzer.causes.proxylist.parse_goproxy``, which mirrors
    cmd/go/internal/modfetch/proxy.go (``,`` and ``|``, ``https://`` added to a scheme-less
    entry, ``direct`` and ``off`` ending the list); here each URL is checked for use in a
    filter. ``file://`` proxies are local and carry no network endpoint.
    """
    from ..causes.proxylist import parse_goproxy as parse_list

    entries: list[ProxyEntry] = []
    for entry in parse_list(value).entries:
        if entry.url in ("direct", "off"):
            break
        parts, port = _split(entry.url, entry.url, "GOPROXY entry")
        if parts.scheme.lower() == "file":
            continue
        entries.append(_endpoint(parts, port, entry.url, "GOPROXY entry", _GOPROXY_DEFAULT_PORTS,
                                 "http or https"))
    return tuple(entries)


_GOPROXY_DEFAULT_PORTS = {"http": 80, "https": 443}
# Go's net/http takes http, https, socks5 and socks5h; curl's ALL_PROXY also socks4 and socks4a.
_PROXY_DEFAULT_PORTS = {"http": 80, "https": 443, "socks4": 1080, "socks4a": 1080,
                        "socks5": 1080, "socks5h": 1080}


def parse_forward_proxy(value: str) -> ProxyEntry:
    """An HTTPS_PROXY/HTTP_PROXY/ALL_PROXY value (Go's net/http reading: no scheme means
    http://)."""
    item = value.strip()
    url = item if "://" in item else "http://" + item
    parts, port = _split(url, item, "proxy")
    return _endpoint(parts, port, item, "proxy", _PROXY_DEFAULT_PORTS, "http, https, socks4, socks4a, socks5 or socks5h")


def _split(url: str, item: str, what: str) -> tuple[SplitResult, int | None]:
    try:
        parts = urlsplit(url)
        return parts, parts.port
    except ValueError:
        raise UsageError(f"invalid {what} {_redact(item)!r}: bad URL") from None


def _endpoint(parts: SplitResult, port: int | None, item: str, what: str,
              default_ports: dict[str, int], schemes: str) -> ProxyEntry:
    """The validated endpoint of a proxy URL; errors name ``what`` and quote ``item`` with any
    credentials hidden."""
    scheme = parts.scheme.lower()
    if scheme not in default_ports:
        raise UsageError(f"invalid {what} {_redact(item)!r}: scheme must be {schemes}")
    if not parts.hostname:
        raise UsageError(f"invalid {what} {_redact(item)!r}: no host")
    hostname = parts.hostname
    try:
        host = validate_address(hostname) if is_ip_address(hostname) else normalize_hostname(hostname)
    except UsageError:
        raise UsageError(f"invalid {what} {_redact(item)!r}: bad host") from None
    return ProxyEntry(scheme, host, validate_port(port or default_ports[scheme]))


def _redact(item: str) -> str:
    """GOPROXY URLs may carry credentials (user:token@host); never echo them back."""
    if "@" in item:
        scheme, sep, rest = item.partition("://")
        rest = rest.split("@", 1)[1] if sep else item.split("@", 1)[1]
        return f"{scheme}{sep}***@{rest}" if sep else f"***@{rest}"
    return item


def proxy_ports(entries: Sequence[ProxyEntry]) -> tuple[int, ...]:
    return tuple(sorted({e.port for e in entries}))


def socks_proxy_ports(entries: Sequence[ProxyEntry]) -> tuple[int, ...]:
    """Ports of the SOCKS proxies among ``entries`` (a ``forward+`` mark is ignored)."""
    return tuple(sorted({e.port for e in entries
                         if e.scheme.removeprefix("forward+").startswith("socks")}))


def proxy_hostnames(entries: Sequence[ProxyEntry]) -> tuple[str, ...]:
    return tuple(sorted({e.host for e in entries if not is_ip_address(e.host)}))


def proxy_addresses(entries: Sequence[ProxyEntry]) -> tuple[str, ...]:
    return tuple(sorted({e.host for e in entries if is_ip_address(e.host)}))
