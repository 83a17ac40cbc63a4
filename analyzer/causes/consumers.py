"""The programs that can contact Go hosts, each with the environment it really runs with.

- ``go``: the go command started from this shell (the process environment as given).
- ``vscode-tools``: tools the VS Code Go extension runs (toolExecutionEnvironment: the editor's
  environment, then ``go.toolsEnvVars``, then ``http.proxy`` exported as HTTP(S)_PROXY).
- ``vscode-tool-install``: ``go install`` of tools by the extension (toolInstallationEnvironment:
  as above, but GOTOOLCHAIN forced to ``auto`` and GOFLAGS, GOENV, GOROOT... removed).
- ``gopls``: the tools environment plus gopls's ``env`` setting (``"gopls": {"env": {...}}``).
- ``vscode-extension``: the extension's own Node fetches, which read ``process.env.GOPROXY`` (filled
  from ``go env`` when unset) and ``go.toolsManagement.*``.
(GO_NETWORK_FACTS.md sections 5 and 6.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .goconfig import GoConfig, Setting
from .sources import config_from_env
from .vscode import EditorSettings, Sourced, load_editor_settings

CONSUMERS = ("go", "vscode-tools", "vscode-tool-install", "gopls", "vscode-extension")
# goEnv.ts toolInstallationEnvironment: these are deleted before `go install`.
INSTALL_DELETES = ("GOFLAGS", "GOENV", "GOOS", "GOARCH", "GOROOT", "GO111MODULE")

EDITOR_DEFAULTS: Mapping[str, str] = {
    "go.toolsManagement.checkForUpdates": "proxy",
    "go.toolsManagement.autoUpdate": "false",
}


@dataclass(frozen=True)
class Consumer:
    name: str
    description: str
    config: GoConfig


def _label(s: Sourced) -> str:
    return f"{s.key} in {s.file}"


def editor_settings(editor: EditorSettings) -> dict[str, Setting]:
    out: dict[str, Setting] = {}
    for key, default in EDITOR_DEFAULTS.items():
        got = editor.scalars.get(key)
        if got is None:
            out[key] = Setting(key, default, "vscode-go default")
        else:
            val = got.value
            text = str(val).lower() if isinstance(val, bool) else str(val)
            out[key] = Setting(key, text, _label(got), got.file)
    return out


def tools_env(base: Mapping[str, str], editor: EditorSettings) -> tuple[dict[str, str], dict[str, str]]:
    """toolExecutionEnvironment(): environment and, per variable, which setting put it there."""
    env = dict(base)
    labels: dict[str, str] = {}
    for k, s in editor.tools_env.items():
        if isinstance(s.value, str):
            env[k] = s.value
            labels[k] = _label(s)
    proxy = editor.scalars.get("http.proxy")
    if proxy is not None and isinstance(proxy.value, str) and proxy.value:
        for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY"):
            env[k] = proxy.value
            labels[k] = _label(proxy)
    return env, labels


def build_consumers(env: Mapping[str, str], editor: EditorSettings, go_binary: str | None,
                    platform: str | None = None) -> list[Consumer]:
    """Every consumer's configuration; without ``go_binary`` only files are read (no go is run)."""
    ed = editor_settings(editor)
    files_only = go_binary is None
    go_cfg = config_from_env(env, go_binary, platform=platform, allow_go=not files_only)
    t_env, t_labels = tools_env(env, editor)
    tools_cfg = config_from_env(t_env, go_binary, t_labels, platform, allow_go=not files_only)

    i_env = {k: v for k, v in t_env.items() if k not in INSTALL_DELETES}
    i_env["GOTOOLCHAIN"] = "auto"
    i_labels = dict(t_labels, GOTOOLCHAIN="forced by vscode-go for tool installs")
    install_cfg = config_from_env(i_env, go_binary, i_labels, platform, allow_go=not files_only)

    g_env, g_labels = dict(t_env), dict(t_labels)
    for k, s in editor.gopls_env.items():
        if isinstance(s.value, str):
            g_env[k] = s.value
            g_labels[k] = _label(s)
    gopls_cfg = config_from_env(g_env, go_binary, g_labels, platform, allow_go=not files_only)

    # The extension host reads process.env.GOPROXY; when unset it copies `go env GOPROXY`
    # (run with the tools environment) into process.env (goInstallTools.ts updateGoVarsFromConfig).
    if env.get("GOPROXY"):
        proxy = Setting("GOPROXY", env["GOPROXY"], "editor process environment")
    else:
        t = tools_cfg.settings["GOPROXY"]
        proxy = Setting("GOPROXY", t.value, f"go env, i.e. {t.source}", t.path)
    ext_settings = {"GOPROXY": proxy}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        ext_settings[name] = tools_cfg.settings[name]
    ext_cfg = GoConfig(settings=ext_settings, go_binary=go_binary, go_version=tools_cfg.go_version,
                       goroot=tools_cfg.goroot, goenv_file=tools_cfg.goenv_file, editor=ed)

    def with_editor(cfg: GoConfig) -> GoConfig:
        return GoConfig(settings=cfg.settings, go_binary=cfg.go_binary, go_version=cfg.go_version,
                        goroot=cfg.goroot, goenv_file=cfg.goenv_file, notes=cfg.notes, editor=ed)

    return [
        Consumer("go", "the go command started from this shell", go_cfg),
        Consumer("vscode-tools", "tools run by the VS Code Go extension (go list, go build, dlv...)",
                 with_editor(tools_cfg)),
        Consumer("vscode-tool-install", "`go install` of tools and vscgo by the VS Code Go extension",
                 with_editor(install_cfg)),
        Consumer("gopls", "gopls and the go commands it runs", with_editor(gopls_cfg)),
        Consumer("vscode-extension", "the VS Code Go extension's own requests (Node.js)", ext_cfg),
    ]


def editor_settings_for_home(home: Path, platform: str) -> dict[str, Setting]:
    """Editor settings found under a HOME-like tree (or a workspace's .vscode), for causes."""
    editor = load_editor_settings({"HOME": str(home), "AppData": str(home / "AppData" / "Roaming")},
                                  platform, home)
    return editor_settings(editor) if editor.found else {}
