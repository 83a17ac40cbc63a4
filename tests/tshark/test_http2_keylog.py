"""HTTP/2 inside TLS, decrypted: real curl against a real node HTTP/2 server.

The server runs in a network namespace this test creates (joined by a veth pair: captures on
``lo`` see nothing in some sandboxes), writes its key log (node ``--tls-keylog``), dumpcap
records the veth, and the tshark engine must read both requests of the one connection, in
order, with their User-Agent and status. Needs root, ip, dumpcap, node, curl and tshark; skips
otherwise.
"""

from __future__ import annotations

import datetime
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files

TOOLS = {name: shutil.which(name) for name in ("ip", "dumpcap", "node", "curl", "tshark")}
MARKER = b"proxytrace-h2-capture-ready"
HOST = "proxy.golang.org"
PATHS = ("/github.com/pkg/errors/@v/list", "/github.com/pkg/errors/@v/v0.9.1.zip")

SERVER_JS = """
const http2 = require('http2');
const fs = require('fs');
const server = http2.createSecureServer({key: fs.readFileSync(process.argv[2]),
                                         cert: fs.readFileSync(process.argv[3])});
server.on('stream', (stream, headers) => {
  stream.respond({':status': 200, 'content-type': 'text/plain'});
  stream.end('ok\\n');
});
server.listen(443, process.argv[4], () => console.log('ready'));
"""


def _missing() -> str | None:
    absent = [name for name, path in TOOLS.items() if path is None]
    if absent:
        return f"needs {', '.join(absent)}"
    if os.geteuid() != 0:
        return "network namespaces and capture need root"
    return None


def _ip(*args: str) -> None:
    subprocess.run([str(TOOLS["ip"]), *args], check=True, timeout=10,  # noqa: S603
                   capture_output=True)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace name, host-side interface, server address) of a fresh namespace."""
    tag = f"{os.getpid() % 10000}"
    name, outer, inner = f"pth2-{tag}", f"pth2o{tag}", f"pth2i{tag}"
    octet = os.getpid() % 250 + 1
    host_addr, server_addr = f"10.79.{octet}.1", f"10.79.{octet}.2"
    try:
        _ip("netns", "add", name)
    except (subprocess.CalledProcessError, OSError) as exc:
        pytest.skip(f"cannot create a network namespace: {exc}")
    try:
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", inner, "netns", name)
        _ip("addr", "add", f"{host_addr}/30", "dev", outer)
        _ip("link", "set", outer, "up")
        _ip("-n", name, "addr", "add", f"{server_addr}/30", "dev", inner)
        _ip("-n", name, "link", "set", inner, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield name, outer, server_addr
    finally:
        subprocess.run([str(TOOLS["ip"]), "link", "del", outer],  # noqa: S603
                       capture_output=True, timeout=10, check=False)
        subprocess.run([str(TOOLS["ip"]), "netns", "del", name],  # noqa: S603
                       capture_output=True, timeout=10, check=False)


def _certificate(tmp: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_path, cert_path = tmp / "key.pem", tmp / "cert.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


def _wait_for(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        if text in line:
            return
    raise AssertionError(f"{proc.args[0]} exited before printing {text!r}")


def _wait_capturing(capture: Path, address: str) -> None:
    """dumpcap reports readiness before packets reach the file: send marked datagrams (to the
    discard port of the namespace's address) until one is in the file."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _ in range(150):
            sock.sendto(MARKER, (address, 9))
            if capture.exists() and MARKER in capture.read_bytes():
                return
            time.sleep(0.1)
    raise AssertionError("dumpcap never recorded the readiness marker")


@pytest.mark.skipif(_missing() is not None, reason=_missing() or "")
def test_http2_requests_read_from_a_decrypted_connection(
        tmp_path: Path, namespace: tuple[str, str, str]) -> None:
    netns, interface, address = namespace
    key, cert = _certificate(tmp_path)
    (tmp_path / "server.js").write_text(SERVER_JS)
    keylog = tmp_path / "server.keylog"
    capture = tmp_path / "h2.pcapng"
    server = subprocess.Popen(  # noqa: S603 - fixed argument list
        [str(TOOLS["ip"]), "netns", "exec", netns, str(TOOLS["node"]), f"--tls-keylog={keylog}",
         str(tmp_path / "server.js"), str(key), str(cert), address], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    dump = subprocess.Popen(  # noqa: S603 - fixed argument list
        [str(TOOLS["dumpcap"]), "-q", "-i", interface, "-w", str(capture)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(server, "ready")
        _wait_capturing(capture, address)
        subprocess.run(  # noqa: S603 - fixed argument list; to the namespace only
            [str(TOOLS["curl"]), "-sS", "--http2", "-k", "-o", "/dev/null", "-o", "/dev/null",
             "-A", "Go-http-client/2.0", "--resolve", f"{HOST}:443:{address}",
             *(f"https://{HOST}{p}" for p in PATHS)],
            check=True, timeout=30, capture_output=True)
        # curl has exited, so its last segments left; a beat lets dumpcap write them out.
        time.sleep(0.3)
    finally:
        dump.send_signal(signal.SIGINT)
        dump.wait(timeout=10)
        server.terminate()
        server.wait(timeout=10)
    opts = AnalyzeOptions(watch=WatchList.build([HOST]), engine="tshark", keylog=keylog)
    report = analyze_files([capture], opts)
    tls = [c for c in report.contacts if c.layer == "tls"]
    assert len(tls) == 1
    contact = tls[0]
    assert contact.tls is not None and contact.tls.alpn[:1] == ("h2",)
    assert contact.operations == ("module-list", "module-zip")
    assert contact.operation == "module-list"
    assert contact.http is not None
    assert (contact.http.method, contact.http.path, contact.http.status) == ("GET", PATHS[0], 200)
    assert contact.http.user_agent == "Go-http-client/2.0"
    # the client is named from the decrypted User-Agent (Go's net/http default)
    assert contact.client == "go-net-http"
    assert contact.client_evidence == "User-Agent: Go-http-client/2.0"
    session = next(s for s in report.evidence.tls if s.flow.flow_id == contact.flow_id)
    assert [ex.request.version for ex in session.requests] == ["HTTP/2", "HTTP/2"]
    assert [ex.response.status if ex.response else None for ex in session.requests] == [200, 200]
