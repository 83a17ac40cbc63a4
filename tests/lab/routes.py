"""What each lab host answers: pure functions from (host, method, path, query) to a response.

Where the go command's behaviour depends on the answer, the lab answers as the real service does
(../shared/GO_NETWORK_FACTS.md): proxy.golang.org says 404 to /sumdb/sum.golang.org/supported,
golang.org/toolchain's go-get page points at go.dev/dl/mod, go.dev/dl/mod redirects zips to
dl.google.com.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .vulndb import database_files

if TYPE_CHECKING:
    from .server import LabState

MIRROR_HOST = "goproxy.example"
VANITY_HOST = "vanity.example"
# Modules the private mirror does not have: 404 for one, 410 for the other, to drive ",direct".
MIRROR_MISSING = {"vanity.example/extra": 404}


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _text(status: int, body: str, ctype: str = "text/plain; charset=utf-8") -> Response:
    return Response(status, body.encode(), {"Content-Type": ctype})


NOT_FOUND = _text(404, "not found\n")
_PROXY_PATH = re.compile(r"^/(?P<mod>.+?)/(?:@v/(?P<file>list|.+\.(?:info|mod|zip))|@latest)$")


def _unescape(path: str) -> str:
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), path)


def module_proxy(state: LabState, path: str, only: set[str] | None = None) -> Response:
    """The GOPROXY protocol (`go help goproxy`) over the lab's modules."""
    m = _PROXY_PATH.match(path)
    if not m:
        return NOT_FOUND
    mod = _unescape(m.group("mod"))
    if only is not None and mod not in only:
        return NOT_FOUND
    versions = state.store.versions(mod)
    if not versions:
        return _text(404, f"not found: module {mod}: no matching versions\n")
    file = m.group("file")
    if file is None:  # @latest
        return Response(200, state.store.get(mod, versions[-1]).info_json,  # type: ignore[union-attr]
                        {"Content-Type": "application/json"})
    if file == "list":
        return _text(200, "".join(v + "\n" for v in versions))
    version, _, ext = file.rpartition(".")
    module = state.store.get(mod, _unescape(version))
    if module is None:
        return _text(404, f"not found: {mod}@{version}: invalid version\n")
    if ext == "info":
        return Response(200, module.info_json, {"Content-Type": "application/json"})
    if ext == "mod":
        return _text(200, module.gomod.decode())
    return Response(200, module.zip_bytes, {"Content-Type": "application/zip"})


def checksum_db(state: LabState, path: str) -> Response:
    if path.startswith("/lookup/"):
        escaped, _, version = path[len("/lookup/"):].rpartition("@")
        body = state.sumdb.lookup(_unescape(escaped), _unescape(version))
        return _text(200, body.decode()) if body else _text(404, "not found\n")
    if path.startswith("/tile/"):
        tile = state.sumdb.tile(path[1:])
        return Response(200, tile, {"Content-Type": "application/octet-stream"}) if tile else NOT_FOUND
    if path == "/latest":
        return _text(200, state.sumdb.signed_tree.decode())
    return NOT_FOUND


def _go_import(prefix: str, vcs: str, url: str) -> Response:
    html = (f'<!DOCTYPE html>\n<html><head><meta name="go-import" content="{prefix} {vcs} {url}">'
            f"</head><body>lab</body></html>\n")
    return _text(200, html, "text/html; charset=utf-8")


def _proxy_golang_org(state: LabState, path: str) -> Response:
    if path.startswith("/sumdb/"):
        # As the real proxy.golang.org: it does not proxy the checksum database.
        return NOT_FOUND
    return module_proxy(state, path)


def _mirror(state: LabState, path: str) -> Response:
    """A private mirror that proxies the checksum database (so the go command never asks
    sum.golang.org itself) and lacks some modules."""
    if path == "/sumdb/sum.golang.org/supported":
        return _text(200, "")
    if path.startswith("/sumdb/sum.golang.org/"):
        return checksum_db(state, path[len("/sumdb/sum.golang.org"):])
    if path.startswith("/redirect/"):
        # A mirror that bounces clients to plain HTTP (the downgrade scenario).
        return Response(302, b"", {"Location": f"http://{MIRROR_HOST}/{path[len('/redirect/'):]}"})
    m = _PROXY_PATH.match(path)
    if m and _unescape(m.group("mod")) in MIRROR_MISSING:
        return _text(MIRROR_MISSING[_unescape(m.group("mod"))], "not in this mirror\n")
    return module_proxy(state, path)


