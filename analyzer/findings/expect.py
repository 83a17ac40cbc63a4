"""What is normal for a host: the address ranges its DNS answers may fall in, the certificate
issuers accepted for it, the lowest TLS version it should negotiate.

This is data, not code: a TOML file ships with the package (``data/expect-default.toml``) and a
user file given with ``--expect`` is merged over it (format in ../shared/DESIGN.md):

    [hosts."proxy.golang.org"]          # a name, or "*.example.com"
    addresses = ["142.250.0.0/15"]
    issuers = ["Google Trust Services"]
    min_tls_version = "1.3"             # optional

A key given in the user file replaces that key of the shipped entry for the same pattern; keys
left out keep the shipped value. So a user can narrow the issuers of a host as well as widen them.
For a name covered by several entries, each key comes from the first entry that sets it, in this
order: the user's exact name, the user's longest ``*.suffix``, then the same two for the shipped
file. A user's ``*.golang.org`` therefore applies to proxy.golang.org although the shipped file
names proxy.golang.org exactly.
"""

from __future__ import annotations

import ipaddress
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import UsageError
from ..base.watchlist import normalize_hostname

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

TLS_VERSIONS = ("1.0", "1.1", "1.2", "1.3")
_ALLOWED_KEYS = frozenset({"addresses", "issuers", "min_tls_version"})


@dataclass(frozen=True, slots=True)
class HostExpectation:
    """What is expected of one watched host (addresses, issuers...)."""

    pattern: str
    addresses: tuple[IPNetwork, ...] = ()
    issuers: tuple[str, ...] = ()
    min_tls_version: str | None = None
    user: bool = True  # from the user's file (False: shipped default only)

    def address_allowed(self, address: str) -> bool:
        """True when ``address`` falls in one of the expected ranges (or no range is set)."""
        if not self.addresses:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip.version == net.version and ip in net for net in self.addresses)

    def issuer_allowed(self, names: tuple[str, ...]) -> bool:
        """True when one of the issuer's CN / O ``names`` is expected (or no issuer is set)."""
        if not self.issuers:
            return True
        wanted = {i.casefold() for i in self.issuers}
        return any(n.casefold() in wanted for n in names if n)


@dataclass(frozen=True, slots=True)
class Expectations:
    """The expectations file: per-host expectations and the rules that use them."""

    hosts: tuple[HostExpectation, ...] = ()
    # name -> for_host(name): a busy capture asks about the same few names thousands of times
    _cache: dict[str, HostExpectation | None] = field(default_factory=dict, init=False,
                                                      repr=False, compare=False, hash=False)

    def for_host(self, name: str) -> HostExpectation | None:
        """What is expected of ``name``: user entries before shipped ones, and within each an
        exact pattern before ``*.suffix`` (the longest suffix first); each key from the first
        entry that sets it."""
        n = name.lower().rstrip(".")
        try:
            return self._cache[n]
        except KeyError:
            if len(self._cache) >= 65536:
                self._cache.clear()  # bounded, whatever names a hostile capture holds
            found = self._cache[n] = _for_host(self, n)
            return found


def _for_host(expectations: Expectations, n: str) -> HostExpectation | None:
    ranked: list[tuple[int, int, HostExpectation]] = []
    for host in expectations.hosts:
        if host.pattern == n:
            ranked.append((0 if host.user else 2, 0, host))
        elif host.pattern.startswith("*.") and n.endswith(host.pattern[1:]):
            ranked.append((1 if host.user else 3, -len(host.pattern), host))
    if not ranked:
        return None
    ranked.sort(key=lambda r: (r[0], r[1]))
    entries = [r[2] for r in ranked]
    return HostExpectation(
        pattern=entries[0].pattern,
        addresses=next((e.addresses for e in entries if e.addresses), ()),
        issuers=next((e.issuers for e in entries if e.issuers), ()),
        min_tls_version=next((e.min_tls_version for e in entries if e.min_tls_version), None),
        user=entries[0].user)


