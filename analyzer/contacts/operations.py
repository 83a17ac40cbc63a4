"""Name the Go operation behind a URL, and read the go command's own ``-x`` log.

URL shapes: ../shared/GO_NETWORK_FACTS.md sections 1-6 (module proxy protocol, checksum
database, go-get meta, toolchain switch, telemetry, gopls/vscode-go, vulnerability database).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit

from .clients import client_from_user_agent

Operation = str

SUMDB_HOSTS = frozenset({"sum.golang.org", "sum.golang.google.cn"})

# Section 1.2: sumdb paths, direct (/lookup, /tile) or through a proxy (/sumdb/<name>/...).
_SUMDB_PROXIED = re.compile(r"/sumdb/(?P<name>[^/]+)/(?P<kind>supported|latest|lookup/|tile/)")
_TILE = re.compile(r"(?:^|/)tile/\d+/(?:\d+|data)/(?:x\d{3}/)*\d{3}(?:\.p/\d+)?$")
# Section 3: golang.org/toolchain zips (any proxy, go.dev/dl/mod) and the dl.google.com redirect.
_TOOLCHAIN_ZIP = re.compile(r"(?:^|/)golang\.org/toolchain/@v/v0\.0\.1-go[^/]+\.zip$")
_DL_ARCHIVE = re.compile(r"^/go/(?:v0\.0\.1-)?go\d[^/]*\.(?:zip|tar\.gz|msi|pkg)$")
# Section 5: x/vuln database endpoints.
_VULN = re.compile(r"(?:^|/)(?:index/(?:db|modules|vulns)\.json|ID/GO-\d{4}-\d+\.json)(?:\.gz)?$")
_GOPLS_INFO = re.compile(r"(?:^|/)golang\.org/x/tools/gopls/@v/[^/]+\.info$")


def _split(path: str) -> tuple[str, dict[str, list[str]]]:
    """(unescaped path, query) of a request path. Split by hand: urlsplit would read a path
    starting with "//" as an authority."""
    route, _, query = path.split("#", 1)[0].partition("?")
    route = unquote(route)
    return (route if route.startswith("/") else "/" + route), parse_qs(query, keep_blank_values=True)


def _proxy_request(route: str) -> tuple[str, str, str | None] | None:
    """(prefix + module, kind, version) of a module proxy path, section 1.3:
    ``<proxy>/<module>/@v/list``, ``/@v/<v>.info|.mod|.zip``, ``/@latest``; kind is "list",
    "latest" or the extension. Parsed with string operations, not a regular expression, so a
    hostile path of many slashes costs linear time."""
    if route.endswith("/@latest"):
        module, kind, version = route[:-len("/@latest")], "latest", None
    else:
        module, sep, file = route.rpartition("/@v/")
        if not sep or "/" in file:
            return None
        if file == "list":
            kind, version = "list", None
        else:
            version, dot, kind = file.rpartition(".")
            if not dot or not version or kind not in ("info", "mod", "zip"):
                return None
    module = module.strip("/")
    if not module or "@" in module:
        return None
    return module, kind, version


def _lookup(route: str) -> tuple[str, str] | None:
    """(module, version) of a checksum database lookup, ``.../lookup/<module>@<version>``
    (section 1.2), found with string operations so hostile paths cost linear time."""
    head, at, version = route.rpartition("@")
    if not at or not version or "/" in version:
        return None
    start = ("/" + head).find("/lookup/")
    if start < 0:
        return None
    module = head[start + len("lookup/"):]
    if not module or "@" in module:
        return None
    return module, version


def _host(host: str | None) -> str:
    if not host:
        return ""
    host = host.strip().lower().rstrip(".")
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.strip("[]")


def operation_for(host: str | None, path: str | None, method: str | None = "GET",
                  user_agent: str | None = None) -> Operation | None:
    """The Go operation a request is, from its host, path (with query), method and User-Agent."""
    if path is None or (method or "GET").upper() == "CONNECT":
        return None
    name = _host(host)
    route, query = _split(path)
    if name == "telemetry.go.dev" and route.startswith("/upload"):
        return "telemetry"                                            # section 4
    if name == "vuln.go.dev" or _VULN.search(route):
        return "vuln-db"                                              # section 5
    if route.rstrip("/") == "/dl" and query.get("mode") == ["json"]:
        return "go-release-check"                                     # section 6
    if "go-get" in query:
        return "go-get-meta"                                          # section 2
    if route.endswith("/info/refs") and "git-upload-pack" in query.get("service", []):
        return "vcs-fetch"                                            # section 2, git smart HTTP
    if route.endswith("/git-upload-pack"):
        return "vcs-fetch"
    if _TOOLCHAIN_ZIP.search(route) or (name == "dl.google.com" and _DL_ARCHIVE.match(route)):
        return "toolchain-download"                                   # section 3
    sumdb = _sumdb_operation(name, route)
    if sumdb:
        return sumdb
    proxied = _proxy_request(route)
    if proxied is None:
        return None
    kind = proxied[1]
    if kind == "info" and _GOPLS_INFO.search(route) and client_from_user_agent(user_agent) == "node":
        return "gopls-version-check"                                  # section 6, vscode-go
    return f"module-{kind}"


def _sumdb_operation(host: str, route: str) -> Operation | None:
    proxied = _SUMDB_PROXIED.search(route)
    if proxied:
        kind = proxied["kind"].rstrip("/")
        return {"supported": "sumdb-supported", "latest": "sumdb-latest",
                "lookup": "sumdb-lookup", "tile": "sumdb-tile"}[kind]
    if _lookup(route) and (host in SUMDB_HOSTS or route.startswith("/lookup/")):
        return "sumdb-lookup"
    if _TILE.search(route):
        return "sumdb-tile"
    if host in SUMDB_HOSTS and route == "/latest":
        return "sumdb-latest"
    return None


def _unescape(text: str) -> str:
    """Undo the module proxy's case escaping: "!x" stands for "X" (golang.org/x/mod/module)."""
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), text)


