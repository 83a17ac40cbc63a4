"""Shared fixtures: paths to the project's captures and the public ones in ../shared."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ROOT / "captures"
# The public captures sit beside the checkout (../shared/captures); a checkout elsewhere (a
# second worktree) names them with PROXYTRACE_SHARED_CAPTURES.
SHARED_CAPTURES = Path(os.environ.get("PROXYTRACE_SHARED_CAPTURES")
                       or ROOT.parent / "shared" / "captures")


@pytest.fixture
def shared_captures() -> Path:
    if not SHARED_CAPTURES.is_dir():
        pytest.skip(f"public captures not present at {SHARED_CAPTURES}")
    return SHARED_CAPTURES
