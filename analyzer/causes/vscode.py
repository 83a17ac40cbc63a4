"""VS Code settings that change what the Go extension, its tools and gopls contact.

User settings live per platform (Linux ``~/.config/Code/User``, macOS ``~/Library/Application
Support/Code/User``, Windows ``%APPDATA%\\Code\\User``; also Insiders, OSS and VSCodium builds, and
the remote server's machine settings); a workspace adds ``.vscode/settings.json`` and the
``settings`` of ``*.code-workspace`` files. Later scopes win; object settings such as
``go.toolsEnvVars`` are merged key by key, as VS Code does.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.errors import ParseError
from .chain import user_config_dir
from .jsonc import loads_jsonc

PRODUCTS = ("Code", "Code - Insiders", "Code - OSS", "VSCodium")


def user_settings_paths(env: Mapping[str, str], platform: str) -> list[str]:
    """Candidate user settings.json files for ``platform``, most common first."""
    base = user_config_dir(env, platform)
    if not base:
        return []
    join = ntpath.join if platform == "win32" else posixpath.join
    paths = [join(base, product, "User", "settings.json") for product in PRODUCTS]
    home = env.get("HOME", "")
    if home and platform != "win32":
        paths.append(posixpath.join(home, ".vscode-server", "data", "Machine", "settings.json"))
    return paths


def workspace_settings_paths(workspace: Path) -> list[Path]:
    found = sorted(workspace.glob("*.code-workspace"))
    found.append(workspace / ".vscode" / "settings.json")
    return [p for p in found if p.is_file()]


@dataclass(frozen=True)
class Sourced:
    value: Any
    file: str
    key: str  # the settings key as written, e.g. "go.toolsEnvVars" or "gopls"


@dataclass(frozen=True)
class SettingsFile:
    path: str
    data: Mapping[str, Any]
    error: str | None = None


@dataclass
class EditorSettings:
    """Merged view of the settings files, every value with the file it came from."""

    files: list[SettingsFile] = field(default_factory=list)
    tools_env: dict[str, Sourced] = field(default_factory=dict)   # go.toolsEnvVars entries
    gopls_env: dict[str, Sourced] = field(default_factory=dict)   # "gopls": {"env": {...}}
    scalars: dict[str, Sourced] = field(default_factory=dict)     # http.proxy, go.toolsManagement.*

    @property
    def found(self) -> bool:
        return any(f.error is None for f in self.files)


SCALAR_KEYS = ("http.proxy", "http.noProxy", "go.toolsManagement.checkForUpdates",
               "go.toolsManagement.autoUpdate", "go.alternateTools", "go.goroot")


def parse_settings_text(path: str, text: str) -> SettingsFile:
    try:
        data = loads_jsonc(text)
    except ParseError as exc:
        return SettingsFile(path, {}, f"{path}: not valid settings JSON ({exc})")
    if path.endswith(".code-workspace"):
        data = data.get("settings", {}) if isinstance(data, dict) else {}
    if not isinstance(data, dict):
        return SettingsFile(path, {}, f"{path}: top level is not an object")
    return SettingsFile(path, data)


def read_settings_file(path: str | Path) -> SettingsFile | None:
    """None when the file does not exist; a SettingsFile with ``error`` when it cannot be used."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    except OSError as exc:
        return SettingsFile(str(p), {}, f"{p}: cannot read ({exc.strerror})")
    return parse_settings_text(str(p), text)


def _nested(data: Mapping[str, Any], dotted: str) -> tuple[Any, str] | None:
    """A setting written either flat (``"go.toolsManagement.autoUpdate": true``) or nested."""
    if dotted in data:
        return data[dotted], dotted
    head, _, rest = dotted.partition(".")
    while rest:
        inner = data.get(head)
        if isinstance(inner, dict):
            found = _nested(inner, rest)
            if found is not None:
                return found[0], f"{head}.{found[1]}"
        nxt, _, rest = rest.partition(".")
        head = f"{head}.{nxt}"
    return None


def merge(files: Sequence[SettingsFile]) -> EditorSettings:
    out = EditorSettings(files=list(files))
    for f in files:
        if f.error:
            continue
        tools = _nested(f.data, "go.toolsEnvVars")
        if tools is not None and isinstance(tools[0], dict):
            for k, v in tools[0].items():
                out.tools_env[str(k)] = Sourced(v, f.path, tools[1])
        gopls = f.data.get("gopls")
        if isinstance(gopls, dict):
            # gopls documents "env" in its "build" group; VS Code users write either form.
            found = _nested(gopls, "build.env") or _nested(gopls, "env")
            if found is not None and isinstance(found[0], dict):
                for k, v in found[0].items():
                    out.gopls_env[str(k)] = Sourced(v, f.path, f"gopls.{found[1]}")
        for key in SCALAR_KEYS:
            found = _nested(f.data, key)
            if found is not None:
                out.scalars[key] = Sourced(found[0], f.path, found[1])
    return out


def load_editor_settings(env: Mapping[str, str], platform: str, workspace: Path | None,
                         extra: Sequence[Path] = ()) -> EditorSettings:
    """User settings, then workspace settings, then ``--vscode-settings`` files (last wins)."""
    files: list[SettingsFile] = []
    for p in user_settings_paths(env, platform):
        got = read_settings_file(p)
        if got is not None:
            files.append(got)
    if workspace is not None:
        for wp in workspace_settings_paths(workspace):
            got = read_settings_file(wp)
            if got is not None:
                files.append(got)
    for xp in extra:
        got = read_settings_file(xp)
        files.append(got if got is not None else SettingsFile(str(xp), {}, f"{xp}: no such file"))
    return merge(files)
