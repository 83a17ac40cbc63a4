"""Everything `proxytrace explain` shows, computed before anything is rendered."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import gocmd
from .chain import parse_env_file
from .consequences import (
    Consequence,
    extension_consequences,
    forward_proxy,
    go_consequences,
)
from .consumers import Consumer, build_consumers
from .gomod import ModFile, find_modfiles, needs_switch, scan
from .lint import GoProbe, LintFinding, lint_consumer, lint_editor, lint_modfiles, lint_variables
from .sources import host_platform
from .vscode import EditorSettings, load_editor_settings


@dataclass
class Explanation:
    go_binary: str | None
    go_version: str | None
    goroot: str | None
    goenv_file: str | None
    settings_files: list[str]
    modfiles: list[ModFile]
    wanted_toolchain: str | None
    consumers: list[Consumer]
    consequences: list[Consequence]
    lint: list[LintFinding]
    notes: list[str] = field(default_factory=list)


def _wanted(modfiles: Sequence[ModFile]) -> str | None:
    """The toolchain the workspace asks for: go.work first (it wins), toolchain line over go line."""
    for mf in modfiles:
        if mf.toolchain and mf.toolchain != "default":
            return mf.toolchain
        if mf.go:
            return "go" + mf.go if not mf.go.startswith("go") else mf.go
    return None


def explain(env: Mapping[str, str], workspace: Path | None, go_binary: str | None,
            extra_settings: Sequence[Path] = (), redacted: bool = True,
            platform: str | None = None) -> Explanation:
    plat = platform or host_platform()
    editor: EditorSettings = load_editor_settings(env, plat, workspace, extra_settings)
    consumers = build_consumers(env, editor, go_binary, plat)
    go_cfg = consumers[0].config

    paths = find_modfiles(workspace) if workspace is not None else []
    modfiles: list[ModFile] = []
    scanned: list[tuple[ModFile, str | None]] = []
    for p in paths:
        try:
            mf = scan(p, p.read_text(encoding="utf-8", errors="replace"))
        except OSError:
            continue
        modfiles.append(mf)
        err = gocmd.parse_error(go_binary, env, p) if go_binary and mf.unknown else None
        scanned.append((mf, err))
    wanted = _wanted(modfiles)
    if wanted and not needs_switch(go_cfg.go_version, wanted):
        wanted = None

    consequences: list[Consequence] = []
    for c in consumers:
        if c.name == "vscode-extension":
            consequences.extend(extension_consequences(c.config, redacted))
        else:
            consequences.extend(go_consequences(c.name, c.config, wanted, redacted))
        fp = forward_proxy(c.name, c.config, redacted)
        if fp is not None:
            consequences.append(fp)

    probe = None
    if go_binary:
        gb = go_binary
        probe = GoProbe(unknown_variable=lambda name: gocmd.unknown_variable_error(gb, env, name),
                        telemetry_mode=lambda: gocmd.telemetry_mode_seen(gb, env))
    places: list[tuple[str, Mapping[str, object]]] = [("environment", env)]
    if go_cfg.goenv_file and os.path.isfile(go_cfg.goenv_file):
        try:
            text = Path(go_cfg.goenv_file).read_text(encoding="utf-8", errors="replace")
            places.append((f"GOENV file {go_cfg.goenv_file}", parse_env_file(text)))
        except OSError:
            pass
    for label, entries in (("go.toolsEnvVars", editor.tools_env), ("gopls env", editor.gopls_env)):
        by_file: dict[str, dict[str, object]] = {}
        for k, s in entries.items():
            by_file.setdefault(s.file, {})[k] = s.value
        places.extend((f"{label} in {f}", vals) for f, vals in by_file.items())

    lint: list[LintFinding] = lint_modfiles(scanned) + lint_variables(places, probe)
    seen: dict[tuple[str, str, str], int] = {}
    for c in consumers:
        for f in lint_consumer(c, redacted):
            key = (f.code, f.location, f.detail)
            if key in seen:
                prev = lint[seen[key]]
                lint[seen[key]] = LintFinding(prev.code, prev.severity, prev.location, prev.detail,
                                              prev.evidence, f"{prev.consumer}, {c.name}")
            else:
                seen[key] = len(lint)
                lint.append(f)
    lint.extend(lint_editor(editor))

    notes = list(dict.fromkeys(n for c in consumers for n in c.config.notes))
    if editor.found:
        notes.append("the editor consumers assume VS Code runs with this environment (true when it "
                     "is started from this shell; a desktop launcher may give it another one)")
    return Explanation(go_binary=go_binary, go_version=go_cfg.go_version, goroot=go_cfg.goroot,
                       goenv_file=go_cfg.goenv_file,
                       settings_files=[f.path for f in editor.files], modfiles=modfiles,
                       wanted_toolchain=wanted, consumers=consumers, consequences=consequences,
                       lint=lint, notes=notes)
