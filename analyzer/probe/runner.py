"""``proxytrace probe``: the active checks for each host, run concurrently with short timeouts.

This is the I/O edge of the probe package: it reads the resolver files, opens sockets and runs
``go version -m``; the rules that judge what comes back live in dnsprobe/tlsprobe/httpprobe and
are the same rules the passive findings use.
"""

from __future__ import annotations

import os
import queue
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from ..base.model import Finding
from ..base.watchlist import DEFAULT_HOSTS, WatchList
from ..findings.expect import Expectations
from . import dnsprobe, httpprobe, system, tlsprobe
from .records import ProbeLayer, ProbeResult, result


@dataclass(frozen=True)
class ProbeOptions:
    hosts: tuple[str, ...] = DEFAULT_HOSTS
    expectations: Expectations = field(default_factory=Expectations)
    watch: WatchList = field(default_factory=WatchList.build)
    dns_servers: tuple[tuple[str, int], ...] = ()   # --dns, asked besides resolv.conf's
    system_resolvers: bool = True                   # ask resolv.conf's nameservers too
    timeout: float = 3.0
    max_redirects: int = 5
    max_addresses: int = 4                          # TLS checks per host
    paths: tuple[str, ...] = ("/",)
    https_port: int = 443
    http_port: int = 80
    layers: frozenset[str] = frozenset({"dns", "tls", "http", "system"})
    resolv_conf: Path = Path("/etc/resolv.conf")
    hosts_file: Path = Path("/etc/hosts")
    nsswitch: Path = Path("/etc/nsswitch.conf")
    env_file: Path = Path("/etc/environment")
    env: Mapping[str, str] | None = None            # default: this process's environment


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _unreachable(layer: ProbeLayer, what: str, error: str) -> Finding:
    return Finding("dns" if layer == "system" else layer, "probe-unreachable", f"{what}: {error}")


_NO_SUCH_NAME = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


def getaddrinfo(host: str, timeout: float) -> tuple[tuple[str, ...], str | None]:
    """The system resolver's addresses (C library, NSS); abandoned after ``timeout``.

    getaddrinfo cannot be interrupted, so it runs on a daemon thread that is left behind if the
    resolver hangs: the probe must not hang with it.
    """
    out: queue.Queue[tuple[tuple[str, ...], str | None]] = queue.Queue(1)

    def run() -> None:
        try:
            infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            out.put((tuple(dict.fromkeys(str(i[4][0]) for i in infos)), None))
        except socket.gaierror as exc:
            if exc.errno in _NO_SUCH_NAME:
                out.put(((), None))  # an answer: the name does not exist
            else:
                out.put(((), exc.strerror or str(exc)))
        except (OSError, UnicodeError) as exc:
            out.put(((), getattr(exc, "strerror", None) or str(exc)))

    threading.Thread(target=run, daemon=True, name=f"getaddrinfo-{host}").start()
    try:
        return out.get(timeout=timeout)
    except queue.Empty:
        return (), f"no answer within {timeout:g}s"


def go_binary_cgo(timeout: float) -> tuple[str | None, bool | None]:
    """(path of `go`, whether it was built with cgo) from ``go version -m``; (None, None) if absent."""
    go = shutil.which("go")
    if go is None:
        return None, None
    try:
        proc = subprocess.run([go, "version", "-m", go], capture_output=True, text=True,  # noqa: S603
                              timeout=max(timeout, 5.0), check=False)
    except (OSError, subprocess.TimeoutExpired):
        return go, None
    for line in proc.stdout.splitlines():
        words = line.split()
        if len(words) >= 2 and words[0] == "build" and words[1].startswith("CGO_ENABLED="):
            return go, words[1] == "CGO_ENABLED=1"
    return go, None


