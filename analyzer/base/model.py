"""Records passed between pipeline stages.

Every stage of the pipeline (source -> packets -> flows -> protocol events -> contacts ->
attribution -> findings -> report) hands the next one frozen dataclasses from this module, so
each stage can be tested alone and a user can import them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

Layer = Literal["dns", "tls", "http", "socks"]
Transport = Literal["udp", "tcp"]
AttributionSource = Literal["ebpf", "strace", "procfs", "pcapng-comment", "inferred"]


# The environment variables recorded per process, as they were at its exec: what decides which
# hosts Go tooling contacts (GO*, the proxy variables net/http reads, the CA file), plus HOME and
# XDG_CONFIG_HOME, which locate the GOENV file and the telemetry mode file.
PROXY_ENV_NAMES = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY")
RECORDED_ENV_NAMES = frozenset({*PROXY_ENV_NAMES, *(n.lower() for n in PROXY_ENV_NAMES),
                                "SSL_CERT_FILE", "SSL_CERT_DIR", "HOME", "XDG_CONFIG_HOME"})

Env = tuple[tuple[str, str], ...]  # (name, value) pairs, sorted by name
MAX_ANCESTORS = 8  # levels of the parent chain a tier records (init ends it sooner)


def is_recorded_env(name: str) -> bool:
    """True for the variables a tier keeps (``GO*`` and RECORDED_ENV_NAMES)."""
    return name.startswith("GO") or name in RECORDED_ENV_NAMES


def recorded_env(pairs: Iterable[tuple[str, str]]) -> Env:
    """The recorded subset of an environment, sorted (the last value of a repeated name wins,
    as getenv's first-match would not: environments with duplicates are rare and malformed)."""
    out: dict[str, str] = {}
    for name, value in pairs:
        if is_recorded_env(name):
            out[name] = value
    return tuple(sorted(out.items()))


def env_from_block(block: bytes | str) -> Env:
    """The recorded subset of a NUL-separated environment block (/proc/PID/environ)."""
    text = block.decode("utf-8", errors="replace") if isinstance(block, bytes) else block
    return recorded_env(tuple(e.split("=", 1)) for e in text.split("\0") if "=" in e)  # type: ignore[misc]


@dataclass(frozen=True, slots=True)
class GoFiles:
    """The Go configuration files a process's go reads, as they were on the capturing machine:
    ``goroot`` the GOROOT found for its go binary (None: none found), ``files`` each file's
    path and its Go variable lines (``GOPROXY=...``), None for a file that did not exist."""

    goroot: str | None
    files: tuple[tuple[str, str | None], ...] = ()

    def text_of(self, path: str) -> tuple[bool, str | None]:
        """(recorded, content) for ``path``: content None when it was recorded as missing."""
        for p, text in self.files:
            if p == path:
                return True, text
        return False, None


@dataclass(frozen=True, slots=True)
class Ancestor:
    """One process up the chain of a contact's process, as it was when the contact was made."""

    pid: int
    comm: str | None
    cmdline: str | None
    exe: str | None = None
    env: Env | None = None  # None: the tier did not record it

    def to_dict(self) -> dict[str, Any]:
        return {"pid": self.pid, "comm": self.comm, "cmdline": self.cmdline, "exe": self.exe,
                "env": dict(self.env) if self.env is not None else None}


@dataclass(frozen=True, slots=True)
class ProcessInfo:
    """The process behind a contact, and the tier that found it.

    ``ancestors`` is the parent chain at connect time, nearest first (up to init or
    MAX_ANCESTORS); ``env`` the recorded variables of the process at its exec (None when the
    tier did not see them); ``exe`` the exec'd file; ``go_files`` the Go configuration files
    its go read, when the capture carries them.
    """

    pid: int
    comm: str | None
    cmdline: str | None
    ppid: int | None
    source: AttributionSource
    uid: int | None = None
    parent_comm: str | None = None
    parent_cmdline: str | None = None
    ancestors: tuple[Ancestor, ...] = ()
    env: Env | None = None
    exe: str | None = None
    go_files: GoFiles | None = None  # recorded with the capture (None: read them here, if at all)

    def to_dict(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "comm": self.comm,
            "cmdline": self.cmdline,
            "ppid": self.ppid,
            "source": self.source,
            "uid": self.uid,
            "parent_comm": self.parent_comm,
            "parent_cmdline": self.parent_cmdline,
            "exe": self.exe,
            "env": dict(self.env) if self.env is not None else None,
            "ancestors": [a.to_dict() for a in self.ancestors],
        }

    def chain_text(self, sep: str = " ← ", limit: int = MAX_ANCESTORS) -> str:
        """``go ← gopls ← python``: the process and up to ``limit`` ancestors by name."""
        names = [self.comm or "?"] + [a.comm or "?" for a in self.ancestors[:limit]]
        if not self.ancestors and self.parent_comm:
            names.append(self.parent_comm)
        if len(self.ancestors) > limit:
            names.append("…")
        return sep.join(names)



@dataclass(frozen=True, slots=True)
class Finding:
    """Something that looks wrong at one layer, with its evidence."""

    layer: Layer
    kind: str
    detail: str
    frames: tuple[int, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "kind": self.kind, "detail": self.detail,
                "frames": list(self.frames)}


@dataclass(frozen=True, slots=True)
class DnsInfo:
    """What a DNS contact shows: the question, the first response's answers and code, the resolver."""

    qname: str
    qtype: str
    answers: tuple[str, ...]
    rcode: str | None
    resolver: str
    cnames: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TlsInfo:
    """What a TLS contact shows: the ClientHello's name, ALPN and fingerprints, the server's answer."""

    sni: str | None
    alpn: tuple[str, ...]
    version: str | None
    ja4: str | None
    ja3: str | None
    cert_issuer: str | None = None
    cert_subject: str | None = None
    cert_sans: tuple[str, ...] = ()
    offered_version: str | None = None
    name_from_dns: bool = False


@dataclass(frozen=True, slots=True)
class HttpInfo:
    """What an HTTP contact shows: the request line, its User-Agent, and the response status."""

    method: str | None
    path: str | None
    user_agent: str | None
    status: int | None
    location: str | None
    url: str | None = None


# How a contact reached its proxy: an HTTP CONNECT tunnel, a request in absolute form to an
# HTTP forward proxy, or a SOCKS tunnel (SOCKS4 and 4a are "socks4").
ProxyKind = Literal["http-connect", "http-forward", "socks4", "socks5"]


@dataclass(frozen=True, slots=True)
class ProxyHop:
    """The proxy a contact went through: its address, port and kind."""

    address: str
    port: int
    kind: ProxyKind = "http-connect"


@dataclass(frozen=True, slots=True)
class Contact:
    """One piece of evidence that this machine talked to a watched host (the output contract)."""

    ts: float
    layer: Layer
    host: str
    transport: Transport
    src: str
    sport: int
    dst: str
    dport: int
    flow_id: str
    frames: tuple[int, ...] = ()
    capture: str | None = None
    process: ProcessInfo | None = None
    client: str | None = None
    client_evidence: str | None = None
    dns: DnsInfo | None = None
    tls: TlsInfo | None = None
    http: HttpInfo | None = None
    via_proxy: ProxyHop | None = None
    operation: str | None = None
    findings: tuple[Finding, ...] = ()
    notes: tuple[str, ...] = ()
    cause: str | None = None
    url: str | None = None
    # every Go operation seen on the connection, in order (decrypted TLS carries several)
    operations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ../DESIGN.md's output contract (field names are stable)."""
        return {
            "ts": self.ts,
            "layer": self.layer,
            "host": self.host,
            "transport": self.transport,
            "src": self.src,
            "sport": self.sport,
            "dst": self.dst,
            "dport": self.dport,
            "process": self.process.to_dict() if self.process else None,
            "client": self.client,
            "client_evidence": self.client_evidence,
            "dns": _plain(self.dns),
            "tls": _plain(self.tls),
            "http": _plain(self.http),
            "via_proxy": _plain(self.via_proxy),
            "operation": self.operation,
            "operations": list(self.operations),
            "url": self.url,
            "findings": [f.to_dict() for f in self.findings],
            "notes": list(self.notes),
            "cause": self.cause,
            "flow_id": self.flow_id,
            "frames": list(self.frames),
            "capture": self.capture,
        }


_CONTACT_FIELDS = tuple(Contact.__dataclass_fields__)
_CONTACT_FIELDS_SET = frozenset(_CONTACT_FIELDS)
_new, _set = object.__new__, object.__setattr__


def replace_contact(contact: Contact, **changes: Any) -> Contact:
    """``dataclasses.replace(contact, **changes)`` at a third of the cost (it builds a keyword
    dict of every field and runs the frozen ``__init__``): the findings stage copies thousands
    of contacts on a big capture. Contact has no ``__post_init__`` to skip."""
    unknown = changes.keys() - _CONTACT_FIELDS_SET
    if unknown:
        raise TypeError(f"Contact has no field {sorted(unknown)[0]!r}")
    new = _new(Contact)
    for name in _CONTACT_FIELDS:
        _set(new, name, changes[name] if name in changes else getattr(contact, name))
    return new


def field_copier(cls: type, changed: tuple[str, ...]) -> Any:
    """A function (obj, *values of ``changed``) -> a copy of the frozen dataclass ``obj`` of
    type ``cls`` with those fields changed, one statement per field: a third of
    ``dataclasses.replace``'s time (no keyword dict, no frozen ``__init__``), for copies made
    once per contact or per DNS response. ``cls`` must have no ``__post_init__``."""
    names = tuple(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    unknown = set(changed) - set(names)
    if unknown:
        raise TypeError(f"{cls.__name__} has no field {sorted(unknown)[0]!r}")
    lines = [f"def copy(c, {', '.join(changed)}):", "    new = _new(cls)"]
    for name in names:
        lines.append(f"    _set(new, {name!r}, {name if name in changed else 'c.' + name})")
    lines.append("    return new")
    scope: dict[str, Any] = {"_new": _new, "_set": _set, "cls": cls}
    exec("\n".join(lines), scope)  # noqa: S102 -- the source is built from the field names only
    return scope["copy"]


# contact_with_findings(contact, findings, notes, frames)
contact_with_findings = field_copier(Contact, ("findings", "notes", "frames"))


def _plain(obj: Any) -> dict[str, Any] | None:
    # The per-layer records hold only scalars and tuples of scalars, so one level is enough;
    # dataclasses.asdict's recursive deep copy was a tenth of a big report's run time.
    if obj is None:
        return None
    out = {}
    for name in obj.__dataclass_fields__:
        value = getattr(obj, name)
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


@dataclass(frozen=True, slots=True)
class CaptureStats:
    """What a source read, and what it could not."""

    capture: str
    packets: int = 0
    bytes: int = 0
    link_type: str | None = None
    warnings: tuple[str, ...] = ()
    parse_errors: dict[str, int] = field(default_factory=dict)
    damaged: bool = False            # the file ended in a truncated or corrupt record
    kernel_drops: int | None = None  # from pcapng interface statistics, when recorded
