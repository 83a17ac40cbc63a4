"""The go command's configuration chain, as pure functions over already-read file contents.

Precedence (cmd/go/internal/cfg/cfg.go, GO_NETWORK_FACTS.md section 8): a non-empty OS environment
value, then the user's GOENV file (``go env -w``), then ``$GOROOT/go.env``, then the built-in default.
GONOPROXY and GONOSUMDB default to GOPRIVATE. GOTELEMETRY is never read from the environment: it is
the mode file under the user config dir. HTTP(S)_PROXY / NO_PROXY are read by net/http only.
"""

from __future__ import annotations

import ntpath
import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from .goconfig import (
    BUILTIN,
    CHAIN_VARS,
    ENVIRONMENT,
    GOROOT_ENV,
    GOROOT_ENV_RECORDED,
    RECORDED,
    Setting,
    goenv_source,
)

# Built-in defaults of go1.21+ (cfg.go: GOPROXY/GOSUMDB/GOTOOLCHAIN are empty in the binary).
BUILTIN_DEFAULTS: Mapping[str, str] = {"GOAUTH": "netrc"}


def parse_env_file(text: str) -> dict[str, str]:
    """Parse a go env file exactly like cfg.readEnvFile: ``KEY=VALUE`` lines, no quoting.

    Lines without ``=`` or not starting with an upper-case letter (comments) are skipped; later lines
    win; the value is taken verbatim (a trailing ``\\r`` stays, as in Go).
    """
    out: dict[str, str] = {}
    for line in text.split("\n"):
        i = line.find("=")
        if i < 0 or not line or not ("A" <= line[0] <= "Z"):
            continue
        out[line[:i]] = line[i + 1:]
    return out


def user_config_dir(env: Mapping[str, str], platform: str) -> str | None:
    """os.UserConfigDir for ``platform`` ("linux", "darwin", "win32"), from ``env`` only."""
    if platform == "win32":
        return env.get("AppData") or env.get("APPDATA") or None
    home = env.get("HOME", "")
    if platform == "darwin":
        return posixpath.join(home, "Library", "Application Support") if home else None
    xdg = env.get("XDG_CONFIG_HOME", "")
    if xdg:
        return xdg if xdg.startswith("/") else None  # Go rejects a relative XDG_CONFIG_HOME
    return posixpath.join(home, ".config") if home else None


def _join(platform: str, *parts: str) -> str:
    return ntpath.join(*parts) if platform == "win32" else posixpath.join(*parts)


def goenv_file(env: Mapping[str, str], platform: str) -> tuple[str | None, str]:
    """The user's go env file and why (cfg.EnvFile): ``$GOENV``, ``off``, or the config dir's go/env."""
    explicit = env.get("GOENV", "")
    if explicit:
        if explicit == "off":
            return None, "GOENV=off in the environment"
        return explicit, "GOENV in the environment"
    base = user_config_dir(env, platform)
    if not base:
        return None, "no user config directory (HOME/XDG_CONFIG_HOME/AppData unset)"
    return _join(platform, base, "go", "env"), "default location"


def telemetry_mode_file(env: Mapping[str, str], platform: str) -> str | None:
    base = user_config_dir(env, platform)
    return _join(platform, base, "go", "telemetry", "mode") if base else None


def telemetry_mode(text: str | None) -> str:
    """x/telemetry Dir.Mode: the first word of the mode file, ``local`` when there is none."""
    if text is None:
        return "local"
    return text.strip().split(" ", 1)[0]


@dataclass(frozen=True)
class ReadFile:
    """An env file that was read (``values`` empty when it does not exist)."""

    path: str
    values: Mapping[str, str]
    exists: bool = True
    recorded: bool = False  # read from the capture (the capturing machine's file), not from here


def resolve_chain(env: Mapping[str, str], user: ReadFile | None, goroot: ReadFile | None,
                  env_sources: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """Effective value and source of every CHAIN_VARS entry, the way cfg.Getenv finds it.

    ``env_sources`` relabels environment values that an editor setting put there (e.g.
    ``go.toolsEnvVars in .vscode/settings.json``).
    """
    labels = env_sources or {}
    out: dict[str, Setting] = {}

    def lookup(name: str) -> Setting | None:
        val = env.get(name, "")
        if val:  # an empty environment value falls through to the files, like os.Getenv != ""
            return Setting(name, val, labels.get(name, ENVIRONMENT))
        if user is not None and name in user.values:
            label = goenv_source(user.path) + (RECORDED if user.recorded else "")
            return Setting(name, user.values[name], label, user.path)
        if goroot is not None and name in goroot.values:
            label = GOROOT_ENV_RECORDED if goroot.recorded else GOROOT_ENV
            return Setting(name, goroot.values[name], label, goroot.path)
        return None

    for name in CHAIN_VARS:
        found = lookup(name)
        if found is not None and found.value != "":
            out[name] = found
            continue
        if name in ("GONOPROXY", "GONOSUMDB"):
            private = out.get("GOPRIVATE") or lookup("GOPRIVATE")
            if private is not None and private.value:
                out[name] = Setting(name, private.value, f"GOPRIVATE from {private.source}",
                                    private.path)
                continue
        default = BUILTIN_DEFAULTS.get(name, "")
        if found is not None and not default:  # set to "" in a file: the file is still the source
            out[name] = Setting(name, "", found.source, found.path)
        else:
            out[name] = Setting(name, default, BUILTIN)
    return out


def proxy_env(env: Mapping[str, str], labels: Mapping[str, str] | None = None) -> dict[str, Setting]:
    """HTTPS_PROXY/HTTP_PROXY/NO_PROXY as net/http's ProxyFromEnvironment reads them (upper case first)."""
    out: dict[str, Setting] = {}
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY"):
        for key in (name, name.lower()):
            if env.get(key):
                label = (labels or {}).get(key, ENVIRONMENT)
                src = label if key == name else f"{label} ({key})"
                out[name] = Setting(name, env[key], src)
                break
        else:
            out[name] = Setting(name, "", "not set")
    return out