def system_results(opts: ProbeOptions, env: Mapping[str, str]) -> list[ProbeResult]:
    resolv_text = _read(opts.resolv_conf)
    resolv = system.parse_resolv_conf(resolv_text) if resolv_text is not None else None
    nss = _read(opts.nsswitch)
    go_path, go_cgo = go_binary_cgo(opts.timeout)
    rows: list[ProbeResult] = []
    servers = ", ".join(resolv.nameservers) if resolv else f"({opts.resolv_conf} unreadable)"
    go_choice = system.go_resolver_choice(bool(go_cgo), env, resolv, nss)
    who = f"go command ({go_path})" if go_path else "go command (not on PATH; release builds assumed)"
    rows.append(result(None, "system", "go-resolver", who,
                       f"{'pure-Go' if go_choice.resolver == 'go' else 'cgo (getaddrinfo)'} resolver: "
                       f"{go_choice.reason}; lookups read {opts.hosts_file} and ask {servers} "
                       f"directly (order {go_choice.order})" if go_choice.resolver == "go" else
                       f"cgo resolver: {go_choice.reason}; lookups go through the C library (NSS)",
                       data={"resolver": go_choice.resolver, "reason": go_choice.reason,
                             "order": go_choice.order, "cgo_enabled": go_cgo,
                             "nameservers": list(resolv.nameservers) if resolv else None},
                       status="info"))
    cgo_choice = system.go_resolver_choice(True, env, resolv, nss)
    rows.append(result(None, "system", "go-resolver", "cgo-enabled Go programs (gopls, tools)",
                       f"{cgo_choice.resolver} resolver: {cgo_choice.reason}",
                       data={"resolver": cgo_choice.resolver, "reason": cgo_choice.reason},
                       status="info"))
    env_file = _read(opts.env_file)
    files = {str(opts.env_file): system.parse_environment_file(env_file)} if env_file else {}
    proxies, no_proxy = system.proxy_settings(env, files)
    if not proxies:
        rows.append(result(None, "system", "proxy-env", "HTTPS_PROXY/HTTP_PROXY",
                           "no proxy variable set: the go command connects directly",
                           status="info"))
    for p in proxies:
        where = f"environment variable {p.variable}" + (
            f" (also set in {', '.join(p.also_in)})" if p.also_in else "")
        rows.append(result(None, "system", "proxy-env", p.variable,
                           f"{p.scheme}:// requests of the go command go through {p.value} "
                           f"(from {where}); NO_PROXY={no_proxy or '(unset)'}",
                           data={"scheme": p.scheme, "proxy": p.value, "variable": p.variable,
                                 "no_proxy": no_proxy, "also_in": list(p.also_in)},
                           status="info"))
    return rows


def dns_results(host: str, opts: ProbeOptions,
                resolvers: list[tuple[str, int]]) -> tuple[list[ProbeResult], list[str]]:
    """Rows for /etc/hosts, getaddrinfo and each resolver, and every address seen."""
    rows: list[ProbeResult] = []
    by_source: dict[str, tuple[str, ...]] = {}
    hosts_text = _read(opts.hosts_file)
    pinned = system.parse_hosts(hosts_text).get(host, ()) if hosts_text else ()
    if pinned:
        where = f"{opts.hosts_file} entry"
        rows.append(result(host, "dns", "hosts-file", str(opts.hosts_file),
                           f"{host} pinned to {', '.join(pinned)} (the go command reads this first)",
                           dnsprobe.judge_addresses(host, pinned, where, opts.expectations),
                           {"addresses": list(pinned)}))
    addrs, error = getaddrinfo(host, opts.timeout * 2)
    if error:
        rows.append(result(host, "dns", "getaddrinfo", "system resolver",
                           f"lookup failed: {error}",
                           [_unreachable("dns", f"getaddrinfo({host})", error)]))
    else:
        by_source["getaddrinfo"] = addrs
        rows.append(result(host, "dns", "getaddrinfo", "system resolver",
                           ", ".join(addrs) or "no such name",
                           dnsprobe.judge_addresses(host, addrs, "getaddrinfo", opts.expectations),
                           {"addresses": list(addrs)}))
    jobs = [(s, p, qt) for s, p in resolvers for qt in ("A", "AAAA")]
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(jobs)))) as pool:
        answers = list(pool.map(lambda j: dnsprobe.query(j[0], j[1], host, j[2], opts.timeout), jobs))
    for (server, port, qtype), answer in zip(jobs, answers, strict=True):
        target = server if port == 53 else f"{server}:{port}"
        if answer.error:
            rows.append(result(host, "dns", f"resolver {qtype}", target, answer.error,
                               [_unreachable("dns", f"resolver {target} ({qtype} {host})",
                                             answer.error)]))
            continue
        first = answer.responses[0]
        summary = ", ".join(answer.addresses) or f"no address (rcode {first.rcode})"
        rows.append(result(host, "dns", f"resolver {qtype}", target, summary,
                           dnsprobe.judge_answer(host, answer, opts.expectations),
                           {"addresses": list(answer.addresses), "rcode": first.rcode,
                            "responses": len(answer.responses)}))
        key = f"resolver {target}"
        by_source[key] = by_source.get(key, ()) + answer.addresses
    mismatch = dnsprobe.disagreements(host, by_source)
    if len(by_source) > 1:
        rows.append(result(host, "dns", "agreement", ", ".join(sorted(by_source)),
                           "sources disagree" if mismatch else "sources agree", mismatch))
    seen = list(dict.fromkeys(a for source in (pinned, *by_source.values()) for a in source))
    return rows, seen


