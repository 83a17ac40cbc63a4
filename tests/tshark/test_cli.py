"""``proxytrace analyze --engine tshark`` and ``--keylog`` from the command line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.base.exitcodes import MISSING_TOOL
from tests.conftest import CAPTURES

TSHARK = shutil.which("tshark")
SCENARIO = CAPTURES / "editor-node"


def _proxytrace(args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - fixed argument list
        [sys.executable, "-c", "from analyzer.cli import main; main()", *args],
        capture_output=True, text=True, timeout=120, env=env, check=False,
        cwd=Path(__file__).resolve().parents[2])


@pytest.mark.skipif(not SCENARIO.with_suffix(".pcapng").exists(), reason="lab capture not recorded")
def test_missing_tshark_is_one_line_and_exit_4(tmp_path: Path) -> None:
    # A PATH with no tshark on it: the command must say so, not trace back.
    env = {"PATH": str(tmp_path), "HOME": str(tmp_path), "LC_ALL": "C"}
    result = _proxytrace(["analyze", "-q", "--engine", "tshark",
                          str(SCENARIO.with_suffix(".pcapng"))], env)
    assert result.returncode == MISSING_TOOL
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "tshark" in lines[0], result.stderr


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.skipif(not SCENARIO.with_suffix(".keylog").exists(), reason="key log not recorded")
def test_keylog_names_operations_and_never_leaks_secrets() -> None:
    keylog = SCENARIO.with_suffix(".keylog")
    manifest = json.loads(SCENARIO.with_suffix(".json").read_text())
    watch = [arg for host in manifest["watch"] for arg in ("--watch", host)]
    result = _proxytrace(["analyze", "-q", "-f", "json", "--keylog", str(keylog), *watch,
                          str(SCENARIO.with_suffix(".pcapng"))])
    assert result.returncode == 0, result.stderr
    records = json.loads(result.stdout)
    tls = [r for r in (records if isinstance(records, list) else records["contacts"])
           if r["layer"] == "tls"]
    assert tls and all(r["operation"] and r["operations"] for r in tls)
    assert {r["operation"] for r in tls} == {"gopls-version-check", "go-release-check"}
    secrets = {line.split()[-1] for line in keylog.read_text().splitlines() if line.strip()}
    assert not any(secret in result.stdout for secret in secrets)
    assert str(keylog) not in result.stdout
