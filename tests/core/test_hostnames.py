"""Hostname validation: an ASCII name is checked without the idna codec, with the codec's
result and the same errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import normalize_hostname

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def _through_the_codec(name: str) -> str:
    """normalize_hostname as it was, every name through the idna codec (the reference)."""
    raw = name.strip().rstrip(".")
    wildcard = raw.startswith("*.")
    body = raw[2:] if wildcard else raw
    if not body:
        raise UsageError(f"invalid hostname {name!r}: empty")
    try:
        ascii_name = body.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise UsageError(f"invalid hostname {name!r}: {exc}") from None
    if len(ascii_name) > 253:
        raise UsageError(f"invalid hostname {name!r}: longer than 253 characters")
    for label in ascii_name.split("."):
        if not _LABEL.match(label):
            raise UsageError(f"invalid hostname {name!r}: bad label {label!r}")
    return ("*." if wildcard else "") + ascii_name


def _outcome(fn: object, name: str) -> tuple[str, str]:
    try:
        return "ok", fn(name)  # type: ignore[operator]
    except UsageError as exc:
        return "error", str(exc)


EDGE = ["proxy.golang.org", "PROXY.Golang.ORG.", "*.golang.org", "a..b", ".a", "a" * 63 + ".b",
        "a" * 64 + ".b", ".".join(["a" * 60] * 4), ".".join(["a" * 63] * 4), "-a.b", "a-.b",
        "xn--bcher-kva.example", "a_b.example", "*.", "*", "", " ", "a b", "a\tb", "1.2.3.4",
        "bücher.example", "*.bücher.example", "localhost", "x" * 300]


@pytest.mark.parametrize("name", EDGE)
def test_edge_names_as_through_the_codec(name: str) -> None:
    assert _outcome(normalize_hostname, name) == _outcome(_through_the_codec, name)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.text(alphabet="aZ09-_*. ", min_size=0, max_size=70), min_size=1, max_size=5)
       .map(".".join))
def test_ascii_names_as_through_the_codec(name: str) -> None:
    assert _outcome(normalize_hostname, name) == _outcome(_through_the_codec, name)
