"""Stream a capture's frames with their decoded segments."""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from ..source.capture_file import RawFrame, ReadState, open_capture
from .decode import LINKTYPE_NAMES, SUPPORTED_LINKTYPES, Decoder, Segment


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