def _vanity(state: LabState, path: str, query: dict[str, list[str]]) -> Response:
    if query.get("go-get") == ["1"]:
        first = path.strip("/").split("/")[0]
        prefix = f"{VANITY_HOST}/{first}"
        return _go_import(prefix, "mod", f"https://{VANITY_HOST}/modproxy")
    if path.startswith("/modproxy/"):
        return module_proxy(state, path[len("/modproxy"):],
                            only={p for p in state.store.paths() if p.startswith(VANITY_HOST + "/")})
    if path == "/download":
        # https -> http downgrade: the same host, plaintext.
        return Response(302, b"", {"Location": f"http://{VANITY_HOST}/download-plain"})
    if path == "/download-plain":
        return _text(200, "plain http payload\n")
    return NOT_FOUND


def _golang_org(state: LabState, path: str, query: dict[str, list[str]]) -> Response:
    if query.get("go-get") == ["1"]:
        if path.startswith("/toolchain"):
            return _go_import("golang.org/toolchain", "mod", "https://go.dev/dl/mod")
        parts = path.strip("/").split("/")
        if len(parts) >= 2 and parts[0] == "x":
            return _go_import(f"golang.org/x/{parts[1]}", "git",
                              f"https://go.googlesource.com/{parts[1]}")
    return _text(200, "The Go Programming Language (lab)\n", "text/html; charset=utf-8")


def _go_dev(state: LabState, path: str, query: dict[str, list[str]]) -> Response:
    if path == "/dl/" and query.get("mode") == ["json"]:
        _, go_version = state.toolchain
        body = json.dumps([{"version": go_version, "stable": True, "files": []}])
        return Response(200, body.encode(), {"Content-Type": "application/json"})
    if path.startswith("/dl/mod/"):
        sub = path[len("/dl/mod"):]
        if sub.endswith(".zip"):
            # As go.dev does: toolchain zips are served by dl.google.com.
            return Response(302, b"", {"Location": "https://dl.google.com/go/" + sub.rsplit("/", 1)[1]})
        return module_proxy(state, sub, only={"golang.org/toolchain"})
    return _text(200, "go.dev (lab)\n", "text/html; charset=utf-8")


def _dl_google_com(state: LabState, path: str) -> Response:
    module_path, go_version = state.toolchain
    if path.startswith("/go/v0.0.1-") and path.endswith(".zip"):
        version = path[len("/go/"):-len(".zip")]
        module = state.store.get(module_path, version)
        if module is not None:
            return Response(200, module.zip_bytes, {"Content-Type": "application/zip"})
    return NOT_FOUND


def _vuln_go_dev(path: str) -> Response:
    """The vulnerability database (vulndb.py): gzip files served as octet streams, as the real
    one serves them (the client gunzips the body itself)."""
    body = database_files().get(path.lstrip("/"))
    if body is None:
        return NOT_FOUND
    ctype = "application/octet-stream" if path.endswith(".gz") else "application/json"
    return Response(200, body, {"Content-Type": ctype})


def route(state: LabState, host: str, method: str, path: str, query: dict[str, list[str]],
          is_tls: bool) -> Response:
    if host == "proxy.golang.org":
        return _proxy_golang_org(state, path)
    if host == "sum.golang.org":
        return checksum_db(state, path)
    if host == MIRROR_HOST:
        return _mirror(state, path)
    if host == VANITY_HOST:
        return _vanity(state, path, query)
    if host == "golang.org":
        return _golang_org(state, path, query)
    if host == "go.dev":
        return _go_dev(state, path, query)
    if host == "dl.google.com":
        return _dl_google_com(state, path)
    if host == "vuln.go.dev":
        return _vuln_go_dev(path)
    if host.endswith("unrelated.example"):
        return _text(200, "unrelated service\n")
    return NOT_FOUND
