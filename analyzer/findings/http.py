"""HTTP hijack findings, from the requests and responses seen in clear (or decrypted).

- ``http-plaintext``: a request to a watched host travelled unencrypted (a CONNECT to a forward
  proxy is not counted: the tunnel it opens carries TLS).
- ``http-downgrade-redirect``: a response sent a client from an https URL to an http one. Over TLS
  the Location is only visible with a key log; in clear it shows when a plaintext response (say,
  from a middlebox that answers in place of the real server) redirects from an https URL.
- ``http-offsite-redirect``: a redirect to a host outside the watch list (for a watched host this
  is never the Go servers' own behaviour: proxy.golang.org and sum.golang.org answer in place).
"""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit, urlunsplit

from ..base.model import Contact, Finding
from ..base.watchlist import WatchList
from ..events.records import HttpExchange

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def request_url(exchange: HttpExchange, host: str, over_tls: bool) -> str:
    """The absolute URL the client asked for (an absolute request target wins)."""
    target = exchange.request.target or "/"
    if target.lower().startswith(("http://", "https://")):
        return target
    scheme = "https" if over_tls else "http"
    port = exchange.flow.server_port
    default = 443 if over_tls else 80
    authority = host if port == default or exchange.via_proxy else f"{host}:{port}"
    return f"{scheme}://{authority}{target if target.startswith('/') else '/' + target}"


def hide_userinfo(url: str) -> str:
    """Findings never repeat credentials a URL carries (``user:pass@``)."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit((parts.scheme, "***@" + parts.netloc.rsplit("@", 1)[1], parts.path,
                       parts.query, parts.fragment))


def plaintext_finding(contact: Contact, exchange: HttpExchange | None,
                      watch: WatchList) -> Finding | None:
    """A request to a watched host sent in clear (CONNECT excepted: its tunnel carries TLS)."""
    method = (contact.http.method if contact.http else None) or \
        (exchange.request.method if exchange else None)
    if (method or "").upper() == "CONNECT" or not watch.matches(contact.host):
        return None
    path = contact.http.path if contact.http and contact.http.path else ""
    return Finding("http", "http-plaintext",
                   f"plaintext {method or 'request'} to {contact.host} "
                   f"({contact.dst}:{contact.dport}) {path}".rstrip(),
                   exchange.frames if exchange else contact.frames)


def redirect_findings(host: str, exchange: HttpExchange, over_tls: bool,
                      watch: WatchList) -> list[Finding]:
    """Downgrade and off-site redirects in one exchange's response."""
    response = exchange.response
    if response is None or response.status not in REDIRECT_STATUSES or not response.location:
        return []
    status = response.status
    base = request_url(exchange, host, over_tls)
    try:
        target = urljoin(base, response.location.strip())
        from_parts, to_parts = urlsplit(base), urlsplit(target)
        to_parts.port  # noqa: B018 - raises ValueError on a hostile port
    except ValueError:
        return []
    base, target = hide_userinfo(base), hide_userinfo(target)
    frames = exchange.frames + exchange.response_frames
    found: list[Finding] = []
    if from_parts.scheme == "https" and to_parts.scheme == "http":
        found.append(Finding("http", "http-downgrade-redirect",
                             f"{status} redirect from {base} to {target} (https to plaintext http)",
                             frames))
    to_host = (to_parts.hostname or "").lower()
    from_host = (from_parts.hostname or "").lower()
    # With --all every name is "watched"; judge against the default list then.
    reference = WatchList.build() if watch.match_all else watch
    if to_host and to_host != from_host and not reference.matches(to_host):
        found.append(Finding("http", "http-offsite-redirect",
                             f"{status} redirect from {base} to {target}: {to_host} is not a "
                             "watched host", frames))
    return found
