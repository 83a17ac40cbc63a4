"""Open a capture (a path or "-" for stdin) and stream decoded segments with their frames."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from ..errors import CaptureError
from .capture_file import RawFrame, ReadState, open_capture
from .decode import LINKTYPE_NAMES, SUPPORTED_LINKTYPES, Decoder, Segment


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


def iter_frames_and_segments(fh: BinaryIO, state: ReadState,
                             decoder: Decoder) -> Iterator[tuple[RawFrame, Segment | None]]:
    """Each frame with its decoded segment (None when it holds no TCP/UDP we can read)."""
    warned: set[int] = set()
    for frame in open_capture(fh, state):
        if frame.linktype not in SUPPORTED_LINKTYPES and frame.linktype not in warned:
            warned.add(frame.linktype)
            state.warnings.append(f"{state.name}: link type {frame.linktype} is not supported; "
                                  "its packets are skipped")
        yield frame, decoder.decode(frame.number, frame.ts, frame.linktype, frame.data)


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype, f"link type {linktype}")
