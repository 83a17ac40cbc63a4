"""A tiny network for probe tests, run inside a throw-away network namespace.

``python -m tests.probe.fakenet CONFIG.json`` serves, on the namespace's loopback addresses:
- DNS on 127.0.0.1:53 (UDP): ``answers`` maps a name to its A addresses; ``inject`` maps a name
  to an address sent first, before the real answer (the injected-response race);
- HTTP on port 80 and HTTPS on port 443 of every address in ``servers``; ``servers[addr]`` names
  the cert/key files to present; ``redirects`` maps a path to a Location.
It writes "ready" to stdout once every socket is bound, and runs until killed.
"""

from __future__ import annotations

import json
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import dpkt


def serve_dns(answers: dict[str, list[str]], inject: dict[str, str]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 53))

    def loop() -> None:
        while True:
            data, peer = sock.recvfrom(4096)
            try:
                query = dpkt.dns.DNS(data)
            except (dpkt.UnpackError, IndexError):
                continue
            if not query.qd:
                continue
            q = query.qd[0]
            name = q.name.lower().rstrip(".")

            def reply(addresses: list[str], q: Any = q, query: Any = query,
                      name: str = name) -> bytes:
                resp = dpkt.dns.DNS(id=query.id, op=dpkt.dns.DNS_RA | dpkt.dns.DNS_QR | dpkt.dns.DNS_RD,
                                    qd=[q], an=[])
                resp.rcode = dpkt.dns.DNS_RCODE_NOERR if name in answers else dpkt.dns.DNS_RCODE_NXDOMAIN
                if q.type == dpkt.dns.DNS_A:
                    for a in addresses:
                        resp.an.append(dpkt.dns.DNS.RR(name=q.name, type=dpkt.dns.DNS_A,
                                                       cls=dpkt.dns.DNS_IN, ttl=60,
                                                       rdata=socket.inet_aton(a)))
                return bytes(resp)

            if name in inject and q.type == dpkt.dns.DNS_A:
                sock.sendto(reply([inject[name]]), peer)
            sock.sendto(reply(answers.get(name, [])), peer)

    threading.Thread(target=loop, daemon=True).start()
    return sock


def make_handler(redirects: dict[str, str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base class name
            return

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            location = redirects.get(self.path)
            body = b"" if location else b"ok\n"
            self.send_response(302 if location else 200)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def serve_http(address: str, port: int, handler: type[BaseHTTPRequestHandler],
               tls: dict[str, str] | None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer((address, port), handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(tls["cert"], tls["key"])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        config = json.load(fh)
    serve_dns(config.get("answers", {}), config.get("inject", {}))
    handler = make_handler(config.get("redirects", {}))
    for address, tls in config.get("servers", {}).items():
        serve_http(address, 80, handler, None)
        serve_http(address, 443, handler, tls)
    print("ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1])
