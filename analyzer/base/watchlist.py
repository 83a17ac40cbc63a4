"""The hosts we watch, and hostname validation shared by everything that builds filters."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError

# The Go infrastructure (../shared/GO_NETWORK_FACTS.md, sections 1-6 and 11) and common mirrors.
DEFAULT_HOSTS: tuple[str, ...] = (
    "proxy.golang.org",
    "sum.golang.org",
    "golang.org",
    "go.googlesource.com",
    "go.dev",
    "dl.google.com",
    "telemetry.go.dev",
    "vuln.go.dev",
    "goproxy.cn",
    "goproxy.io",
    "sum.golang.google.cn",
)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def is_ip_address(text: str) -> bool:
    """True for an IPv4 or IPv6 address literal (not a hostname)."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def normalize_hostname(name: str) -> str:
    """Return the ASCII (IDNA) lower-case form of a hostname or ``*.domain`` pattern.

    Raises UsageError for anything that is not a plain hostname, so user input can never smuggle
    filter syntax (quotes, spaces, operators) into BPF or display filters.
    """
    raw = name.strip().rstrip(".")
    wildcard = raw.startswith("*.")
    body = raw[2:] if wildcard else raw
    if not body:
        raise UsageError(f"invalid hostname {name!r}: empty")
    try:
        ascii_name = ascii_form(body)
    except UnicodeError as exc:
        raise UsageError(f"invalid hostname {name!r}: {exc}") from None
    if len(ascii_name) > 253:
        raise UsageError(f"invalid hostname {name!r}: longer than 253 characters")
    for label in ascii_name.split("."):
        if not _LABEL.match(label):
            raise UsageError(f"invalid hostname {name!r}: bad label {label!r}")
    return ("*." if wildcard else "") + ascii_name


def ascii_form(body: str) -> str:
    """``body.encode("idna").decode("ascii").lower()``, without importing the codec for an
    ASCII name whose labels are all 1-63 characters: the codec gives such a name unchanged
    (it checks only the labels' lengths), and importing it is 2 ms of every start-up. Any
    other name goes through the codec, which raises UnicodeError as before."""
    if body.isascii() and all(0 < len(label) < 64 for label in body.split(".")):
        return body.lower()
    return body.encode("idna").decode("ascii").lower()


@dataclass(frozen=True, slots=True)
class WatchList:
    """Exact names and ``*.suffix`` patterns; ``match_all`` reports every name."""

    exact: frozenset[str]
    suffixes: tuple[str, ...] = ()
    match_all: bool = False

    @classmethod
    def build(cls, names: Iterable[str] = DEFAULT_HOSTS, match_all: bool = False) -> WatchList:
        exact: set[str] = set()
        suffixes: list[str] = []
        for name in names:
            norm = normalize_hostname(name)
            if norm.startswith("*."):
                suffixes.append(norm[1:])  # ".example.com"
            else:
                exact.add(norm)
        return cls(frozenset(exact), tuple(sorted(set(suffixes))), match_all)

    def matches(self, name: str | None) -> bool:
        if not name:
            return False
        if self.match_all:
            return True
        n = name.lower().rstrip(".")
        if n in self.exact:
            return True
        return any(n.endswith(s) for s in self.suffixes)

    def names(self) -> list[str]:
        """Every entry as written in a watch file (exact names, then ``*.suffix`` patterns)."""
        return sorted(self.exact) + ["*" + s for s in self.suffixes]


def read_watch_file(path: Path) -> list[str]:
    """One hostname or ``*.pattern`` per line; ``#`` starts a comment."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read watch file: {exc.strerror}") from None
    names = []
    for line in text.splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            names.append(entry)
    return names
