"""The loops a user would write instead of proxytrace, for the benchmark's table.

``python -m bench.loops TOOL FILE`` prints the contacts found (one JSON line: DNS names, TLS SNIs,
HTTP hosts) so bench.run can check every tool found the same ones.

- ``dpkt``: the naive loop, an Ethernet/IP/TCP object per packet, DNS through dpkt.dns, HTTP
  through dpkt.http, ClientHellos gathered per connection until complete.
- ``scapy``: the same with scapy's PcapReader and layers.
- ``pyshark``: tshark's dissectors through pyshark, with the same display filter as tshark's row.

The ClientHello bytes are handed to proxytrace's own parser in every loop (what a user would do
with a library that has one), so the rows differ in how they read packets, which is what is
measured.
"""

from __future__ import annotations

import contextlib
import json
import sys
from typing import Any

TSHARK_FILTER = "dns or tls.handshake.type == 1 or http.request"
HELLO_LIMIT = 16384


class Found:
    def __init__(self) -> None:
        self.dns: set[str] = set()
        self.tls: set[str] = set()
        self.http: set[str] = set()
        self.hellos: dict[tuple[Any, ...], bytearray] = {}

    def tcp_payload(self, key: tuple[Any, ...], payload: bytes) -> None:
        from analyzer.base.errors import ParseError
        from analyzer.protocols.tls import parse_client_hello

        buf = self.hellos.get(key)
        if buf is None:
            if payload[:1] == b"\x16" and payload[5:6] == b"\x01":
                buf = self.hellos[key] = bytearray()
            else:
                return
        buf += payload
        try:
            hello = parse_client_hello(bytes(buf))
        except ParseError:
            del self.hellos[key]
            return
        if hello is not None or len(buf) > HELLO_LIMIT:
            del self.hellos[key]
            if hello is not None and hello.sni:
                self.tls.add(hello.sni)

    def dump(self) -> str:
        return json.dumps({"dns": sorted(self.dns), "tls": sorted(self.tls),
                           "http": sorted(self.http)})


def run_dpkt(path: str) -> Found:
    import dpkt

    found = Found()
    with open(path, "rb") as fh:
        for _ts, buf in dpkt.pcap.Reader(fh):
            eth = dpkt.ethernet.Ethernet(buf)
            ip = eth.data
            if not isinstance(ip, (dpkt.ip.IP, dpkt.ip6.IP6)):
                continue
            l4 = ip.data
            if isinstance(l4, dpkt.udp.UDP):
                if 53 in (l4.sport, l4.dport):
                    try:
                        msg = dpkt.dns.DNS(l4.data)
                    except (dpkt.UnpackError, IndexError):
                        continue
                    found.dns.update(q.name.lower() for q in msg.qd)
            elif isinstance(l4, dpkt.tcp.TCP) and l4.data:
                data = bytes(l4.data)
                if data[:4] in (b"GET ", b"POST", b"HEAD", b"PUT "):
                    try:
                        req = dpkt.http.Request(data)
                    except (dpkt.UnpackError, dpkt.NeedData):
                        continue
                    host = req.headers.get("host")
                    if host:
                        found.http.add(host.lower())
                    continue
                found.tcp_payload((ip.src, l4.sport, ip.dst, l4.dport), data)
    return found


def run_scapy(path: str) -> Found:
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, TCP, UDP
    from scapy.utils import PcapReader

    found = Found()
    with PcapReader(path) as reader:
        for pkt in reader:
            if IP not in pkt:
                continue
            if UDP in pkt and DNS in pkt:
                dns = pkt[DNS]
                for i in range(dns.qdcount or 0):
                    q = dns.qd[i] if dns.qd is not None else None
                    if q is not None:
                        found.dns.add(q.qname.decode().rstrip(".").lower())
            elif TCP in pkt:
                data = bytes(pkt[TCP].payload)
                if not data:
                    continue
                if data[:4] in (b"GET ", b"POST", b"HEAD", b"PUT "):
                    for line in data.split(b"\r\n")[1:]:
                        if line.lower().startswith(b"host:"):
                            found.http.add(line[5:].strip().decode().lower())
                    continue
                found.tcp_payload((pkt[IP].src, pkt[TCP].sport, pkt[IP].dst, pkt[TCP].dport),
                                  data)
    return found


def run_pyshark(path: str) -> Found:
    import pyshark
    from pyshark.capture.capture import TSharkCrashException

    found = Found()
    cap = pyshark.FileCapture(path, display_filter=TSHARK_FILTER, keep_packets=False)
    try:
        for pkt in cap:
            if hasattr(pkt, "dns") and getattr(pkt.dns, "qry_name", None):
                found.dns.add(str(pkt.dns.qry_name).lower())
            if hasattr(pkt, "tls"):
                sni = getattr(pkt.tls, "handshake_extensions_server_name", None)
                if sni:
                    found.tls.add(str(sni).lower())
            if hasattr(pkt, "http") and getattr(pkt.http, "host", None):
                found.http.add(str(pkt.http.host).lower())
    finally:
        # pyshark reports tshark's exit status when it stops the process it had already read to
        # the end (255 now and then); the packets are all read by then.
        with contextlib.suppress(TSharkCrashException):
            cap.close()
    return found


def main(argv: list[str]) -> int:
    tools = {"dpkt": run_dpkt, "scapy": run_scapy, "pyshark": run_pyshark}
    if len(argv) != 2 or argv[0] not in tools:
        print(f"usage: python -m bench.loops {{{','.join(tools)}}} FILE", file=sys.stderr)
        return 2
    print(tools[argv[0]](argv[1]).dump())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
