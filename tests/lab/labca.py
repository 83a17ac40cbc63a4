"""The lab's certificate authorities and server certificates, made with ``cryptography``.

Two CAs: the lab CA that signs the certificates the watched hosts normally present (clients trust
it through SSL_CERT_FILE / NODE_EXTRA_CA_CERTS), and an "interception" CA standing in for a
TLS-inspecting middlebox, so a scenario can show a certificate from an unexpected issuer.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LAB_CA_NAME = "proxytrace lab CA"
INTERCEPT_CA_NAME = "proxytrace interception CA"
ORG = "proxytrace lab"


@dataclass(frozen=True)
class Authority:
    name: str
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)


def _name(common_name: str, org: str = ORG) -> x509.Name:
    return x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name),
    ])


def _validity() -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)


def make_ca(common_name: str) -> Authority:
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return Authority(common_name, key, cert)


def issue(ca: Authority, hostname: str) -> tuple[bytes, bytes]:
    """A leaf certificate for ``hostname`` (cert PEM + chain, key PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    start, end = _validity()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hostname))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                       critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    chain = cert.public_bytes(serialization.Encoding.PEM) + ca.pem()
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return chain, key_pem


def write_server_certs(ca: Authority, hostnames: list[str], directory: Path) -> dict[str, dict[str, str]]:
    """Write one cert/key pair per hostname; returns {hostname: {"cert": path, "key": path}}."""
    directory.mkdir(parents=True, exist_ok=True)
    out: dict[str, dict[str, str]] = {}
    for host in hostnames:
        chain, key = issue(ca, host)
        cert_path = directory / f"{host}.crt"
        key_path = directory / f"{host}.key"
        cert_path.write_bytes(chain)
        key_path.write_bytes(key)
        key_path.chmod(0o600)
        out[host] = {"cert": str(cert_path), "key": str(key_path)}
    return out
