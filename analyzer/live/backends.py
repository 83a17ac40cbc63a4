"""Capture backends: tcpdump (default) and dumpcap write the packets; Python only starts and stops them.

Both run in their own session so a terminal Ctrl-C reaches the traced command first and
proxytrace stops the capture after it, in order, leaving a complete file. The kernel drop counts
they print on exit are parsed by pure functions.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .marker import Marker, filter_with_marker, sees_loopback

BACKENDS = ("tcpdump", "dumpcap")
SNAPLEN = 65535
BUFFER_MB = 32
DUMPCAP_SETTLE = 0.5
TCPDUMP_BLOCK_TIMEOUT = 1.1  # libpcap's default 1000 ms packet-buffer timeout, and a margin
MARKER_TIMEOUT = 3.0  # seconds to wait for a marker before falling back to the timed waits


@dataclass(frozen=True, slots=True)
class CaptureCounts:
    captured: int | None = None
    received: int | None = None
    dropped: int | None = None        # by the kernel (buffer full)
    if_dropped: int | None = None     # by the interface / driver, when reported


_TCPDUMP_COUNT = re.compile(r"^(\d+) packets? (captured|received by filter|dropped by kernel|"
                            r"dropped by interface)", re.M)
_DUMPCAP_CAPTURED = re.compile(r"Packets captured: (\d+)")
_DUMPCAP_IFACE = re.compile(r"^Packets received/dropped on interface '[^']*': (\d+)/(\d+)", re.M)


def parse_tcpdump_stats(stderr: str) -> CaptureCounts:
    found: dict[str, int] = {}
    for m in _TCPDUMP_COUNT.finditer(stderr):
        found[m.group(2)] = int(m.group(1))
    return CaptureCounts(found.get("captured"), found.get("received by filter"),
                         found.get("dropped by kernel"), found.get("dropped by interface"))


def parse_dumpcap_stats(stderr: str) -> CaptureCounts:
    captured = _DUMPCAP_CAPTURED.search(stderr)
    received = dropped = None
    for m in _DUMPCAP_IFACE.finditer(stderr):
        received = (received or 0) + int(m.group(1))
        dropped = (dropped or 0) + int(m.group(2))
    return CaptureCounts(int(captured.group(1)) if captured else None, received, dropped)


def tcpdump_argv(tool: str, interface: str, bpf: str, out: str) -> list[str]:
    # No --immediate-mode: with it libpcap retires a TPACKET_V3 ring block per packet, and under
    # load most packets are dropped (bench/live_overhead.py measured 90%). Without it, packets of
    # a block not yet full reach tcpdump only when the block times out (1 s): ``stop`` sends
    # marker datagrams that fill the block (marker.py), or waits that long, before SIGINT.
    argv = [tool, "-i", interface, "-n", "-s", str(SNAPLEN), "-B", str(BUFFER_MB * 1024), "-U",
            "-w", out]
    if os.geteuid() == 0:
        argv += ["-Z", "root"]  # keep the right to write into our private directory
    if interface == "any":
        argv += ["-y", "LINUX_SLL2"]  # keeps the interface index and direction per packet
    if bpf:
        argv.append(bpf)
    return argv


def dumpcap_argv(tool: str, interface: str, bpf: str, out: str) -> list[str]:
    argv = [tool, "-i", interface, "-n", "-s", str(SNAPLEN), "-B", str(BUFFER_MB), "-w", out]
    if bpf:
        argv += ["-f", bpf]
    return argv


class Capture:
    """One running capture; ``stop()`` returns the counts the tool printed.

    With ``markers`` (the default when the interface sees loopback) ``start()`` returns once a
    marker has reached the file, and ``stop()`` sends markers until the file holds everything
    captured before the call, then stops the tool with SIGINT and waits for it to exit.
    """

    def __init__(self, backend: str, interface: str, bpf: str, out: Path,
                 markers: bool | None = None) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"unknown capture backend {backend!r}")
        tool = shutil.which(backend)
        if tool is None:
            raise FileNotFoundError(backend)
        self.backend = backend
        self.tool = tool
        self.out = out
        if markers is None:
            markers = sees_loopback(interface)
        self.marker: Marker | None = None
        if markers:
            try:
                self.marker = Marker()
            except OSError:
                pass  # no usable loopback: the timed waits below
        if self.marker is not None:
            bpf = filter_with_marker(bpf, self.marker.port)
        build = tcpdump_argv if backend == "tcpdump" else dumpcap_argv
        self.argv = build(tool, interface, bpf, str(out))
        self.flushed_by_marker = False
        self._markers_work = self.marker is not None
        self._proc: subprocess.Popen[str] | None = None
        self._stderr: list[str] = []
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None
        self.started_at = 0.0

    def start(self, timeout: float = 20.0) -> None:
        self._proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                      stderr=subprocess.PIPE, text=True, errors="replace",
                                      start_new_session=True)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                time.sleep(0.1)
                raise RuntimeError(f"{self.backend} exited: {self.error_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.backend} did not start capturing in {timeout:.0f}s")
        if self.marker is not None and not self._marker_seen():
            self._markers_work = False  # not waited for again at the stop
        if not self._markers_work:
            if self.backend == "dumpcap":
                # dumpcap reports "Capturing on" a moment before packets really reach its file.
                time.sleep(DUMPCAP_SETTLE)
        self.started_at = time.time()

    def _alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _marker_seen(self) -> bool:
        """True once a marker sent now has reached the file (all captured before it has too)."""
        if self.marker is None or not self._markers_work:
            return False
        return self.marker.wait_in_file(self.out, MARKER_TIMEOUT, self._alive)

    def _read_stderr(self) -> None:
        assert self._proc and self._proc.stderr
        for line in self._proc.stderr:
            self._stderr.append(line)
            # "tcpdump: listening on any, ..." / dumpcap: "Capturing on 'any'"
            if "listening on" in line or line.startswith("Capturing on"):
                self._ready.set()

    def error_text(self) -> str:
        lines = [ln.strip() for ln in self._stderr if ln.strip()]
        return lines[-1] if lines else "no message"

    def stop(self) -> CaptureCounts:
        if self._proc is None:
            return CaptureCounts()
        if self._proc.poll() is None:
            self.flushed_by_marker = self._marker_seen()
            if not self.flushed_by_marker and self.backend == "tcpdump":
                time.sleep(TCPDUMP_BLOCK_TIMEOUT)
            # Both tools flush, close the file and print their statistics on SIGINT.
            self._proc.send_signal(signal.SIGINT)
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        if self._reader:
            self._reader.join(timeout=5)  # the statistics are the last lines it reads
        if self.marker is not None:
            self.marker.close()
        text = "".join(self._stderr)
        return parse_tcpdump_stats(text) if self.backend == "tcpdump" else parse_dumpcap_stats(text)
