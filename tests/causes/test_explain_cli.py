"""`proxytrace explain` end to end: throw-away HOMEs with a GOENV file written by the real go,
VS Code settings with comments and trailing commas, and go.mod files with `toolchain` and
`proxy` lines; every effective value is compared with the pinned toolchain's own `go env -json`
run in the same environment (plus the editor's additions for the editor's consumers)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from analyzer.causes.goconfig import CHAIN_VARS

from .conftest import VENV_BIN, base_env, go_env_w

USER_SETTINGS = """{
  // Go tools go straight to the origin; the checksum database stays on.
  "go.toolsEnvVars": {
    "GOPROXY": "direct",   /* not the mirror */
    "GOPRIVATE": "corp.example/*",
  },
  "gopls": {
    "env": {"GOFLAGS": "-mod=mod",},
    "ui.semanticTokens": true,
  },
  "go.toolsManagement.checkForUpdates": "local",
}
"""
WORKSPACE_SETTINGS = """// workspace wins over user for the keys it sets
{
  "go.toolsEnvVars": {"GOINSECURE": "insecure.example",},
  "go.goproxy": "https://goproxy.cn", // not a real setting
}
"""


def run_explain(env: dict[str, str], *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    exe = VENV_BIN / "proxytrace"
    cmd = [str(exe)] if exe.is_file() else [sys.executable, "-m", "analyzer.cli"]
    return subprocess.run([*cmd, "explain", *args], env=env, cwd=cwd,  # noqa: S603
                          capture_output=True, text=True, check=False, timeout=120)


def records(proc: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def settings_of(recs: list[dict[str, Any]], consumer: str) -> dict[str, dict[str, Any]]:
    return {r["name"]: r for r in recs if r["kind"] == "setting" and r["consumer"] == consumer}


@pytest.fixture
def lab_home(home: Path, go_bin: str, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """HOME with `go env -w` settings, VS Code user settings, and a module asking for go1.99.0."""
    env = base_env(home)
    env["PATH"] = f"{Path(go_bin).parent}:/usr/bin:/bin"
    go_env_w(go_bin, env, "GOPROXY=https://goproxy.io,direct", "GOTOOLCHAIN=auto")
    user = home / ".config" / "Code" / "User"
    user.mkdir(parents=True)
    (user / "settings.json").write_text(USER_SETTINGS)
    ws = tmp_path / "ws"
    (ws / ".vscode").mkdir(parents=True)
    (ws / ".vscode" / "settings.json").write_text(WORKSPACE_SETTINGS)
    (ws / "go.mod").write_text("module example.com/m\n\ngo 1.22\n\ntoolchain go1.99.0\n")
    return env, ws


def test_values_match_go_env_for_each_consumer(
        lab_home: tuple[dict[str, str], Path],
        real_go_env: Callable[[dict[str, str]], dict[str, str]]) -> None:
    env, ws = lab_home
    recs = records(run_explain(env, "--workspace", str(ws), "--format", "json"))

    expected = {
        "go": real_go_env(env),
        "vscode-tools": real_go_env(dict(env, GOPROXY="direct", GOPRIVATE="corp.example/*",
                                         GOINSECURE="insecure.example")),
        "gopls": real_go_env(dict(env, GOPROXY="direct", GOPRIVATE="corp.example/*",
                                  GOINSECURE="insecure.example", GOFLAGS="-mod=mod")),
    }
    for consumer, truth in expected.items():
        got = settings_of(recs, consumer)
        for name in (*CHAIN_VARS, "GOTELEMETRY"):
            assert got[name]["value"] == truth[name], (consumer, name, got[name])

    go = settings_of(recs, "go")
    goenv = str(Path(env["HOME"]) / ".config" / "go" / "env")
    assert go["GOPROXY"]["source"] == f"GOENV file {goenv}"
    assert go["GOSUMDB"]["source"] == "$GOROOT/go.env (default)"
    tools = settings_of(recs, "vscode-tools")
    user_file = str(Path(env["HOME"]) / ".config" / "Code" / "User" / "settings.json")
    assert tools["GOPROXY"]["source"] == f"go.toolsEnvVars in {user_file}"
    assert tools["GONOSUMDB"]["source"] == f"GOPRIVATE from go.toolsEnvVars in {user_file}"
    assert tools["GOINSECURE"]["source"].endswith(str(ws / ".vscode" / "settings.json"))
    assert settings_of(recs, "gopls")["GOFLAGS"]["source"] == f"gopls.env in {user_file}"
    install = settings_of(recs, "vscode-tool-install")
    assert install["GOTOOLCHAIN"]["value"] == "auto"
    ext = settings_of(recs, "vscode-extension")
    assert ext["go.toolsManagement.checkForUpdates"]["value"] == "local"

    ctx = recs[0]
    assert ctx["go_version"] == "go1.27.3" and ctx["wanted_toolchain"] == "go1.99.0"
    switch = [r for r in recs if r["kind"] == "consequence" and r["consumer"] == "go"
              and r["case"] == "toolchain switch"][0]
    assert switch["hosts"] == ["goproxy.io", "sum.golang.org"]
    assert "asks for go1.99.0" in switch["detail"]
    # The go.mod's toolchain line never made explain itself download anything.
    assert not (Path(env["HOME"]) / "go" / "pkg" / "mod" / "cache" / "download").exists()

    release = [r for r in recs if r["kind"] == "consequence" and r["case"] == "Go release check"][0]
    assert release["hosts"] == []
    lint = [r for r in recs if r["kind"] == "lint"]
    assert any(r["code"] == "vscode-unknown-setting" and r["location"].endswith("go.goproxy")
               for r in lint)
    assert any(r["code"] == "goflags-fetch" and "-mod=mod" in r["detail"] for r in lint)
    assert any(r["code"] == "direct-with-default-sumdb" for r in lint)


def test_files_only_mode_matches_go_env(lab_home: tuple[dict[str, str], Path], go_bin: str,
                                        real_go_env: Callable[[dict[str, str]], dict[str, str]]) -> None:
    env, ws = lab_home
    truth = real_go_env(env)
    env = dict(env, GOROOT=truth["GOROOT"])
    recs = records(run_explain(env, "--workspace", str(ws), "--no-go", "--format", "json"))
    assert recs[0]["go_binary"] is None and recs[0]["go_version"] == "go1.27.3"  # from $GOROOT/VERSION
    go = settings_of(recs, "go")
    for name in (*CHAIN_VARS, "GOTELEMETRY"):
        assert go[name]["value"] == truth[name], name


@pytest.mark.parametrize("where", ["go.mod", "go.work"])
def test_proxy_line_is_reported_with_the_go_commands_own_error(
        where: str, home: Path, go_bin: str, tmp_path: Path) -> None:
    env = dict(base_env(home), PATH=f"{Path(go_bin).parent}:/usr/bin:/bin")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "go.mod").write_text("module example.com/m\n\ngo 1.22\n" +
                               ("\nproxy goproxy.cn,direct\n" if where == "go.mod" else ""))
    if where == "go.work":
        (ws / "go.work").write_text("go 1.22\n\nuse .\nproxy goproxy.cn\n")
    own = subprocess.run([go_bin, "list", "-m"], env=dict(env, GOTOOLCHAIN="local", GOPROXY="off"),  # noqa: S603
                         cwd=ws, capture_output=True, text=True, check=False)
    assert own.returncode != 0 and "unknown directive: proxy" in own.stderr

    recs = records(run_explain(env, "--workspace", str(ws), "--format", "json"))
    (finding,) = [r for r in recs if r["kind"] == "lint" and "unknown-directive" in r["code"]]
    assert finding["evidence"] == own.stderr.strip()
    line = 5 if where == "go.mod" else 4
    assert finding["location"] == f"{ws / where}:{line}" and finding["severity"] == "error"


def test_variables_go_does_not_read(home: Path, go_bin: str, tmp_path: Path) -> None:
    env = dict(base_env(home), PATH=f"{Path(go_bin).parent}:/usr/bin:/bin",
               GONOSUMCHECK="1", GOTELEMETRY="off")
    recs = records(run_explain(env, "--workspace", str(tmp_path), "--format", "json"))
    lint = {r["code"]: r for r in recs if r["kind"] == "lint"}
    assert lint["gonosumcheck"]["evidence"] == "go: unknown go command variable GONOSUMCHECK"
    assert "still prints local" in lint["gotelemetry-env"]["evidence"]
    assert settings_of(recs, "go")["GOTELEMETRY"]["value"] == "local"
    assert not (home / ".config" / "go" / "env").exists()  # the probe used a scratch GOENV


def test_credentials_are_redacted_unless_asked(home: Path, tmp_path: Path) -> None:
    env = dict(base_env(home), GOPROXY="https://alice:s3cret@goproxy.cn,direct",
               HTTPS_PROXY="http://bob:hunter2@127.0.0.1:3128")
    for fmt in ("table", "json", "csv", "jsonl"):
        proc = run_explain(env, "--no-go", "--workspace", str(tmp_path), "--format", fmt)
        assert proc.returncode == 0, proc.stderr
        assert "s3cret" not in proc.stdout and "hunter2" not in proc.stdout
        assert "xxxxx@goproxy.cn" in proc.stdout
    proc = run_explain(env, "--no-go", "--no-redact", "--workspace", str(tmp_path))
    assert "alice:s3cret@goproxy.cn" in proc.stdout


def test_table_reads_per_consumer_and_output_file_is_private(lab_home: tuple[dict[str, str], Path],
                                                             tmp_path: Path) -> None:
    env, ws = lab_home
    out = tmp_path / "explain.txt"
    proc = run_explain(env, "--workspace", str(ws), "--output", str(out))
    assert proc.returncode == 0, proc.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    text = out.read_text()
    for heading in ("== go\n", "== vscode-tools\n", "== gopls\n", "== vscode-extension\n", "== lint:"):
        assert heading in text
    goenv = Path(env["HOME"]) / ".config" / "go" / "env"
    assert "  GOPROXY      https://goproxy.io,direct\n" in text
    assert f"<- GOENV file {goenv}" in " ".join(text.split())
    assert "to stop: GOTOOLCHAIN=local" in text


def test_bad_settings_file_is_one_lint_line_not_a_traceback(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "settings.json"
    bad.write_text('{\n  "go.toolsEnvVars": {"GOPROXY": "direct"\n')
    proc = run_explain(base_env(home), "--no-go", "--workspace", str(tmp_path),
                       "--vscode-settings", str(bad), "--format", "json")
    lint = [r for r in records(proc) if r["kind"] == "lint"]
    assert any(r["code"] == "settings-unreadable" and str(bad) in r["detail"] for r in lint)
    assert "Traceback" not in proc.stderr


def test_missing_workspace_is_a_usage_error(home: Path, tmp_path: Path) -> None:
    proc = run_explain(base_env(home), "--no-go", "--workspace", str(tmp_path / "nope"))
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("proxytrace:") and "Traceback" not in proc.stderr