def tls_result(host: str, address: str, opts: ProbeOptions, cafile: str | None) -> ProbeResult:
    port = opts.https_port
    server = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    shake = tlsprobe.handshake(address, port, host, opts.timeout)
    if shake.error:
        return result(host, "tls", "handshake", server, f"handshake failed: {shake.error}",
                      [_unreachable("tls", f"TLS to {server} for {host}", shake.error)])
    checks = [tlsprobe.verify(address, port, host, opts.timeout, "system", None)]
    if cafile:
        checks.append(tlsprobe.verify(address, port, host, opts.timeout, "certifi", cafile))
    findings, notes = tlsprobe.judge(host, server, shake, checks, opts.expectations)
    leaf = shake.chain[0] if shake.chain else None
    version = {0x0301: "TLS 1.0", 0x0302: "TLS 1.1", 0x0303: "TLS 1.2", 0x0304: "TLS 1.3"}.get(
        shake.version or 0, "unknown")
    verdicts = "; ".join(f"{v.store}: {v.message}" for v in checks)
    if leaf is not None:
        notes = [*_validity(leaf.not_before, leaf.not_after), *notes]
    detail = (f"{version}, issuer {leaf.issuer if leaf else '?'}; {verdicts}"
              + ("; " + "; ".join(notes) if notes else ""))
    return result(host, "tls", "handshake", server, detail, findings, {
        "version": version,
        "chain": [{"subject": c.subject, "issuer": c.issuer, "not_before": c.not_before,
                   "not_after": c.not_after, "sha256": c.sha256, "sans": list(c.sans)}
                  for c in shake.chain],
        "verify": {v.store: {"ok": v.ok, "message": v.message, "anchor": v.anchor} for v in checks},
        "notes": notes,
    })


def _validity(not_before: float | None, not_after: float | None) -> list[str]:
    def day(ts: float | None) -> str:
        return time.strftime("%Y-%m-%d", time.gmtime(ts)) if ts is not None else "?"

    now = time.time()
    text = f"valid {day(not_before)} to {day(not_after)}"
    if not_after is not None and not_after < now:
        text += " (EXPIRED)"
    elif not_before is not None and not_before > now:
        text += " (NOT YET VALID)"
    return [text]


def http_results(host: str, opts: ProbeOptions) -> list[ProbeResult]:
    rows = []
    for path in opts.paths:
        p = path if path.startswith("/") else "/" + path
        for scheme, port, default in (("http", opts.http_port, 80), ("https", opts.https_port, 443)):
            authority = host if port == default else f"{host}:{port}"
            url = f"{scheme}://{authority}{p}"
            hops = httpprobe.follow(url, opts.timeout, opts.max_redirects,
                                    lambda name: getaddrinfo(name, opts.timeout * 2))
            chain = " -> ".join(f"{h.status or h.error}" + (f" {h.location}" if h.location else "")
                                for h in hops)
            findings = httpprobe.judge(hops, opts.watch)
            if hops[-1].error and len(hops) == 1:
                findings.append(_unreachable("http", f"GET {url}", hops[-1].error))
            rows.append(result(host, "http", "redirects", url, chain, findings,
                               {"hops": [{"url": h.url, "status": h.status, "location": h.location,
                                          "error": h.error} for h in hops]}))
    return rows


def probe_host(host: str, opts: ProbeOptions, resolvers: list[tuple[str, int]],
               cafile: str | None) -> list[ProbeResult]:
    rows: list[ProbeResult] = []
    addresses: list[str] = []
    if "dns" in opts.layers or "tls" in opts.layers:
        dns_rows, addresses = dns_results(host, opts, resolvers)
        if "dns" in opts.layers:
            rows.extend(dns_rows)
    if "tls" in opts.layers:
        for address in addresses[: opts.max_addresses]:
            rows.append(tls_result(host, address, opts, cafile))
    if "http" in opts.layers:
        rows.extend(http_results(host, opts))
    return rows


def _certifi_file() -> str | None:
    try:
        import certifi
    except ImportError:
        return None
    return str(certifi.where())


def run_probe(opts: ProbeOptions) -> list[ProbeResult]:
    """Every check for every host; rows grouped by host in the order the hosts were given."""
    env = dict(os.environ) if opts.env is None else dict(opts.env)
    resolvers: list[tuple[str, int]] = []
    if opts.system_resolvers:
        text = _read(opts.resolv_conf)
        if text is not None:
            resolvers = [(s, 53) for s in system.parse_resolv_conf(text).nameservers]
    resolvers = list(dict.fromkeys([*resolvers, *opts.dns_servers]))
    cafile = _certifi_file()
    rows = system_results(opts, env) if "system" in opts.layers else []
    with ThreadPoolExecutor(max_workers=max(1, min(8, len(opts.hosts)))) as pool:
        per_host = list(pool.map(lambda h: probe_host(h, opts, resolvers, cafile), opts.hosts))
    for host_rows in per_host:
        rows.extend(host_rows)
    return rows
