"""``proxytrace filters ...``: capture filters, display filters and a Wireshark profile.

The filters are built by ``analyzer.filters``; this module gathers the inputs that need I/O
(``go env GOPROXY``, resolving names now, reading a capture for DNS answers) and prints.
"""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..base.errors import UsageError
from ..base.files import make_private_dir
from ..base.watchlist import DEFAULT_HOSTS, WatchList, read_watch_file
from ..causes.gocmd import run_go
from ..events.tshark.binary import validate_display_filters
from ..filters.bpf import capture_filter
from ..filters.display import DisplayFilter, standard_filters
from ..filters.export import default_spec, export
from ..filters.inputs import (
    DEFAULT_GOPROXY,
    DEFAULT_PORTS,
    ProxyEntry,
    parse_forward_proxy,
    parse_goproxy,
    proxy_addresses,
    proxy_hostnames,
    proxy_ports,
    socks_proxy_ports,
    validate_addresses,
    validate_port,
    validate_ports,
)
from ..filters.profile import DEFAULT_PROFILE, ProfileSpec, render_profile, write_profile, write_zip
from ..report.output import emit_records, emit_text, output_options


def _warn(message: str) -> None:
    click.echo(f"proxytrace: {message}", err=True)


def go_env_goproxy() -> str | None:
    """``go env GOPROXY`` from the installed go command, or None when there is none."""
    go = shutil.which("go")
    if go is None:
        return None
    # An explicit GOTOOLCHAIN=goX.Y would make even `go env` download that toolchain (a contact
    # with proxy.golang.org); reading a setting must not.
    res = run_go(go, ["env", "GOPROXY"], dict(os.environ, GOTOOLCHAIN="local"))
    if res.returncode != 0:
        _warn(f"{go} env GOPROXY failed; using the default GOPROXY")
        return None
    return res.stdout.strip()


def resolve_now(names: Sequence[str]) -> tuple[str, ...]:
    """Addresses the names resolve to now, through the system resolver."""
    found: set[str] = set()
    for name in names:
        try:
            infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError) as exc:
            _warn(f"cannot resolve {name}: {exc}")
            continue
        for info in infos:
            addr = str(info[4][0]).split("%", 1)[0]
            found.add(str(ipaddress.ip_address(addr)))
    return validate_addresses(found)


def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--watch, --watch-file, --no-default-hosts, --goproxy, --no-go-env."""
    fn = click.option("--no-go-env", is_flag=True,
                      help="Do not read GOPROXY from `go env` nor HTTPS_PROXY/HTTP_PROXY from the "
                           "environment; use --goproxy/--proxy or the defaults.")(fn)
    fn = click.option("--proxy", "forward_proxies", multiple=True, metavar="URL",
                      help="A forward proxy the go command uses (an HTTPS_PROXY value, socks5:// "
                           "too; default: HTTPS_PROXY, HTTP_PROXY and ALL_PROXY from the "
                           "environment); repeatable.")(fn)
    fn = click.option("--goproxy", metavar="VALUE",
                      help="A GOPROXY value whose proxies' hosts and ports are added "
                           "(default: `go env GOPROXY` when a go command is installed).")(fn)
    fn = click.option("--no-default-hosts", is_flag=True,
                      help="Watch only the names given with --watch/--watch-file.")(fn)
    fn = click.option("--watch-file", type=click.Path(dir_okay=False, path_type=Path),
                      help="Read watched names from FILE (one per line, # comments).")(fn)
    fn = click.option("--watch", "watch", multiple=True, metavar="NAME",
                      help="Also watch NAME (repeatable); '*.example.com' matches subdomains.")(fn)
    return fn


# ALL_PROXY is curl's (Go's net/http does not read it); a SOCKS proxy is often set there.
_PROXY_ENV = ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy")


def _proxies(goproxy: str | None, no_go_env: bool,
             forward_proxies: Sequence[str] = ()) -> tuple[ProxyEntry, ...]:
    """GOPROXY's proxies, then the forward proxies (given, or from the environment).

    Only GOPROXY hosts are watched names (see ``_watch``); every entry brings its port, and its
    address when it is given as one.
    """
    value = goproxy
    if value is None and not no_go_env:
        value = go_env_goproxy()
    entries = list(parse_goproxy(value if value is not None else DEFAULT_GOPROXY))
    forwards = list(forward_proxies)
    if not forwards and not no_go_env:
        forwards = [os.environ[k] for k in _PROXY_ENV if os.environ.get(k)]
    entries += [_forward(parse_forward_proxy(v)) for v in forwards]
    return tuple(entries)


def _plaintext_ports(proxies: Sequence[ProxyEntry]) -> list[int]:
    """Port 80 and the ports of http:// GOPROXY entries: plaintext HTTP, kept whole."""
    return sorted({80, *(p.port for p in proxies if p.scheme == "http")})


def _forward(entry: ProxyEntry) -> ProxyEntry:
    # Marked so that _watch does not add the forward proxy's name to the watched hosts.
    return ProxyEntry("forward+" + entry.scheme, entry.host, entry.port)


