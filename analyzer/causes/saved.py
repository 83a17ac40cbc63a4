"""A configuration saved elsewhere (a HOME-like tree or an env file), for ``analyze --config-from``."""

from __future__ import annotations

import os
from pathlib import Path

from ..base.errors import UsageError
from .consumers import editor_settings_for_home
from .goconfig import GoConfig
from .sources import config_from_env, host_platform


def load_config_from(path: Path, platform: str | None = None,
                     go_binary: str | None = None) -> GoConfig:
    """A configuration saved elsewhere, for ``analyze --config-from``.

    ``path`` is an env file (KEY=VALUE lines, like ``go env`` output or a GOENV file: taken as the
    process environment), or a directory: a HOME-like tree (``.config/go/env``, VS Code user settings)
    or a workspace (``.vscode/settings.json``, ``go.env`` / ``.env`` files are not read).
    """
    if path.is_file():
        env = _env_from_file(path)
        labels = {k: f"env file {path}" for k in env}
        base = {k: v for k, v in os.environ.items() if k in ("PATH", "GOROOT")}
        merged = {**base, **env}
        cfg = config_from_env(merged, go_binary, env_sources=labels, platform=platform)
        return cfg
    if path.is_dir():
        env = {k: v for k, v in os.environ.items() if k in ("PATH", "GOROOT")}
        env["HOME"] = str(path)
        cfg = config_from_env(env, go_binary, platform=platform)
        editor = editor_settings_for_home(path, platform or host_platform())
        return GoConfig(settings=cfg.settings, go_binary=cfg.go_binary, go_version=cfg.go_version,
                        goroot=cfg.goroot, goenv_file=cfg.goenv_file, notes=cfg.notes,
                        editor=editor)
    raise UsageError(f"{path}: --config-from needs a directory or an env file")


def _env_from_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines; accepts ``go env`` output (quoted values, ``export``) and plain env files."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None
    out: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[7:].lstrip()
        key, sep, val = line.partition("=")
        if not sep or not key.replace("_", "").isalnum():
            continue
        if len(val) >= 2 and val[0] == val[-1] and val[0] in "'\"":
            val = val[1:-1]
        out[key] = val
    if not out:
        raise UsageError(f"{path}: no KEY=VALUE lines")
    return out
