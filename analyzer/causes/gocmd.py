"""Asking the real go command (an edge of the package: the only place here that runs programs).

Every call runs in an empty temporary directory with GOWORK unset, so no go.mod or go.work can make
the go command switch toolchains (a download), and with GO_TELEMETRY_CHILD=2 so it starts no
telemetry upload child. Arguments are lists; nothing is ever passed through a shell.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TIMEOUT = 30.0


@dataclass(frozen=True)
class GoResult:
    returncode: int
    stdout: str
    stderr: str


def _quiet_env(env: Mapping[str, str]) -> dict[str, str]:
    out = {k: v for k, v in env.items() if k != "GOWORK"}
    out["GO_TELEMETRY_CHILD"] = "2"
    return out


def run_go(go: str, args: list[str], env: Mapping[str, str], cwd: str | None = None) -> GoResult:
    """Run ``go args...``; a missing or broken binary gives returncode 127 and the reason on stderr."""
    go = os.path.abspath(go) if os.sep in go else go  # the command runs from a scratch directory
    with tempfile.TemporaryDirectory(prefix="proxytrace-go-") as tmp:
        try:
            proc = subprocess.run(  # noqa: S603 - argument list, binary chosen by the user
                [go, *args], env=_quiet_env(env), cwd=cwd or tmp, capture_output=True, text=True,
                timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return GoResult(127, "", f"{go}: {exc}")
    return GoResult(proc.returncode, proc.stdout, proc.stderr)


def go_env_json(go: str, env: Mapping[str, str], changed: bool = False) -> dict[str, str] | None:
    """``go env -json [-changed]`` as a dict, or None when the go command fails."""
    args = ["env", "-json", "-changed"] if changed else ["env", "-json"]
    res = run_go(go, args, env)
    if res.returncode != 0:
        return None
    try:
        data = json.loads(res.stdout or "{}")
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def go_version(go: str, env: Mapping[str, str]) -> str | None:
    res = run_go(go, ["env", "GOVERSION"], env)
    return res.stdout.strip() or None if res.returncode == 0 else None


def parse_error(go: str, env: Mapping[str, str], modfile: Path) -> str | None:
    """The go command's own error for a go.mod or go.work file, or None when it parses.

    ``go list -m`` parses the file strictly and, here, never fetches: GOTOOLCHAIN=local and
    GOPROXY=off keep even a newer ``go`` line from causing a download.
    """
    safe = dict(env, GOTOOLCHAIN="local", GOPROXY="off", GOSUMDB="off", GOFLAGS="")
    safe["GOWORK"] = str(modfile) if modfile.name == "go.work" else "off"
    args = ["list", "-m"]
    go = os.path.abspath(go) if os.sep in go else go
    with tempfile.TemporaryDirectory(prefix="proxytrace-go-") as tmp:
        safe.update(GO_TELEMETRY_CHILD="2", GOCACHE=str(Path(tmp) / "cache"))
        try:
            proc = subprocess.run(  # noqa: S603 - argument list
                [go, *args], env=safe, cwd=str(modfile.parent), capture_output=True, text=True,
                timeout=TIMEOUT, check=False, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return None
    if proc.returncode == 0:
        return None
    return proc.stderr.strip() or None


def unknown_variable_error(go: str, env: Mapping[str, str], name: str) -> str | None:
    """What ``go env -w NAME=x`` says, run against a throw-away GOENV file (the user's is never touched)."""
    with tempfile.TemporaryDirectory(prefix="proxytrace-go-") as tmp:
        scratch = dict(env, GOENV=str(Path(tmp) / "env"))
        res = run_go(go, ["env", "-w", f"{name}=1"], scratch, cwd=tmp)
    return res.stderr.strip() or None if res.returncode != 0 else None


def telemetry_mode_seen(go: str, env: Mapping[str, str]) -> str | None:
    res = run_go(go, ["env", "GOTELEMETRY"], env)
    return res.stdout.strip() or None if res.returncode == 0 else None
