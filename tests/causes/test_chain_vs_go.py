"""The configuration chain against the real go command: same effective values, right sources.

Each case builds a throw-away HOME (GOENV file written by `go env -w`, environment overrides,
a custom GOENV, GOENV=off, XDG_CONFIG_HOME, a distribution-edited go.env...) and compares
``config_from_env`` (reading files only, and asking go) with the pinned toolchain's `go env -json`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from analyzer.causes import config_from_env
from analyzer.causes.goconfig import CHAIN_VARS

from .conftest import base_env, go_env_w

COMPARED = (*CHAIN_VARS, "GOTELEMETRY")


@dataclass
class Case:
    name: str
    written: tuple[str, ...] = ()          # `go env -w` assignments
    env: dict[str, str] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)  # expected source prefix per variable
    goroot_env: str | None = None          # contents of a substitute $GOROOT/go.env
    custom_goenv: bool = False             # GOENV=<tmp>/custom-env
    xdg: bool = False


CASES = [
    Case("default", sources={"GOPROXY": "$GOROOT/go.env (default)", "GOSUMDB": "$GOROOT/go.env",
                             "GOTOOLCHAIN": "$GOROOT/go.env", "GOPRIVATE": "built-in default",
                             "GOAUTH": "built-in default"}),
    Case("goenv-file", written=("GOPROXY=https://goproxy.cn,direct", "GOPRIVATE=corp.example/*"),
         sources={"GOPROXY": "GOENV file", "GOPRIVATE": "GOENV file",
                  "GONOPROXY": "GOPRIVATE from GOENV file", "GONOSUMDB": "GOPRIVATE from GOENV file",
                  "GOSUMDB": "$GOROOT/go.env"}),
    Case("environment-wins", written=("GOPROXY=https://goproxy.cn,direct",),
         env={"GOPROXY": "direct", "GOFLAGS": "-mod=mod -x"},
         sources={"GOPROXY": "environment", "GOFLAGS": "environment"}),
    Case("empty-environment-falls-through", written=("GOPROXY=https://goproxy.io",),
         env={"GOPROXY": "", "GOSUMDB": ""},
         sources={"GOPROXY": "GOENV file", "GOSUMDB": "$GOROOT/go.env"}),
    Case("explicit-nosumdb-beats-goprivate", written=("GOPRIVATE=corp.example", "GONOSUMDB=other.example"),
         env={"GONOPROXY": "none.example"},
         sources={"GONOSUMDB": "GOENV file", "GONOPROXY": "environment"}),
    Case("toolchain-and-sumdb-off", written=("GOTOOLCHAIN=local", "GOSUMDB=off"),
         sources={"GOTOOLCHAIN": "GOENV file", "GOSUMDB": "GOENV file"}),
    Case("custom-goenv", written=("GOPROXY=https://mirror.example",), custom_goenv=True,
         sources={"GOPROXY": "GOENV file"}),
    Case("goenv-off", env={"GOENV": "off"}, sources={"GOPROXY": "$GOROOT/go.env"}),
    Case("xdg-config-home", written=("GOINSECURE=insecure.example",), xdg=True,
         sources={"GOINSECURE": "GOENV file"}),
    Case("distribution-go-env", goroot_env="# packaged\nGOPROXY=https://mirror.example,direct\n"
         "GOSUMDB=sum.golang.org\nGOTOOLCHAIN=local\n",
         sources={"GOTOOLCHAIN": "$GOROOT/go.env", "GOPROXY": "$GOROOT/go.env"}),
    Case("telemetry-on", sources={"GOTELEMETRY": "telemetry mode file"}),
]


def _build(case: Case, home: Path, go_bin: str, tmp_path: Path) -> dict[str, str]:
    env = base_env(home)
    if case.xdg:
        env["XDG_CONFIG_HOME"] = str(tmp_path / "xdg")
    if case.custom_goenv:
        env["GOENV"] = str(tmp_path / "custom-env")
    if case.goroot_env is not None:
        root = tmp_path / "goroot"
        root.mkdir()
        (root / "go.env").write_text(case.goroot_env)
        env["GOROOT"] = str(root)
    if case.written:
        go_env_w(go_bin, env, *case.written)
    if case.name == "telemetry-on":
        import subprocess

        subprocess.run([go_bin, "telemetry", "on"], env=env, check=True,  # noqa: S603
                       capture_output=True, cwd=home)
    env.update(case.env)
    return env


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("ask_go", [False, True], ids=["files-only", "with-go"])
def test_effective_values_match_go_env(case: Case, ask_go: bool, home: Path, go_bin: str,
                                       tmp_path: Path,
                                       real_go_env: Callable[[dict[str, str]], dict[str, str]]) -> None:
    env = _build(case, home, go_bin, tmp_path)
    truth = real_go_env(env)
    if not ask_go and "GOROOT" not in env:
        env = dict(env, GOROOT=truth["GOROOT"])  # without a go binary, GOROOT must be known
    cfg = config_from_env(env, go_bin if ask_go else None, platform="linux")
    for name in COMPARED:
        assert cfg.value(name) == truth[name], (name, cfg.get(name))
    for name, prefix in case.sources.items():
        assert cfg.settings[name].source.startswith(prefix), (name, cfg.settings[name])
    assert cfg.goenv_file == (truth["GOENV"] or None)
    if ask_go:
        assert cfg.go_version == truth["GOVERSION"] == "go1.27.3"


def test_changed_marks_values_equal_to_default(home: Path, go_bin: str) -> None:
    """`go env -changed` is how a value set explicitly but equal to the default is recognised."""
    env = dict(base_env(home), GOPROXY="https://proxy.golang.org,direct", GOSUMDB="sum.golang.org")
    cfg = config_from_env(env, go_bin, platform="linux")
    assert cfg.settings["GOPROXY"].source == "environment (same as the default)"
    env["GOPROXY"] = "direct"
    cfg = config_from_env(env, go_bin, platform="linux")
    assert cfg.settings["GOPROXY"].source == "environment"


def test_goenv_file_source_names_the_file(home: Path, go_bin: str) -> None:
    env = base_env(home)
    go_env_w(go_bin, env, "GOPROXY=https://goproxy.cn")
    cfg = config_from_env(env, None, platform="linux")
    path = str(home / ".config" / "go" / "env")
    assert cfg.settings["GOPROXY"].source == f"GOENV file {path}"
    assert cfg.settings["GOPROXY"].path == path


def test_missing_goroot_is_reported_not_guessed(home: Path) -> None:
    cfg = config_from_env(base_env(home), None, platform="linux", allow_go=False)
    assert cfg.value("GOPROXY") == ""
    assert any("GOROOT unknown" in n for n in cfg.notes)


def test_macos_and_windows_goenv_locations() -> None:
    from analyzer.causes.chain import goenv_file

    assert goenv_file({"HOME": "/Users/u"}, "darwin")[0] == \
        "/Users/u/Library/Application Support/go/env"
    assert goenv_file({"AppData": r"C:\Users\u\AppData\Roaming"}, "win32")[0] == \
        r"C:\Users\u\AppData\Roaming\go\env"
    assert goenv_file({"HOME": "/h", "XDG_CONFIG_HOME": "relative"}, "linux")[0] is None


def test_goroot_found_through_a_wrapper_script(home: Path, go_bin: str, tmp_path: Path) -> None:
    """`run` passes only the child's environment: a go wrapper on its PATH still locates go.env."""
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    wrapper = wrapper_dir / "go"
    wrapper.write_text(f'#!/bin/sh\nexec "{go_bin}" "$@"\n')
    wrapper.chmod(0o755)
    env = dict(base_env(home), PATH=f"{wrapper_dir}:/usr/bin:/bin")
    cfg = config_from_env(env)
    assert cfg.goroot == str(Path(go_bin).parent.parent)
    assert cfg.settings["GOSUMDB"].source == "$GOROOT/go.env (default)"
