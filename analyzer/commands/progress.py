"""Progress on stderr for long analyses: bytes read (and how much of the file), packets, and
protocol exchanges recognised so far. Shown only on a terminal; at most a few updates a second so
printing never costs more than the work it reports on."""

from __future__ import annotations

import os
import sys
import time
from typing import TextIO


class Progress:
    """A ``ProgressFn`` (capture, bytes_read, packets, exchanges; exchanges < 0 ends a capture)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 0.2) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.interval = interval
        self._last = 0.0
        self._sizes: dict[str, int | None] = {}
        self._width = 0
        self.files_done = 0
        self.files_total = 0

    @classmethod
    def for_terminal(cls, quiet: bool, stream: TextIO | None = None) -> Progress | None:
        """A printer when ``stream`` (stderr by default) is a terminal and not ``quiet``."""
        out = stream if stream is not None else sys.stderr
        if quiet or not out.isatty():
            return None
        return cls(out)

    def _size(self, capture: str) -> int | None:
        if capture not in self._sizes:
            try:
                self._sizes[capture] = os.stat(capture).st_size
            except OSError:
                self._sizes[capture] = None  # stdin, or gone
        return self._sizes[capture]

    def __call__(self, capture: str, nbytes: int, packets: int, exchanges: int) -> None:
        now = time.monotonic()
        final = exchanges < 0
        if not final and now - self._last < self.interval:
            return
        self._last = now
        size = self._size(capture)
        share = f" ({100 * nbytes / size:.0f}%)" if size else ""
        files = f"[{self.files_done}/{self.files_total}] " if self.files_total > 1 else ""
        found = "done" if final else f"{exchanges:,} DNS/TLS/HTTP exchanges so far"
        line = f"{files}{capture}: {nbytes / 1e6:,.1f} MB{share}, {packets:,} packets, {found}"
        pad = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write(f"\r{line}{pad}")
        if final:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()
