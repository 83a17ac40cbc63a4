"""Fixtures for the filter tests: the captures they run over and a throw-away Wireshark config."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from analyzer.events.tshark.binary import tshark_env

ROOT = Path(__file__).resolve().parents[2]
LAB_CAPTURES = ROOT / "captures"
SHARED = ROOT.parent / "shared" / "captures"


def lab_captures() -> list[Path]:
    return sorted(LAB_CAPTURES.glob("*.pcapng"))


def public_captures() -> list[Path]:
    if not SHARED.is_dir():
        return []
    return sorted(p for p in SHARED.glob("*/*") if p.suffix in (".pcap", ".pcapng"))


def capture_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name}"


needs_tshark = pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark not installed")
needs_editcap = pytest.mark.skipif(shutil.which("editcap") is None,
                                   reason="editcap (Wireshark tools) not installed")
needs_tcpdump = pytest.mark.skipif(shutil.which("tcpdump") is None, reason="tcpdump not installed")


def _tshark_args(capture: Path, expression: str, fields: Sequence[str],
                 profile: str | None) -> list[str]:
    args = ["tshark", "-n", "-r", str(capture), "-Y", expression, "-T", "fields",
            "-E", "separator=|"]
    for f in fields:
        args += ["-e", f]
    if profile:
        args[1:1] = ["-C", profile]
    return args


def tshark_rows(capture: Path, expressions: Sequence[str], fields: Sequence[str] = ("frame.number",),
                config_dir: Path | None = None, profile: str | None = None) -> list[list[list[str]]]:
    """For each display filter, the selected frames' ``fields`` (tshark runs in parallel).

    Fails the test on any tshark error, including a filter tshark rejects.
    """
    env = tshark_env(config_dir)
    procs = [subprocess.Popen(_tshark_args(capture, e, fields, profile),  # noqa: S603
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for e in expressions]
    out = []
    for expression, proc in zip(expressions, procs, strict=True):
        stdout, stderr = proc.communicate(timeout=120)
        errors = [ln for ln in stderr.splitlines() if ln.strip() and "Running as user" not in ln]
        assert proc.returncode == 0 and not errors, \
            f"tshark failed on {capture} with {expression!r}: {errors}"
        out.append([line.split("|") for line in stdout.splitlines() if line])
    return out


def tshark_frames(capture: Path, expression: str, config_dir: Path | None = None,
                  profile: str | None = None) -> list[int]:
    """Frame numbers tshark selects with display filter ``expression`` (raises on a tshark error)."""
    rows = tshark_rows(capture, [expression], config_dir=config_dir, profile=profile)[0]
    return [int(r[0]) for r in rows]