def _module_start(module: str) -> str:
    """Drop a proxy prefix: a module path's first element is the first one containing a dot."""
    parts = module.strip("/").split("/")
    for index, part in enumerate(parts):
        if "." in part:
            return "/".join(parts[index:])
    return "/".join(parts)


def module_of(path: str) -> tuple[str, str | None] | None:
    """(module, version) named by a module proxy or checksum database path, else None."""
    route, _query = _split(path)
    lookup = _lookup(route)
    if lookup:
        return _unescape(lookup[0]), _unescape(lookup[1])
    proxied = _proxy_request(route)
    if proxied is None:
        return None
    module = _unescape(_module_start(proxied[0]))
    version = proxied[2]
    return module, (_unescape(version) if version else None)


@dataclass(frozen=True, slots=True)
class GoTraceGet:
    """One ``# get`` line of ``go -x`` (section 2: web/http.go prints one before and one after)."""

    url: str
    host: str
    path: str
    status: str | None            # "200 OK"; None on the line printed before the request
    seconds: float | None
    error: str | None             # the error text when the fetch failed
    operation: str | None

    @property
    def done(self) -> bool:
        return self.status is not None or self.error is not None


_GET_LINE = re.compile(r"^# get (?P<url>\S+?)(?:: (?P<rest>.*))?$")
_STATUS = re.compile(r"^(?P<status>\d{3}(?: .*?)?) \((?P<secs>\d+(?:\.\d+)?)s\)$")


def go_trace_lines(text: str) -> list[GoTraceGet]:
    """Every ``# get URL`` and ``# get URL: STATUS (N.NNNs)`` / ``# get URL: ERROR`` line."""
    out: list[GoTraceGet] = []
    for raw in text.splitlines():
        match = _GET_LINE.match(raw.rstrip("\r"))
        if match is None:
            continue
        url = match["url"]
        try:
            parts = urlsplit(url)
            host = (parts.hostname or "").lower()
        except ValueError:
            continue                      # not a URL the go command could have fetched
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        status = seconds = error = None
        rest = match["rest"]
        if rest is not None:
            done = _STATUS.match(rest)
            if done:
                status, seconds = done["status"], float(done["secs"])
            else:
                error = rest
        out.append(GoTraceGet(url, host, path, status, seconds, error,
                              operation_for(host, path, "GET")))
    return out


def go_trace_fetches(text: str) -> list[GoTraceGet]:
    """One entry per fetch: each start line merged with its result line when one follows."""
    fetches: list[GoTraceGet] = []
    open_by_url: dict[str, list[int]] = {}
    for line in go_trace_lines(text):
        if not line.done:
            open_by_url.setdefault(line.url, []).append(len(fetches))
            fetches.append(line)
            continue
        waiting = open_by_url.get(line.url)
        if waiting:
            fetches[waiting.pop(0)] = line
        else:
            fetches.append(line)
    return fetches
