"""The machine's resolver and proxy configuration, as the go command reads it.

Pure functions over file text and environment mappings; the runner reads the files.
Resolver choice follows golang/go src/net/conf.go (../shared/GO_NETWORK_FACTS.md, section 7);
proxy variables follow golang.org/x/net/http/httpproxy (``FromEnvironment``), which net/http uses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit


@dataclass(frozen=True, slots=True)
class ResolvConf:
    nameservers: tuple[str, ...]
    search: tuple[str, ...] = ()
    options: tuple[str, ...] = ()


def parse_resolv_conf(text: str) -> ResolvConf:
    servers: list[str] = []
    search: list[str] = []
    options: list[str] = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if not words:
            continue
        key, rest = words[0], words[1:]
        if key == "nameserver" and rest:
            addr = rest[0].split("%", 1)[0]
            try:
                ipaddress.ip_address(addr)
            except ValueError:
                continue  # the C library ignores a bad line too
            servers.append(rest[0])
        elif key in ("search", "domain"):
            search = list(rest)
        elif key == "options":
            options.extend(rest)
    return ResolvConf(tuple(servers), tuple(search), tuple(options))


def parse_hosts(text: str) -> dict[str, tuple[str, ...]]:
    """Name (lower-case) -> addresses, in file order, as /etc/hosts gives them."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2:
            continue
        try:
            address = str(ipaddress.ip_address(words[0].split("%", 1)[0]))
        except ValueError:
            continue
        for name in words[1:]:
            out.setdefault(name.lower().rstrip("."), []).append(address)
    return {k: tuple(dict.fromkeys(v)) for k, v in out.items()}


def nsswitch_hosts(text: str | None) -> tuple[str, ...] | None:
    """The ``hosts:`` sources of nsswitch.conf (None when the file has no such line)."""
    if text is None:
        return None
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip()
        if body.startswith("hosts:"):
            return tuple(body[len("hosts:"):].split())
    return None


# resolv.conf options the Go resolver understands (conf.go / dnsconfig_unix.go); others make it
# hand the lookup to cgo when cgo is available.
_GO_OPTIONS = ("ndots:", "timeout:", "attempts:", "rotate", "single-request", "single-request-reopen",
               "use-vc", "usevc", "tcp", "trust-ad", "edns0", "no-reload")


@dataclass(frozen=True, slots=True)
class ResolverChoice:
    resolver: str  # "go" or "cgo"
    reason: str
    order: str     # "files,dns", "dns,files", "cgo"


def godebug_netdns(godebug: str | None) -> str | None:
    """"go" or "cgo" when GODEBUG forces a resolver (``netdns=go+1`` counts), else None."""
    for item in (godebug or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "netdns":
            mode = value.split("+", 1)[0]
            if mode in ("go", "cgo"):
                return mode
    return None


def go_resolver_choice(cgo_available: bool, env: Mapping[str, str], resolv: ResolvConf | None,
                       nsswitch_text: str | None) -> ResolverChoice:
    """Which resolver a Go program takes on Linux, and why."""
    forced = godebug_netdns(env.get("GODEBUG"))
    if not cgo_available:
        why = "built with CGO_ENABLED=0 (go command release builds)"
        if forced == "cgo":
            why += "; GODEBUG=netdns=cgo is ignored by such binaries"
        return ResolverChoice("go", why, _order(nsswitch_text))
    if forced:
        return ResolverChoice(forced, f"GODEBUG netdns={forced}",
                              _order(nsswitch_text) if forced == "go" else "cgo")
    for var in ("LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES"):
        if env.get(var):
            return ResolverChoice("cgo", f"{var} is set", "cgo")
    if resolv is None:
        return ResolverChoice("cgo", "resolv.conf cannot be read", "cgo")
    unknown = [o for o in resolv.options if not o.startswith(_GO_OPTIONS)]
    if unknown:
        return ResolverChoice("cgo", f"resolv.conf has options Go does not know: {' '.join(unknown)}",
                              "cgo")
    sources = nsswitch_hosts(nsswitch_text)
    if sources:
        other = [s for s in sources if s not in ("files", "dns")]
        if other:
            return ResolverChoice("cgo", "nsswitch.conf hosts: lists "
                                  + " ".join(other) + " (only files and dns are handled in Go)",
                                  "cgo")
    return ResolverChoice("go", "no setting asks for cgo", _order(nsswitch_text))


def _order(nsswitch_text: str | None) -> str:
    sources = [s for s in (nsswitch_hosts(nsswitch_text) or ("files", "dns")) if not s.startswith("[")]
    picked = [s for s in sources if s in ("files", "dns")]
    return ",".join(picked) or "files,dns"


@dataclass(frozen=True, slots=True)
class ProxySetting:
    scheme: str            # "https" or "http": requests of that scheme go through it
    value: str             # credentials redacted
    variable: str          # the environment variable that set it
    also_in: tuple[str, ...] = ()  # files that set the same variable (a hint where it comes from)


def redact_url(value: str) -> str:
    """Hide the password (and user) of a proxy URL: ``http://user:secret@p:3128`` -> ``http://***@p:3128``."""
    text = value if "://" in value else "http://" + value
    try:
        parts = urlsplit(text)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "(unparseable proxy setting)"
    if parts.username is None and parts.password is None:
        return value
    netloc = "***@" + (f"[{host}]" if ":" in host else host) + (f":{port}" if port else "")
    redacted = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
    return redacted if "://" in value else redacted.split("://", 1)[1]


def proxy_settings(env: Mapping[str, str],
                   files: Mapping[str, Mapping[str, str]] | None = None) -> tuple[list[ProxySetting], str | None]:
    """Proxies net/http would use for the go command, and its NO_PROXY (redacted).

    ``files`` maps a file name (say /etc/environment) to the variables it sets, to say where a
    value probably comes from. Upper case wins over lower case, as in httpproxy.FromEnvironment;
    HTTP_PROXY is ignored under CGI (REQUEST_METHOD set), as there.
    """
    files = files or {}
    out: list[ProxySetting] = []
    for scheme, names in (("https", ("HTTPS_PROXY", "https_proxy")),
                          ("http", ("HTTP_PROXY", "http_proxy"))):
        for name in names:
            value = env.get(name)
            if not value:
                continue
            if scheme == "http" and env.get("REQUEST_METHOD"):
                break
            where = tuple(f for f, vars_ in files.items() if vars_.get(name))
            out.append(ProxySetting(scheme, redact_url(value), name, where))
            break
    no_proxy = env.get("NO_PROXY") or env.get("no_proxy") or None
    return out, no_proxy


def no_proxy_matches(no_proxy: str | None, host: str) -> bool:
    """Whether NO_PROXY exempts ``host`` (httpproxy rules: "*", suffixes, leading dots)."""
    if not no_proxy:
        return False
    host = host.lower()
    for entry in no_proxy.split(","):
        e = entry.strip().lower()
        if not e:
            continue
        if e == "*":
            return True
        e = e.split(":", 1)[0] if e.count(":") == 1 else e
        if e.startswith("*."):
            e = e[1:]
        if e.startswith("."):
            if host.endswith(e) or host == e[1:]:
                return True
        elif host == e or host.endswith("." + e):
            return True
    return False


def parse_environment_file(text: str) -> dict[str, str]:
    """KEY=value lines of /etc/environment (quotes stripped)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        body = line.strip()
        if not body or body.startswith("#") or "=" not in body:
            continue
        key, _, value = body.removeprefix("export ").partition("=")
        out[key.strip()] = value.strip().strip("'\"")
    return out
