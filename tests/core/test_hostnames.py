"""Hostname validation: an ASCII name's form is found without the idna codec, and it is the
codec's (value or error)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.base.errors import UsageError
from analyzer.base.watchlist import ascii_form, normalize_hostname


def _outcome(fn: object, body: str) -> tuple[str, str]:
    try:
        return "ok", fn(body)  # type: ignore[operator]
    except UnicodeError as exc:
        return "error", str(exc)


def _codec(body: str) -> str:
    return body.encode("idna").decode("ascii").lower()


EDGE = ["proxy.golang.org", "PROXY.Golang.ORG", "golang.org", "a..b", ".a", "a.",
        "a" * 63 + ".b", "a" * 64 + ".b", ".".join(["a" * 60] * 4), ".".join(["a" * 63] * 4),
        "-a.b", "a-.b", "xn--bcher-kva.example", "a_b.example", "*", " ", "a b", "a\tb",
        "1.2.3.4", "bücher.example", "BÜCHER.example", "localhost", "x" * 300]


@pytest.mark.parametrize("body", EDGE)
def test_edge_names_as_the_codec_gives_them(body: str) -> None:
    assert _outcome(ascii_form, body) == _outcome(_codec, body)


@settings(max_examples=1500, deadline=None)
@given(st.lists(st.text(alphabet="aZ09-_*. ", min_size=0, max_size=70), min_size=1, max_size=5)
       .map(".".join))
def test_ascii_names_as_the_codec_gives_them(body: str) -> None:
    assert _outcome(ascii_form, body) == _outcome(_codec, body)


@pytest.mark.parametrize(("name", "expected"), [
    ("PROXY.golang.org.", "proxy.golang.org"), ("*.Golang.org", "*.golang.org"),
    ("bücher.example", "xn--bcher-kva.example")])
def test_names_normalised(name: str, expected: str) -> None:
    assert normalize_hostname(name) == expected


@pytest.mark.parametrize(("name", "why"), [
    ("a..b", "label empty or too long"), ("a" * 64 + ".b", "label empty or too long"),
    (".".join(["a" * 63] * 4), "longer than 253 characters"), ("a_b.example", "bad label"),
    ("-a.b", "bad label"), ("", "empty")])
def test_bad_names_refused_with_the_reason(name: str, why: str) -> None:
    with pytest.raises(UsageError, match=why):
        normalize_hostname(name)