def _watch(watch: Sequence[str], watch_file: Path | None, no_default_hosts: bool,
           proxies: Sequence[ProxyEntry]) -> WatchList:
    names = [] if no_default_hosts else list(DEFAULT_HOSTS)
    names += list(watch)
    if watch_file is not None:
        names += read_watch_file(watch_file)
    names += proxy_hostnames([p for p in proxies if not p.scheme.startswith("forward+")])
    if not names:
        raise UsageError("no hosts to watch: give --watch NAME or drop --no-default-hosts")
    return WatchList.build(names)


def _check(filters: Sequence[DisplayFilter], no_check: bool) -> None:
    if not no_check:
        validate_display_filters({f.name: f.expression for f in filters})


@click.group("filters")
def command() -> None:
    """Generated filters: a BPF capture filter, Wireshark display filters, a Wireshark profile."""


@command.command("bpf")
@_common
@click.option("--port", "ports", multiple=True, metavar="PORT",
              help="Watch this TCP port too (repeatable; default 80 and 443, plus the GOPROXY "
                   "proxies' ports).")
@click.option("--address", "addresses", multiple=True, metavar="ADDR",
              help="Keep TCP traffic with this address or network on any port (repeatable).")
@click.option("--resolve", is_flag=True,
              help="Add the addresses the watched names (exact ones) resolve to now.")
@click.option("--keep-server-data", is_flag=True,
              help="Keep all server->client packets on the watched ports (TLS 1.2 certificate "
                   "chains, or sessions to decrypt with a key log); larger files.")
@click.option("--vlan", is_flag=True,
              help="Also match behind one or two 802.1Q tags (files from trunk ports; Ethernet "
                   "only).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write the expression to FILE (mode 0600) instead of stdout.")
def bpf_command(watch: tuple[str, ...], watch_file: Path | None, no_default_hosts: bool,
                goproxy: str | None, no_go_env: bool, forward_proxies: tuple[str, ...],
                ports: tuple[str, ...],
                addresses: tuple[str, ...], resolve: bool, keep_server_data: bool,
                vlan: bool, output: str | None) -> None:
    """Print a capture filter (tcpdump -f/-F, dumpcap, Wireshark) keeping everything the
    analyzer reads and dropping bulk download payload. The expression is the last line; it has
    been compiled by libpcap for Ethernet and Linux SLL2."""
    proxies = _proxies(goproxy, no_go_env, forward_proxies)
    wl = _watch(watch, watch_file, no_default_hosts, proxies)
    port_list = validate_ports([*(validate_port(p) for p in ports), *DEFAULT_PORTS,
                                *proxy_ports(proxies)])
    addr_list = list(validate_addresses([*addresses, *proxy_addresses(proxies)]))
    if resolve:
        addr_list += resolve_now(sorted(wl.exact))
    expression = capture_filter(wl, port_list, validate_addresses(addr_list), keep_server_data,
                                vlan, _plaintext_ports(proxies), socks_proxy_ports(proxies))
    emit_text(expression + "\n", output)


@command.command("display")
@_common
@click.option("--address", "addresses", multiple=True, metavar="ADDR",
              help="An address DNS gave for a watched name: adds a filter for ClientHellos "
                   "without SNI sent there (repeatable).")
@click.option("--capture", "captures", multiple=True, metavar="FILE",
              type=click.Path(dir_okay=False),
              help="Take those addresses from the DNS answers for watched names in FILE.")
@click.option("--pid", type=int, default=None, help="Process filter for this pid.")
@click.option("--comm", default=None, metavar="NAME", help="Process filter for this command name.")
@click.option("--no-check", is_flag=True, help="Do not compile the filters with tshark first.")
@output_options()
def display_command(watch: tuple[str, ...], watch_file: Path | None, no_default_hosts: bool,
                    goproxy: str | None, no_go_env: bool, forward_proxies: tuple[str, ...],
                    addresses: tuple[str, ...],
                    captures: tuple[str, ...], pid: int | None, comm: str | None,
                    no_check: bool, fmt: str, output: str | None) -> None:
    """List Wireshark display filters per layer (dns, tls, http, socks, process, findings) and
    combined, each compiled by tshark before it is printed."""
    proxies = _proxies(goproxy, no_go_env, forward_proxies)
    wl = _watch(watch, watch_file, no_default_hosts, proxies)
    addr_list = list(validate_addresses(addresses))
    if captures:
        addr_list += dns_answer_addresses(captures, wl)
    filters = standard_filters(wl, validate_addresses(addr_list), pid=pid, comm=comm)
    _check(filters, no_check)
    emit_records([f.to_dict() for f in filters], fmt, output, table=_display_table)


def dns_answer_addresses(captures: Sequence[str], watch: WatchList) -> list[str]:
    """Addresses the captures' DNS answers gave for watched names (for TLS without SNI)."""
    from ..pipeline import AnalyzeOptions, analyze_files

    report = analyze_files(list(captures), AnalyzeOptions(watch=watch))
    out: set[str] = set()
    for contact in report.contacts:
        if contact.dns is None:
            continue
        for value in contact.dns.answers:
            try:
                out.add(str(ipaddress.ip_address(value)))
            except ValueError:
                continue  # a CNAME or other non-address answer
    return sorted(out)


