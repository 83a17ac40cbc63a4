"""Record real TLS handshake bytes from real clients on loopback, for the TLS parser tests.

Usage: .venv/bin/python tests/data/tls/record.py [OUTDIR]   (default: this directory)

A small TLS server on 127.0.0.1 (Python's ssl over memory BIOs, so both directions are seen
exactly as they cross the socket) answers every request with 404. Its certificate chain (a test
CA and a ``localhost`` leaf) is made with cryptography and trusted by each client through
SSL_CERT_FILE (go), NODE_EXTRA_CA_CERTS (node) or --cacert (curl). For each scenario the first
connection's client->server bytes (the ClientHello) and server->client handshake bytes are
written as ``<name>.client.bin`` / ``<name>.server.bin``, and ``PROVENANCE.json`` records the
commands and tool versions. Nothing leaves loopback.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parents[3]
GO = ROOT / ".venv" / "bin" / "go"


def make_chain(workdir: Path) -> tuple[Path, Path, Path]:
    """A CA and a leaf for localhost; returns (ca.pem, chain.pem, key.pem)."""
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "proxytrace test"),
                         x509.NameAttribute(NameOID.COMMON_NAME, "proxytrace test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(days=1))
          .not_valid_after(now + datetime.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"),
                x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.ExtendedKeyUsage([x509.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    ca_pem, chain_pem, key_pem = workdir / "ca.pem", workdir / "chain.pem", workdir / "key.pem"
    ca_pem.write_bytes(ca.public_bytes(pem))
    chain_pem.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_pem.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    return ca_pem, chain_pem, key_pem


class RecordingServer:
    """Accepts connections; records the first one's raw handshake bytes in both directions."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self.ctx = ctx
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.client_bytes = b""
        self.server_bytes = b""
        self.recorded = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.ctx.wrap_bio(incoming, outgoing, server_side=True)
        got, sent = bytearray(), bytearray()

        def flush() -> None:
            out = outgoing.read()
            if out:
                sent.extend(out)
                conn.sendall(out)

        def pump() -> bool:
            data = conn.recv(65536)
            if not data:
                incoming.write_eof()
                return False
            got.extend(data)
            incoming.write(data)
            return True

        try:
            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    flush()
                    if not pump():
                        return
            flush()
            if not self.recorded.is_set():
                self.client_bytes, self.server_bytes = bytes(got), bytes(sent)
                self.recorded.set()
            request = b""
            while b"\r\n\r\n" not in request:
                try:
                    request += tls.read(65536)
                except ssl.SSLWantReadError:
                    flush()
                    if not pump():
                        return
            tls.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\n"
                      b"not found\n")
            flush()
        except (ssl.SSLError, OSError):
            if not self.recorded.is_set() and got:
                self.client_bytes, self.server_bytes = bytes(got), bytes(sent)
                self.recorded.set()
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def run_client(argv: list[str], env: dict[str, str], cwd: Path) -> None:
    subprocess.run(argv, env=env, cwd=cwd, stdout=subprocess.DEVNULL,  # noqa: S603 - fixed argv
                   stderr=subprocess.DEVNULL,
                   timeout=120, check=False)


def version_of(argv: list[str]) -> str:
    out = subprocess.run(argv, capture_output=True, text=True, timeout=30,  # noqa: S603 - fixed argv
                         check=False)
    return (out.stdout or out.stderr).splitlines()[0].strip()


def main() -> int:
    outdir = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent
    work = Path(tempfile.mkdtemp(prefix="tlsrec-"))
    ca_pem, chain_pem, key_pem = make_chain(work)
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(work)}
    go_env = {**base_env, "SSL_CERT_FILE": str(ca_pem), "GOFLAGS": "-mod=mod", "GOSUMDB": "off",
              "GOTOOLCHAIN": "local", "GOPATH": str(work / "gopath"),
              "GOCACHE": str(work / "gocache"), "GOENV": "off"}
    moddir = work / "mod"
    moddir.mkdir()
    (moddir / "go.mod").write_text("module m\n\ngo 1.21\n")
    node, curl = shutil.which("node"), shutil.which("curl")

    def go_cmd(port: int) -> tuple[list[str], dict[str, str]]:
        return ([str(GO), "mod", "download", "example.com/m@v1.0.0"],
                {**go_env, "GOPROXY": f"https://localhost:{port}"})

    def node_cmd(port: int) -> tuple[list[str], dict[str, str]]:
        return ([node or "node", "-e", f"require('https').get('https://localhost:{port}/')"],
                {**base_env, "NODE_EXTRA_CA_CERTS": str(ca_pem)})

    def curl_cmd(port: int) -> tuple[list[str], dict[str, str]]:
        return ([curl or "curl", "-s", "--cacert", str(ca_pem), f"https://localhost:{port}/"],
                base_env)

    # (name, client, server max version, server groups): the groups restriction makes the
    # server answer Go's X25519MLKEM768/X25519 key shares with a HelloRetryRequest for P-256.
    scenarios = [("go1.27.3", go_cmd, None, None),
                 ("go1.27.3-tls12", go_cmd, ssl.TLSVersion.TLSv1_2, None),
                 ("go1.27.3-hrr", go_cmd, None, "prime256v1")]
    if node:
        scenarios.append(("node", node_cmd, None, None))
    if curl:
        scenarios.append(("curl", curl_cmd, None, None))

    provenance: dict[str, object] = {
        "recorded": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "recorder": "tests/data/tls/record.py", "server": ssl.OPENSSL_VERSION,
        "versions": {"go": version_of([str(GO), "version"]),
                     **({"node": version_of([node, "--version"])} if node else {}),
                     **({"curl": version_of([curl, "--version"])} if curl else {})},
        "scenarios": {},
    }
    for name, client, max_version, groups in scenarios:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(chain_pem, key_pem)
        ctx.set_alpn_protocols(["http/1.1"])
        if max_version is not None:
            ctx.maximum_version = max_version
        if groups is not None:
            ctx.set_ecdh_curve(groups)
        server = RecordingServer(ctx)
        argv, env = client(server.port)
        run_client(argv, env, moddir)
        server.recorded.wait(10)
        server.close()
        (outdir / f"{name}.client.bin").write_bytes(server.client_bytes)
        (outdir / f"{name}.server.bin").write_bytes(server.server_bytes)
        shown = [a.replace(f"{ROOT}/", "").replace(str(work), "$WORK")
                 .replace(str(server.port), "$PORT") for a in argv]
        provenance["scenarios"][name] = {  # type: ignore[index]
            "command": shown,
            "env": {k: v.replace(str(work), "$WORK").replace(str(server.port), "$PORT")
                    for k, v in env.items() if k not in ("PATH", "HOME")},
            "server_max_version": max_version.name if max_version else None,
            "server_groups": groups,
            "client_bytes": len(server.client_bytes), "server_bytes": len(server.server_bytes),
        }
        print(name, len(server.client_bytes), len(server.server_bytes))
    (outdir / "PROVENANCE.json").write_text(json.dumps(provenance, indent=2) + "\n")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
