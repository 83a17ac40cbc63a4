"""Active HTTP checks: one request per hop, redirects followed by hand so each hop is seen.

Certificates are not verified here (the TLS checks judge them): a hijacked https endpoint should
still show where it sends clients. No proxy is used: the probe asks the network directly, and
the proxy variables the go command would honour are reported separately.
"""

from __future__ import annotations

import http.client
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ..base.model import Finding
from ..base.watchlist import WatchList

REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "proxytrace-probe"


@dataclass(frozen=True, slots=True)
class Hop:
    url: str
    status: int | None
    location: str | None   # absolute
    error: str | None = None


Resolver = Callable[[str], tuple[tuple[str, ...], str | None]]


class _TlsToAddress(http.client.HTTPSConnection):
    """HTTPS to an address already resolved, with the host name as SNI."""

    def __init__(self, address: str, port: int | None, server_name: str, timeout: float) -> None:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        super().__init__(address, port, timeout=timeout, context=ctx)
        self._ctx = ctx
        self._server_name = server_name

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._ctx.wrap_socket(self.sock, server_hostname=self._server_name)


def fetch(url: str, timeout: float, resolve: Resolver | None = None) -> Hop:
    """One GET; ``resolve`` (bounded by the caller's timeout) picks the address to connect to."""
    parts = urlsplit(url)
    try:
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return Hop(url, None, None, "bad port in URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    address = host
    if resolve is not None:
        addresses, error = resolve(host)
        if not addresses:
            return Hop(url, None, None, error or "no address")
        address = addresses[0]
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        conn = _TlsToAddress(address, port, host, timeout)
    else:
        conn = http.client.HTTPConnection(address, port, timeout=timeout)
    authority = host if port is None else f"{host}:{port}"
    try:
        conn.request("GET", path, headers={"Host": authority, "User-Agent": USER_AGENT,
                                           "Accept": "*/*"})
        response = conn.getresponse()
        location = response.getheader("Location")
        response.read(64 * 1024)
        return Hop(url, response.status, urljoin(url, location.strip()) if location else None)
    except (OSError, http.client.HTTPException, ssl.SSLError) as exc:
        text = "timed out" if isinstance(exc, TimeoutError) else (
            getattr(exc, "strerror", None) or str(exc) or type(exc).__name__)
        return Hop(url, None, None, text)
    finally:
        conn.close()


def follow(url: str, timeout: float, max_redirects: int,
           resolve: Resolver | None = None) -> list[Hop]:
    hops = [fetch(url, timeout, resolve)]
    seen = {url}
    while len(hops) <= max_redirects:
        last = hops[-1]
        if last.status not in REDIRECTS or not last.location:
            break
        if last.location in seen or urlsplit(last.location).scheme not in ("http", "https"):
            break
        seen.add(last.location)
        hops.append(fetch(last.location, timeout, resolve))
    return hops


def judge(hops: list[Hop], watch: WatchList) -> list[Finding]:
    found: list[Finding] = []
    reference = WatchList.build() if watch.match_all else watch
    for hop in hops:
        if hop.status not in REDIRECTS or not hop.location:
            continue
        src, dst = urlsplit(hop.url), urlsplit(hop.location)
        if src.scheme == "https" and dst.scheme == "http":
            found.append(Finding("http", "http-downgrade-redirect",
                                 f"{hop.status} redirect from {hop.url} to {hop.location} "
                                 "(https to plaintext http)"))
        to_host = (dst.hostname or "").lower()
        if to_host and to_host != (src.hostname or "").lower() and not reference.matches(to_host):
            found.append(Finding("http", "http-offsite-redirect",
                                 f"{hop.status} redirect from {hop.url} to {hop.location}: "
                                 f"{to_host} is not a watched host"))
    return found
