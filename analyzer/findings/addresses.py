"""Which addresses a public name should never resolve to, and which names are public at all."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

# Special-use and commonly private top-level names (RFC 6761, RFC 6762, RFC 8375, ICANN's
# .internal reservation) plus the usual corporate ones: a watched name under these may legitimately
# resolve to a private address, so the bogon heuristic does not apply to it.
_PRIVATE_SUFFIXES = (".local", ".localhost", ".internal", ".lan", ".home", ".corp", ".intranet",
                     ".home.arpa", ".test", ".invalid", ".example", ".localdomain")


@lru_cache(maxsize=8192)  # asked once per DNS exchange, about a few names
def is_public_name(name: str) -> bool:
    n = "." + name.lower().rstrip(".")
    return "." in n[1:] and not any(n.endswith(s) for s in _PRIVATE_SUFFIXES)


@lru_cache(maxsize=8192)  # a capture answers the same few addresses thousands of times
def bogon_reason(address: str) -> str | None:
    """Why ``address`` cannot be a public server's address (None when it can)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return bogon_reason(str(ip.ipv4_mapped))
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "shared address space (CGNAT)"
    if ip.is_reserved:
        return "reserved"
    if ip.is_private:
        return "private"
    if not ip.is_global:
        return "reserved"
    return None


_CGNAT = ipaddress.ip_network("100.64.0.0/10")
