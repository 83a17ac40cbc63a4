"""Fixtures for the filter tests: the captures they run over and a throw-away Wireshark config."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.filters.tshark import tshark_env

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


def tshark_frames(capture: Path, expression: str, config_dir: Path | None = None,
                  profile: str | None = None) -> list[int]:
    """Frame numbers tshark selects with display filter ``expression`` (raises on a tshark error)."""
    args = ["tshark", "-n", "-r", str(capture), "-Y", expression, "-T", "fields",
            "-e", "frame.number"]
    if profile:
        args[1:1] = ["-C", profile]
    done = subprocess.run(args, env=tshark_env(config_dir), capture_output=True,  # noqa: S603
                          text=True, timeout=120, check=False)
    errors = [ln for ln in done.stderr.splitlines() if ln.strip() and "Running as user" not in ln]
    assert done.returncode == 0 and not errors, f"tshark failed on {capture}: {errors}"
    return [int(x) for x in done.stdout.split()]
