"""GOPROXY and GOSUMDB values, parsed the way cmd/go parses them (modfetch/proxy.go, sumdb.go)."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from ..base.model import Env, ProcessInfo


@dataclass(frozen=True)
class ProxyEntry:
    url: str                 # a URL, or "direct" / "off"
    fall_back_on_error: bool  # "|" after it: the next entry is tried after any error, not only 404/410

    @property
    def host(self) -> str | None:
        if self.url in ("direct", "off"):
            return None
        parts = urlsplit(self.url)
        return parts.hostname if parts.scheme in ("http", "https") else None


@dataclass(frozen=True)
class ProxyList:
    entries: tuple[ProxyEntry, ...]
    ignored: tuple[str, ...]  # written after "direct" or "off": never used

    @property
    def proxies(self) -> tuple[ProxyEntry, ...]:
        return tuple(e for e in self.entries if e.url not in ("direct", "off"))

    @property
    def hosts(self) -> tuple[str, ...]:
        return tuple(h for h in (e.host for e in self.entries) if h)

    @property
    def terminal(self) -> str | None:
        """"direct" or "off" when the list ends with one of them."""
        last = self.entries[-1].url if self.entries else None
        return last if last in ("direct", "off") else None

    @property
    def has_direct(self) -> bool:
        return self.terminal == "direct"


def parse_goproxy(value: str) -> ProxyList:
    entries: list[ProxyEntry] = []
    ignored: list[str] = []
    rest = value
    stopped = False
    while rest:
        m = re.search(r"[,|]", rest)
        if m:
            raw, sep, rest = rest[:m.start()], rest[m.start()], rest[m.end():]
        else:
            raw, sep, rest = rest, "", ""
        url = raw.strip()
        if not url:
            continue
        if stopped:
            ignored.append(url)
            continue
        if url in ("off", "direct"):
            entries.append(ProxyEntry(url, False))
            stopped = True
            continue
        if any(c in url for c in ".:/") and ":/" not in url and not url.startswith("/"):
            url = "https://" + url
        entries.append(ProxyEntry(url, sep == "|"))
    return ProxyList(tuple(entries), tuple(ignored))


@dataclass(frozen=True)
class SumDb:
    name: str            # the database name (its key's name), e.g. sum.golang.org
    url: str | None      # explicit URL: bypasses the proxy and the name's own host
    off: bool = False

    @property
    def direct_host(self) -> str | None:
        if self.off:
            return None
        if self.url:
            return urlsplit(self.url).hostname
        return self.name.split("/", 1)[0]


def parse_gosumdb(value: str) -> SumDb:
    v = value.strip()
    if v == "off":
        return SumDb("", None, off=True)
    if v == "sum.golang.google.cn":  # built-in alias (sumdb.go)
        v = "sum.golang.org https://sum.golang.google.cn"
    fields = v.split()
    if not fields:
        return SumDb("", None)
    name = fields[0].split("+", 1)[0]  # a full verifier key starts with its name
    return SumDb(name, fields[1] if len(fields) > 1 else None)


def match_prefix_patterns(patterns: str, path: str) -> bool:
    """module.MatchPrefixPatterns: comma-separated globs, each matched against as many leading
    path elements as it has (so ``example.com/*`` matches ``example.com/a/b``)."""
    import fnmatch

    elems = path.split("/")
    for pat in (p.strip().rstrip("/") for p in patterns.split(",")):
        if not pat:
            continue
        n = pat.count("/") + 1
        if len(elems) >= n and fnmatch.fnmatchcase("/".join(elems[:n]), pat):
            return True
    return False


_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^/@\s,|]*)@")


def redact(value: str) -> str:
    """Hide credentials in URLs (``https://user:secret@host`` -> ``https://xxxxx@host``)."""
    if "@" not in value:
        return value  # nothing to hide (most values): no regex scan of every variable
    return _USERINFO.sub(lambda m: m.group("scheme") + "xxxxx@", value)


def redact_process(p: ProcessInfo) -> ProcessInfo:
    """``p`` with credentials hidden in its command line, its ancestors' and every recorded
    environment value (``HTTPS_PROXY=http://user:secret@proxy:3128``)."""

    def env(e: Env | None) -> Env | None:
        return None if e is None else tuple((k, redact(v)) for k, v in e)

    def text(t: str | None) -> str | None:
        return redact(t) if t else t

    return replace(p, cmdline=text(p.cmdline), parent_cmdline=text(p.parent_cmdline),
                   env=env(p.env),
                   ancestors=tuple(replace(a, cmdline=text(a.cmdline), env=env(a.env))
                                   for a in p.ancestors))
