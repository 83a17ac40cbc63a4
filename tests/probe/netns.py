"""A throw-away network namespace with the fake network of fakenet.py, for live probe tests."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

REPO = Path(__file__).resolve().parents[2]
IP = shutil.which("ip") or "/usr/sbin/ip"


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create a network namespace"
    if not Path(IP).exists():
        return "needs iproute2 (ip)"
    probe = subprocess.run([IP, "netns", "list"], capture_output=True, check=False)  # noqa: S603
    if probe.returncode != 0:
        return f"ip netns unavailable: {probe.stderr.decode(errors='replace').strip()}"
    return None


class CA:
    def __init__(self, name: str) -> None:
        self.name = name
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                             x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(days=1))
                     .not_valid_after(now + datetime.timedelta(days=2))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(True, False, False, False, False, True, True,
                                                  False, False), critical=True)
                     .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()),
                                    critical=False)
                     .sign(self.key, hashes.SHA256()))

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, hostname: str, directory: Path) -> dict[str, str]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
                .issuer_name(self.cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()), critical=False)
                .sign(self.key, hashes.SHA256()))
        cert_path, key_path = directory / f"{hostname}.crt", directory / f"{hostname}.key"
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) + self.pem())
        key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        return {"cert": str(cert_path), "key": str(key_path)}


class FakeNet:
    """``with FakeNet(tmp, config) as net: net.run([...])`` runs argv inside the namespace."""

    def __init__(self, workdir: Path, config: dict[str, object], hosts_file: str = "") -> None:
        self.name = f"ptprobe-{os.getpid()}-{id(self) % 10000}"
        self.workdir = workdir
        self.config = config
        self.hosts_file = hosts_file
        self.etc = Path("/etc/netns") / self.name
        self.server: subprocess.Popen[str] | None = None

    def __enter__(self) -> FakeNet:
        subprocess.run([IP, "netns", "add", self.name], check=True)  # noqa: S603
        try:
            subprocess.run([IP, "-n", self.name, "link", "set", "lo", "up"], check=True)  # noqa: S603
            self.etc.mkdir(parents=True, exist_ok=True)
            (self.etc / "resolv.conf").write_text("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
            (self.etc / "hosts").write_text("127.0.0.1 localhost\n" + self.hosts_file)
            cfg = self.workdir / "fakenet.json"
            cfg.write_text(json.dumps(self.config))
            self.server = subprocess.Popen(  # noqa: S603 - fixed argv
                [IP, "netns", "exec", self.name, sys.executable, "-m", "tests.probe.fakenet",
                 str(cfg)], cwd=REPO, stdout=subprocess.PIPE, text=True)
            assert self.server.stdout is not None
            line = self.server.stdout.readline()
            if line.strip() != "ready":
                raise RuntimeError("fake network did not start")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def run(self, argv: list[str], env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        full_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir),
                    **(env or {})}
        return subprocess.run([IP, "netns", "exec", self.name, *argv],  # noqa: S603 - fixed argv
                              cwd=REPO, env=full_env, capture_output=True, text=True,
                              timeout=timeout, check=False)

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.terminate()
            try:
                self.server.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        subprocess.run([IP, "netns", "delete", self.name], check=False,  # noqa: S603
                       capture_output=True)
        shutil.rmtree(self.etc, ignore_errors=True)