def _display_table(records: Sequence[dict[str, Any]]) -> str:
    lines = []
    for r in records:
        lines.append(f"{r['name']}  ({r['description']})")
        lines.append(f"    {r['filter']}")
    return "\n".join(lines) + "\n"


def wireshark_profiles_dir() -> Path:
    """Where Wireshark looks for personal profiles (WIRESHARK_CONFIG_DIR wins, as in Wireshark)."""
    base = os.environ.get("WIRESHARK_CONFIG_DIR")
    if base:
        return Path(base) / "profiles"
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(xdg) / "wireshark" / "profiles"


@command.command("profile")
@click.argument("name", default=DEFAULT_PROFILE)
@_common
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Directory to write into (default: Wireshark's personal profiles folder; "
                   "with --zip, the current directory).")
@click.option("--zip", "as_zip", is_flag=True,
              help="Write NAME.zip for Wireshark's Configuration Profiles > Import instead.")
@click.option("--keylog", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="TLS key log (SSLKEYLOGFILE) the profile uses to decrypt.")
@click.option("--port", "ports", multiple=True, metavar="PORT",
              help="Extra TCP port for the saved capture filter (repeatable).")
@click.option("--address", "addresses", multiple=True, metavar="ADDR",
              help="Addresses for the TLS-without-SNI filter (repeatable).")
@click.option("--no-check", is_flag=True, help="Do not compile the filters with tshark first.")
def profile_command(name: str, watch: tuple[str, ...], watch_file: Path | None,
                    no_default_hosts: bool, goproxy: str | None, no_go_env: bool,
                    forward_proxies: tuple[str, ...], out_dir: Path | None, as_zip: bool,
                    keylog: Path | None,
                    ports: tuple[str, ...], addresses: tuple[str, ...], no_check: bool) -> None:
    """Write a Wireshark configuration profile NAME (default "proxytrace"): saved display
    filters, toolbar buttons, colouring rules, custom columns, macros and the capture filter."""
    proxies = _proxies(goproxy, no_go_env, forward_proxies)
    wl = _watch(watch, watch_file, no_default_hosts, proxies)
    filters = standard_filters(wl, validate_addresses(addresses))
    _check(filters, no_check)
    port_list = validate_ports([*(validate_port(p) for p in ports), *DEFAULT_PORTS,
                                *proxy_ports(proxies)])
    bpf = capture_filter(wl, port_list, validate_addresses(proxy_addresses(proxies)),
                         plaintext_ports=_plaintext_ports(proxies),
                         socks_ports=socks_proxy_ports(proxies))
    spec = ProfileSpec(name, tuple(filters), bpf, keylog.resolve() if keylog else None)
    files = render_profile(spec)
    if as_zip:
        target_dir = make_private_dir(out_dir or Path.cwd())
        path = write_zip(files, target_dir / f"{name}.zip", name)
    else:
        base = out_dir or wireshark_profiles_dir()
        path = write_profile(files, make_private_dir(base), name)
    click.echo(str(path))


@command.command("export")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("filters"), show_default=True, help="Directory to write into.")
@click.option("--no-check", is_flag=True, help="Do not compile the filters with tshark first.")
def export_command(out_dir: Path, no_check: bool) -> None:
    """Write the default profile (directory and zip) and the default capture filter
    (capture.bpf) from the built-in defaults only, reproducibly (what `make filters` runs)."""
    spec = default_spec()
    _check(spec.filters, no_check)
    for path in export(out_dir, spec):
        click.echo(str(path))


VSCODE_GO_COMMANDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("go mod download", ("mod", "download", "-x")),
    ("go build", ("build", "./...")),
    ("go test", ("test", "./...")),
)


def vscode_tasks(proxytrace: str = "proxytrace", go: str = "go") -> dict[str, Any]:
    """A .vscode/tasks.json document running the workspace's go commands under `proxytrace run`."""
    tasks = []
    for label, args in VSCODE_GO_COMMANDS:
        tasks.append({
            "label": f"proxytrace: {label}",
            "type": "process",
            "command": proxytrace,
            "args": ["run", "--format", "table", "--", go, *args],
            "options": {"cwd": "${workspaceFolder}"},
            "problemMatcher": [],
            "presentation": {"reveal": "always", "panel": "dedicated"},
        })
    return {"version": "2.0.0", "tasks": tasks}


@command.command("vscode-task")
@click.option("--go", "go_command", default="go", show_default=True,
              help="The go command the tasks run (e.g. ${config:go.goroot}/bin/go).")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE (mode 0600) instead of stdout, e.g. .vscode/tasks.json.")
def vscode_task_command(go_command: str, output: str | None) -> None:
    """Print a .vscode/tasks.json that runs the workspace's go commands under `proxytrace run`,
    so the editor shows which process contacts which Go host."""
    if not go_command or any(ord(ch) < 0x20 for ch in go_command):
        raise UsageError(f"invalid go command {go_command!r}")
    emit_text(json.dumps(vscode_tasks(go=go_command), indent=2) + "\n", output)


