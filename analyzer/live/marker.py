"""Marker datagrams: know, by an event rather than a sleep, that the capture has caught up.

Without ``--immediate-mode`` (which drops most packets under load, see backends.py) libpcap's
TPACKET_V3 ring hands a block of packets to tcpdump only when the block is full or its 1 s
timeout passes. Waiting that timeout out cost every run a second. Instead we send a few large
UDP datagrams carrying a random token to a port of our own on 127.0.0.1: they fill (and so
retire) the block holding the last real packets, and once the token shows in the capture file
every packet captured before it is in the file too (the ring keeps arrival order). The same
round at start proves the capture sees traffic before the ready line.

The markers are added to the capture filter, never copied into the final pcapng (annotate.py
skips them) and never reach a contact. They need the capture to see the loopback interface
(``-i any`` or ``-i lo``); on any other interface the callers fall back to the timed wait.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

# libpcap 1.10 sizes each TPACKET_V3 block to hold one 256 KiB "frame"; a round of markers
# larger than a block retires the block the last real packet is in, the next round the one the
# first marker landed in. Loopback's MTU is 64 KiB, so each datagram is one packet.
MARKER_BYTES = 60_000
PER_ROUND = 5
ROUND_WAIT = 0.02  # seconds between rounds while looking for the token
POLL = 0.002  # seconds between looks at the file
LOOPBACK = "127.0.0.1"


def sees_loopback(interface: str) -> bool:
    return interface in ("any", "lo")


def filter_with_marker(bpf: str, port: int) -> str:
    """``bpf`` widened to let our marker datagrams through (an empty filter already does)."""
    if not bpf:
        return bpf
    return f"({bpf}) or (udp and dst host {LOOPBACK} and dst port {port})"


class Marker:
    """A bound receiving socket (so no ICMP port-unreachable answers) and a random token.
    Raises OSError when loopback is unusable (down in a network namespace)."""

    def __init__(self) -> None:
        self._rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._rx.bind((LOOPBACK, 0))
        self._rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # nobody reads them
        self.port: int = self._rx.getsockname()[1]
        self.token = b"proxytrace-marker-" + os.urandom(12).hex().encode()
        self.rounds = 0

    def is_marker(self, transport: str, dst: str, dport: int, data: bytes) -> bool:
        return transport == "udp" and dport == self.port and dst == LOOPBACK and self.token in data

    def send_round(self) -> bool:
        """One round of datagrams from a fresh connected socket (a new 4-tuple each round, so
        a tracer reporting each socket once reports each round); False when none was sent."""
        self.rounds += 1
        payload = self.token + b"." + str(self.rounds).encode() + b"."
        payload += b"\0" * (MARKER_BYTES - len(payload))
        sent = 0
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as tx:
                tx.connect((LOOPBACK, self.port))
                for _ in range(PER_ROUND):
                    tx.send(payload)
                    sent += 1
        except OSError:
            pass  # loopback down, or a full send buffer: what was sent still counts
        return sent > 0

    def wait_in_file(self, path: Path, timeout: float, alive: object = None) -> bool:
        """Send rounds until the token appears in ``path`` (scanned from its size at the call
        onwards); False after ``timeout`` seconds or when ``alive()`` turns false."""
        try:
            offset = max(0, path.stat().st_size - len(self.token))
        except OSError:
            offset = 0
        deadline = time.monotonic() + timeout
        while True:
            if not self.send_round():
                return False
            round_end = time.monotonic() + ROUND_WAIT
            while time.monotonic() < round_end:
                time.sleep(POLL)
                if _found(path, offset, self.token):
                    return True
            if time.monotonic() > deadline or (callable(alive) and not alive()):
                return False

    def close(self) -> None:
        self._rx.close()


def _found(path: Path, offset: int, token: bytes) -> bool:
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            # the tail since the first round: markers are at most a few hundred KiB behind
            return token in fh.read()
    except OSError:
        return False