def _networks(where: str, pattern: str, value: Any) -> tuple[IPNetwork, ...]:
    if not isinstance(value, list):
        raise UsageError(f"{where}: hosts.{pattern}.addresses must be a list of CIDR strings")
    nets: list[IPNetwork] = []
    for item in value:
        if not isinstance(item, str):
            raise UsageError(f"{where}: hosts.{pattern}.addresses: {item!r} is not a string")
        try:
            nets.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise UsageError(f"{where}: hosts.{pattern}.addresses: {item!r} is not an "
                             "address or CIDR range") from None
    return tuple(nets)


def _issuers(where: str, pattern: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(i, str) and i.strip() for i in value):
        raise UsageError(f"{where}: hosts.{pattern}.issuers must be a list of non-empty strings")
    return tuple(i.strip() for i in value)


def _min_version(where: str, pattern: str, value: Any) -> str:
    text = str(value).strip().removeprefix("TLS").strip() if isinstance(value, str | float) else ""
    if text not in TLS_VERSIONS:
        raise UsageError(f"{where}: hosts.{pattern}.min_tls_version must be one of "
                         f"{', '.join(TLS_VERSIONS)} (a string), not {value!r}")
    return text


def parse_expectations(text: str, where: str) -> dict[str, dict[str, Any]]:
    """Parse TOML text into {pattern: {key: value}} with only the keys present in the file."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{where}: not valid TOML: {exc}") from None
    unknown = set(doc) - {"hosts"}
    if unknown:
        raise UsageError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))} "
                         "(expected [hosts.\"NAME\"] tables)")
    hosts = doc.get("hosts", {})
    if not isinstance(hosts, dict):
        raise UsageError(f"{where}: 'hosts' must be a table of [hosts.\"NAME\"] entries")
    out: dict[str, dict[str, Any]] = {}
    for raw_pattern, entry in hosts.items():
        try:
            pattern = normalize_hostname(raw_pattern)
        except UsageError as exc:
            raise UsageError(f"{where}: {exc}") from None
        if not isinstance(entry, dict):
            raise UsageError(f"{where}: hosts.{raw_pattern} must be a table")
        bad = set(entry) - _ALLOWED_KEYS
        if bad:
            raise UsageError(f"{where}: hosts.{raw_pattern}: unknown key(s) "
                             f"{', '.join(sorted(bad))} (allowed: {', '.join(sorted(_ALLOWED_KEYS))})")
        parsed: dict[str, Any] = {}
        if "addresses" in entry:
            parsed["addresses"] = _networks(where, pattern, entry["addresses"])
        if "issuers" in entry:
            parsed["issuers"] = _issuers(where, pattern, entry["issuers"])
        if "min_tls_version" in entry:
            parsed["min_tls_version"] = _min_version(where, pattern, entry["min_tls_version"])
        out.setdefault(pattern, {}).update(parsed)
    return out


def _default_text() -> str:
    # next to this module (package data); importlib.resources would cost more to import than
    # the rest of this module, on every run
    return (Path(__file__).parents[1] / "data" / "expect-default.toml").read_text("utf-8")


def load_expectations(user_path: Path | None = None, *, defaults: bool = True) -> Expectations:
    """The shipped defaults merged with the user's TOML (keys in the user file win)."""
    merged: dict[str, dict[str, Any]] = {}
    if defaults:
        merged = parse_expectations(_default_text(), "expect-default.toml (shipped)")
        for keys in merged.values():
            keys["user"] = False
    if user_path is not None:
        path = Path(user_path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"{path}: cannot read expectations file: "
                             f"{exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise UsageError(f"{path}: expectations file is not UTF-8 text") from None
        for pattern, keys in parse_expectations(text, str(path)).items():
            merged.setdefault(pattern, {}).update(keys, user=True)
    return Expectations(tuple(HostExpectation(pattern, **keys) for pattern, keys in sorted(merged.items())))
