"""``proxytrace probe [HOST...]``: active DNS / TLS / HTTP hijack checks from this machine."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click
from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..base import exitcodes
from ..base.errors import UsageError
from ..base.watchlist import DEFAULT_HOSTS, WatchList, normalize_hostname
from ..findings.expect import load_expectations
from ..probe import ProbeOptions, run_probe
from ..probe.dnsprobe import parse_server
from ..report.output import emit_records, output_options

LAYERS = ("dns", "tls", "http", "system")


def _clean(value: object) -> str:
    text = "" if value is None else str(value)
    return text if text.isprintable() else "".join(
        ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def render_probe_table(records: Sequence[dict[str, Any]], width: int = 120) -> str:
    console = Console(file=io.StringIO(), width=width, no_color=True, color_system=None,
                      markup=False, emoji=False, highlight=False)
    table = Table(box=box.SIMPLE, show_lines=False, expand=False)
    for column in ("host", "layer", "check", "target", "result"):
        table.add_column(column, overflow="fold")
    hijacks = 0
    for r in records:
        lines = [_clean(r["detail"])]
        for f in r["findings"]:
            lines.append(f"! {f['kind']}: {_clean(f['detail'])}")
            hijacks += f["kind"] != "probe-unreachable"
        table.add_row(Text(_clean(r["host"] or "(machine)")), Text(r["layer"]),
                      Text(_clean(r["check"])), Text(_clean(r["target"])), Text("\n".join(lines)))
    console.print(table)
    console.print(Text(f"{hijacks} hijack finding(s)" if hijacks else "no hijack found"))
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


@click.command("probe")
@click.argument("hosts", nargs=-1, metavar="[HOST...]")
@click.option("--dns", "dns_servers", multiple=True, metavar="SERVER[:PORT]",
              help="Also ask this resolver directly (repeatable).")
@click.option("--no-system-resolvers", is_flag=True,
              help="Do not ask the nameservers of /etc/resolv.conf directly.")
@click.option("--expect", "expect_path", type=click.Path(exists=True, dir_okay=False,
                                                          path_type=Path),
              help="Expectations TOML merged over the shipped defaults.")
@click.option("--watch", "watch", multiple=True, metavar="NAME",
              help="Also treat NAME as watched (redirects to it are not off-site).")
@click.option("--timeout", type=click.FloatRange(0.1, 60), default=3.0, show_default=True,
              help="Seconds to wait for each answer, handshake or response.")
@click.option("--max-redirects", type=click.IntRange(0, 20), default=5, show_default=True)
@click.option("--path", "paths", multiple=True, metavar="PATH",
              help="URL path to request on each host (repeatable; default /).")
@click.option("--https-port", type=click.IntRange(1, 65535), default=443, show_default=True)
@click.option("--http-port", type=click.IntRange(1, 65535), default=80, show_default=True)
@click.option("--only", "only", multiple=True, type=click.Choice(LAYERS),
              help="Run only these checks (repeatable).")
@click.option("--no-fail", is_flag=True, help="Exit 0 even when a hijack is found.")
@output_options()
def command(hosts: tuple[str, ...], dns_servers: tuple[str, ...], no_system_resolvers: bool,
            expect_path: Path | None, watch: tuple[str, ...], timeout: float, max_redirects: int,
            paths: tuple[str, ...], https_port: int, http_port: int, only: tuple[str, ...],
            no_fail: bool, fmt: str, output: str | None) -> int:
    """Check DNS, TLS and HTTP toward HOSTs (default: the Go hosts) from this machine.

    \b
    DNS: /etc/hosts, getaddrinfo, each resolv.conf nameserver and each --dns server asked
    directly; disagreements, injected duplicates and bogon answers are flagged, and the
    resolver the go command would use (pure Go or cgo) is explained.
    TLS: a handshake with each answered address: chain, issuer, validity, verification
    against the system store and certifi; an interception CA is named as such.
    HTTP: http:// and https:// requests with the redirect chain followed by hand.
    Proxy variables the go command would honour are listed (credentials redacted).
    \b
    Exit status: 0 nothing found (or --no-fail); 1 a hijack was found; 2 usage error.
    An unreachable resolver or server is reported (probe-unreachable) but is not a hijack.
    """
    names = tuple(dict.fromkeys(normalize_hostname(h) for h in hosts)) or DEFAULT_HOSTS
    if any(n.startswith("*.") for n in names):
        raise UsageError("probe needs host names, not *.patterns")
    servers = tuple(parse_server(s) for s in dns_servers)
    opts = ProbeOptions(
        hosts=names, expectations=load_expectations(expect_path),
        watch=WatchList.build([*DEFAULT_HOSTS, *names, *watch]),
        dns_servers=servers, system_resolvers=not no_system_resolvers, timeout=timeout,
        max_redirects=max_redirects, paths=paths or ("/",), https_port=https_port,
        http_port=http_port, layers=frozenset(only or LAYERS))
    rows = run_probe(opts)
    emit_records([r.to_dict() for r in rows], fmt, output, table=render_probe_table)
    hijack = any(r.hijack for r in rows)
    return exitcodes.GATE_FAILED if hijack and not no_fail else exitcodes.OK
