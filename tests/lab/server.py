"""The lab server: plays the Go infrastructure over HTTPS (443) and HTTP (80) in the server namespace.

Run as ``python -m tests.lab.server CONFIG.json`` (the Lab starts it inside the namespace). It
picks the certificate per SNI, answers as the real services do where the go command's behaviour
depends on it, and appends one JSON line per TLS handshake and per request to the log named in
the config: that log is the ground truth the manifests are derived from. Every TLS connection's
secrets go to the config's ``keylog`` file (NSS key log format, OpenSSL's keylog callback), so
every recorded connection can be decrypted, the go command's too (its crypto/tls writes no key
log of its own).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .gitrepo import build_repo, http_backend
from .modules import (
    GOPLS_VERSION,
    TOOLCHAIN_GO,
    TOOLCHAIN_MODULE,
    ModuleStore,
    escape_path,
    lab_modules,
)
from .routes import Response, route
from .sumdb import ChecksumDB, Signer

GIT_HOST = "go.googlesource.com"
GIT_MODULE_PREFIX = "golang.org/x/"
_log_lock = threading.Lock()
# The SNI callback runs in the thread doing the handshake, so a thread-local carries the name out.
_tls_local = threading.local()


class LabState:
    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.log_path = Path(config["log"])
        self.store = ModuleStore(lab_modules())
        records = [(m.path, m.version, m.sumdb_record()) for m in self.store.modules]
        self.sumdb = ChecksumDB(Signer("sum.golang.org", bytes.fromhex(config["sumdb_seed"])), records)
        self.gopls_version = GOPLS_VERSION
        self.toolchain = (TOOLCHAIN_MODULE, TOOLCHAIN_GO)
        self.escape = escape_path
        self.git_root = Path(config["git_root"])
        # Without git installed, go.googlesource.com answers 404 (only direct-golang-x needs it).
        for module in self.store.modules:
            if module.path.startswith(GIT_MODULE_PREFIX) and shutil.which("git"):
                build_repo(module, self.git_root)

    def log(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, sort_keys=True) + "\n"
        with _log_lock, self.log_path.open("a") as fh:
            fh.write(line)
            fh.flush()


def _contexts(config: dict[str, Any]) -> tuple[ssl.SSLContext, dict[str, ssl.SSLContext]]:
    def make(cert: str, key: str) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        ctx.set_alpn_protocols(["http/1.1"])
        if config.get("tls12"):
            # TLS 1.2 keeps the server certificate in clear on the wire (the interception scenario).
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if config.get("keylog"):
            # Every context writes the same file: the SNI callback swaps the connection to the
            # per-host context before any secret exists, and CPython writes a line under one
            # process-wide lock, appending and flushing, so the contexts' lines never interleave.
            ctx.keylog_filename = config["keylog"]
        return ctx

    per_host = {host: make(p["cert"], p["key"]) for host, p in config["certs"].items()}
    default = make(**config["certs"][config["default_host"]])

    def pick(obj: Any, name: str | None, _ctx: ssl.SSLContext) -> None:
        _tls_local.sni = name
        if name and name in per_host:
            obj.context = per_host[name]

    default.sni_callback = pick
    return default, per_host


class LabHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LabHTTPServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        return  # the JSON request log replaces the default stderr log

    def _serve(self) -> None:
        state = self.server.state
        sni = getattr(self.connection, "lab_sni", None)
        host_header = (self.headers.get("Host") or "").split(":")[0].lower()
        is_tls = self.server.is_tls
        host = sni if is_tls and sni else host_header
        split = urlsplit(self.path)
        query = parse_qs(split.query)
        if host == GIT_HOST:
            resp = self._git(split.path, split.query)
        else:
            resp = route(state, host, self.command, split.path, query, is_tls)
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)
        client_ip, client_port = self.client_address[:2]
        state.log({
            "event": "request", "ts": time.time(), "host": host, "sni": sni,
            "host_header": host_header, "method": self.command, "path": self.path,
            "client_ip": client_ip, "client_port": client_port,
            "server_port": self.server.server_address[1],
            "user_agent": self.headers.get("User-Agent"), "status": resp.status,
            "location": resp.headers.get("Location"), "tls": is_tls,
        })

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _git(self, path: str, query: str) -> Response:
        body = self._read_body() if self.command == "POST" else b""
        if shutil.which("git") is None:
            return Response(404, b"git is not installed in the lab\n")
        status, headers, out = http_backend(self.server.state.git_root, self.command, path, query,
                                            dict(self.headers.items()), body)
        headers.pop("Content-Length", None)
        return Response(status, out, headers)

    do_GET = _serve
    do_HEAD = _serve
    do_POST = _serve


class LabHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: LabState,
                 tls: tuple[ssl.SSLContext, dict[str, ssl.SSLContext]] | None) -> None:
        self.state = state
        self.is_tls = tls is not None
        self.tls = tls
        super().__init__(address, LabHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind calls socket.getfqdn(), a DNS query that would show up in the
        # resolver's log; the lab server needs no name for itself.
        import socketserver

        socketserver.TCPServer.server_bind(self)
        self.server_name = "lab"
        self.server_port = self.server_address[1]

    def finish_request(self, request: Any, client_address: Any) -> None:
        # The TLS handshake runs here, in the connection's own thread, so one slow client does
        # not block the accept loop; each handshake is logged (also failed ones: the ClientHello
        # was on the wire either way).
        if self.tls is not None:
            request = self._handshake(request, client_address)
            if request is None:
                return
        super().finish_request(request, client_address)

    def _handshake(self, sock: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        assert self.tls is not None
        default, _per_host = self.tls
        _tls_local.sni = None
        entry: dict[str, Any] = {"event": "tls", "ts": time.time(), "client_ip": client_address[0],
                                 "client_port": client_address[1],
                                 "server_port": self.server_address[1]}
        sock.settimeout(30)
        # The ClientHello random names the connection in key logs and in the capture (tshark's
        # tls.handshake.random), also for connections tunnelled through the forward proxy, whose
        # client port the server never sees.
        entry["client_random"] = peek_client_random(sock)
        try:
            tls_sock = default.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError) as exc:
            entry.update(sni=_tls_local.sni, ok=False, error=str(exc))
            self.state.log(entry)
            sock.close()
            return None
        tls_sock.lab_sni = _tls_local.sni  # type: ignore[attr-defined]
        entry.update(sni=_tls_local.sni, ok=True, version=tls_sock.version(),
                     issuer=self.state.config.get("issuer"))
        self.state.log(entry)
        return tls_sock


def client_random(data: bytes) -> str | None:
    """The random of the ClientHello that ``data`` (the first bytes a TLS client sent) starts
    with, as hex; None when it is not a ClientHello. Read by hand because only its fixed-offset
    first 43 bytes matter: record header (5), handshake type and length (4), version (2), random."""
    if len(data) < 43 or data[0] != 0x16 or data[5] != 0x01:
        return None
    return data[11:43].hex()


def peek_client_random(sock: socket.socket, deadline_s: float = 5.0) -> str | None:
    """Peek (without consuming) until the ClientHello's random has arrived."""
    end = time.monotonic() + deadline_s
    data = b""
    while time.monotonic() < end:
        try:
            data = sock.recv(64, socket.MSG_PEEK)
        except OSError:
            return None
        if not data or len(data) >= 43:
            break
        time.sleep(0.005)
    return client_random(data)


def _discard(bind: str) -> None:
    """UDP discard (port 9): the capture-ready markers land here instead of drawing ICMP errors."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, 9))
    while True:
        sock.recv(2048)


def main(argv: list[str]) -> int:
    config = json.loads(Path(argv[0]).read_text())
    state = LabState(config)
    contexts = _contexts(config)
    servers = [LabHTTPServer((config["bind"], config["https_port"]), state, contexts),
               LabHTTPServer((config["bind"], config["http_port"]), state, None)]
    for srv in servers:
        threading.Thread(target=srv.serve_forever, daemon=True).start()
    threading.Thread(target=_discard, args=(config["bind"],), daemon=True).start()
    print("ready", flush=True)
    try:
        sys.stdin.read()  # the Lab closes our stdin (or kills us) to stop the server
    finally:
        for srv in servers:
            srv.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
