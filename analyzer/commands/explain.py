"""``proxytrace explain``: where each Go network setting comes from, what it makes tools contact,
and settings that do not do what they seem."""

from __future__ import annotations

import os
import shutil
import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import click

from ..base.errors import UsageError
from ..causes import find_go_binary
from ..causes.explain import Explanation, explain
from ..causes.goconfig import NETWORK_VARS
from ..causes.proxylist import redact
from ..report.output import emit_records, output_options

SHOWN_VARS = (*NETWORK_VARS, "GOVCS", "GOAUTH", "GOVULNDB")


def to_records(ex: Explanation, redacted: bool) -> list[dict[str, Any]]:
    """One record per setting, consequence and lint finding (the machine formats)."""
    def show(v: str) -> str:
        return redact(v) if redacted else v

    records: list[dict[str, Any]] = [{
        "kind": "context", "go_binary": ex.go_binary, "go_version": ex.go_version,
        "goroot": ex.goroot, "goenv_file": ex.goenv_file, "vscode_settings": ex.settings_files,
        "modfiles": [str(m.path) for m in ex.modfiles], "wanted_toolchain": ex.wanted_toolchain,
        "notes": ex.notes}]
    for c in ex.consumers:
        names = [*SHOWN_VARS, *(c.config.editor.keys() if c.name == "vscode-extension" else ())]
        for name in names:
            s = c.config.get(name)
            if s is None:
                continue
            records.append({"kind": "setting", "consumer": c.name, "name": name,
                            "value": show(s.value), "source": s.source, "path": s.path})
    records.extend({"kind": "consequence", **q.to_dict()} for q in ex.consequences)
    records.extend({"kind": "lint", **f.to_dict()} for f in ex.lint)
    return [_redact_all(r) for r in records] if redacted else records


def _redact_all(value: Any) -> Any:
    """Credentials can hide anywhere a URL is quoted (notes, lint details, go's own messages)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redact_all(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_all(v) for v in value]
    return value


def _wrap(text: str, indent: int) -> list[str]:
    width = max(60, min(shutil.get_terminal_size((100, 20)).columns, 120))
    pad = " " * indent
    return textwrap.wrap(text, width=width, initial_indent=pad, subsequent_indent=pad + "  ",
                         break_on_hyphens=False, break_long_words=False) or [pad]


def render_table(records: Sequence[dict[str, Any]]) -> str:
    lines: list[str] = []
    ctx = records[0]
    go = f"{ctx['go_version'] or 'go version unknown'} ({ctx['go_binary']})" if ctx["go_binary"] \
        else f"no go command found: files read directly ({ctx['go_version'] or 'version unknown'})"
    lines.append(f"Go: {go}")
    lines.append(f"GOROOT: {ctx['goroot'] or 'unknown'}    GOENV file: {ctx['goenv_file'] or 'none'}")
    lines.append("VS Code settings: " + (", ".join(ctx["vscode_settings"]) or "none found"))
    if ctx["modfiles"]:
        lines.append("Workspace: " + ", ".join(ctx["modfiles"])
                     + (f" (asks for {ctx['wanted_toolchain']})" if ctx["wanted_toolchain"] else ""))
    for note in ctx["notes"]:
        lines.extend(_wrap(f"note: {note}", 0))

    settings = [r for r in records if r["kind"] == "setting"]
    consequences = [r for r in records if r["kind"] == "consequence"]
    base = {r["name"]: (r["value"], r["source"]) for r in settings if r["consumer"] == "go"}
    base_q = {(q["case"], tuple(q["hosts"]), q["detail"]) for q in consequences if q["consumer"] == "go"}
    consumers = list(dict.fromkeys(r["consumer"] for r in settings))
    for name in consumers:
        lines.append("")
        lines.append(f"== {name}")
        rows = [r for r in settings if r["consumer"] == name]
        if name not in ("go", "vscode-extension"):
            rows = [r for r in rows if base.get(r["name"]) != (r["value"], r["source"])]
            if not rows:
                lines.append("  settings: as for go")
        unset = [r["name"] for r in rows if r["value"] == "" and r["source"] in ("built-in default", "not set")]
        rows = [r for r in rows if r["name"] not in unset]
        for r in rows:
            value = r["value"] if r["value"] != "" else "(empty)"
            head = f"{r['name']:<12} {value}"
            one = f"{head}   <- {r['source']}"
            if len(one) <= 98:
                lines.append("  " + one)
            else:
                lines.extend(_wrap(head, 2))
                lines.extend(_wrap(f"<- {r['source']}", 15))
        if unset:
            lines.extend(_wrap("unset: " + ", ".join(unset), 2))
        mine = [q for q in consequences if q["consumer"] == name]
        if name not in ("go", "vscode-extension"):
            mine = [q for q in mine if (q["case"], tuple(q["hosts"]), q["detail"]) not in base_q]
            if not mine:
                lines.append("  consequences: as for go")
                continue
        lines.append("  consequences:")
        for q in mine:
            hosts = ", ".join(q["hosts"]) or "no Go host"
            lines.extend(_wrap(f"- {q['case']}: {hosts}", 4))
            lines.extend(_wrap(q["detail"], 6))
            lines.extend(_wrap(f"to stop: {q['stop']}", 6))
    lint = [r for r in records if r["kind"] == "lint"]
    lines.append("")
    lines.append(f"== lint: {len(lint)} finding{'s' if len(lint) != 1 else ''}")
    for f in lint:
        who = f" [{f['consumer']}]" if f["consumer"] else ""
        lines.extend(_wrap(f"{f['severity']}: {f['location']}{who}", 2))
        lines.extend(_wrap(f["detail"], 6))
        for ev in str(f["evidence"]).splitlines():
            lines.extend(_wrap(f"evidence: {ev}", 6))
    return "\n".join(lines) + "\n"


@click.command("explain")
@click.option("--workspace", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Module or workspace directory (go.mod/go.work, .vscode/settings.json). "
                   "Default: the current directory.")
@click.option("--vscode-settings", "vscode_settings", multiple=True,
              type=click.Path(dir_okay=False, path_type=Path),
              help="Also read this VS Code settings.json (repeatable; read last, so it wins).")
@click.option("--go", "go_path", metavar="PATH",
              help="The go command to ask (default: `go` on PATH).")
@click.option("--no-go", is_flag=True, help="Do not run the go command; read the files only.")
@click.option("--no-redact", is_flag=True, help="Show credentials in proxy URLs.")
@output_options()
def command(workspace: Path | None, vscode_settings: tuple[Path, ...], go_path: str | None,
            no_go: bool, no_redact: bool, fmt: str, output: str | None) -> int:
    """Show, for the go command, VS Code's tools, gopls and the VS Code Go extension, the
    effective GOPROXY, GOSUMDB, GOTOOLCHAIN... with where each value comes from; which hosts
    each will contact and how to stop it; and settings that do not do what they seem."""
    ws = workspace if workspace is not None else Path.cwd()
    if not ws.is_dir():
        raise UsageError(f"{ws}: --workspace is not a directory")
    env = dict(os.environ)
    go: str | None = None
    if not no_go:
        go = go_path or find_go_binary(env)
        if go_path and not (shutil.which(go_path) or os.path.isfile(go_path)):
            raise UsageError(f"{go_path}: no such go command")
    ex = explain(env, ws, go, vscode_settings, redacted=not no_redact)
    emit_records(to_records(ex, not no_redact), fmt, output, render_table)
    return 0
