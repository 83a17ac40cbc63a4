"""JA3 cross-check with Wireshark's own implementation (tshark's tls.handshake.ja3 field).

The recorded ClientHellos are wrapped in a synthetic TCP segment to port 443 so tshark dissects
them; the public captures are given to tshark as they are.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dpkt
import pytest

from analyzer.protocols.tls import parse_client_hello

from .test_tls_captures import tcp_streams

DATA = Path(__file__).resolve().parents[1] / "data" / "tls"
TSHARK = shutil.which("tshark")

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")


def _tshark_ja3(pcap: Path) -> list[tuple[str, str]]:
    """(ja3_full, ja3) of the first ClientHello of each TCP stream, in stream order."""
    decode_as = [arg for port in (80, 4433, 8888) for arg in ("-d", f"tcp.port=={port},tls")]
    out = subprocess.run(  # noqa: S603 - fixed argv
        [str(TSHARK), "-n", "-r", str(pcap), *decode_as, "-Y", "tls.handshake.type == 1",
         "-T", "fields", "-e", "tcp.stream", "-e", "tls.handshake.ja3_full",
         "-e", "tls.handshake.ja3"],
        capture_output=True, text=True, timeout=60, check=True)
    first: dict[str, tuple[str, str]] = {}
    for line in out.stdout.splitlines():
        stream, full, digest = (line.split("\t") + ["", ""])[:3]
        first.setdefault(stream, (full, digest))
    return list(first.values())


def _wrap(client_bytes: bytes, path: Path) -> None:
    """One Ethernet/IPv4/TCP frame carrying the bytes from 127.0.0.1:40000 to 127.0.0.1:443."""
    tcp = dpkt.tcp.TCP(sport=40000, dport=443, seq=1, ack=1, flags=dpkt.tcp.TH_ACK | dpkt.tcp.TH_PUSH,
                       data=client_bytes)
    ip = dpkt.ip.IP(src=bytes([127, 0, 0, 1]), dst=bytes([127, 0, 0, 1]), p=dpkt.ip.IP_PROTO_TCP,
                    data=tcp)
    ip.len = len(bytes(ip))
    eth = dpkt.ethernet.Ethernet(type=dpkt.ethernet.ETH_TYPE_IP, data=ip)
    with path.open("wb") as fh:
        writer = dpkt.pcap.Writer(fh)
        writer.writepkt(bytes(eth), ts=0)


@pytest.mark.parametrize("name", ["go1.27.3", "node", "curl"])
def test_ja3_of_recorded_clients(tmp_path: Path, name: str) -> None:
    raw = (DATA / f"{name}.client.bin").read_bytes()
    end = 5 + int.from_bytes(raw[3:5], "big")  # the first record holds the whole ClientHello
    pcap = tmp_path / f"{name}.pcap"
    _wrap(raw[:end], pcap)
    hello = parse_client_hello(raw)
    assert hello is not None
    assert _tshark_ja3(pcap) == [(hello.ja3_string, hello.ja3)]


@pytest.mark.parametrize("name", sorted(p.name for p in (DATA / "captures").glob("*.pcap")))
def test_ja3_of_public_captures(name: str) -> None:
    pcap = DATA / "captures" / name
    ours = []
    for client, _server in tcp_streams(pcap).values():
        hello = parse_client_hello(client)
        if hello is not None:
            ours.append((hello.ja3_string, hello.ja3))
    assert ours and _tshark_ja3(pcap) == ours
