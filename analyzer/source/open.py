"""Open a capture: a path, or "-" for standard input."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..base.errors import CaptureError


@contextmanager
def open_source(path: str | Path) -> Iterator[tuple[BinaryIO, str]]:
    name = str(path)
    if name == "-":
        yield sys.stdin.buffer, "<stdin>"
        return
    p = Path(path)
    if p.is_dir():
        raise CaptureError(f"{name}: is a directory, not a capture")
    try:
        fh = p.open("rb", buffering=1 << 20)
    except FileNotFoundError:
        raise CaptureError(f"{name}: no such file") from None
    except OSError as exc:
        raise CaptureError(f"{name}: cannot open: {exc.strerror}") from None
    with fh:
        yield fh, name
