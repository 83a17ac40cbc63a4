"""One shared object for each distinct immutable value the engine keeps.

A capture repeats itself: the same Go binary sends the same ClientHello on every connection, a
resolver gives the same records to every query for a name, a server sends the same certificate
chain. Evidence is kept until the report is written, so each repetition stored as its own objects
made memory grow with the capture (about 21 MB of events per 2 million packets, most of them
copies). Sharing one object per value changes no result: the values are frozen and compared by
value everywhere downstream; only their identity is shared (which also lets pickle send a
repeated value once when a worker hands its evidence back).
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

# Distinct values remembered before the table starts afresh: memory stays bounded on a capture
# of nothing but distinct values, at the price of a second copy of a value seen again later.
LIMIT = 1 << 16


class Interner:
    """``intern(value)`` returns the first value equal to ``value`` it saw, else ``value``."""

    __slots__ = ("_seen",)

    def __init__(self) -> None:
        self._seen: dict[Any, Any] = {}

    def __call__(self, value: T) -> T:
        seen = self._seen
        try:
            kept = seen.get(value)
        except TypeError:  # a value holding something mutable: nothing to share
            return value
        if kept is not None:
            return kept  # type: ignore[no-any-return]
        if len(seen) >= LIMIT:
            seen.clear()
        seen[value] = value
        return value

    def __len__(self) -> int:
        return len(self._seen)
