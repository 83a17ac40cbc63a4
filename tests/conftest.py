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


# The ebpf tier's kernel program runs under one of two programs (analyzer/attribution/
# ebpf_backend.py): the loader built at install, or bpftrace. Tests of the tier run once with each.
EBPF_LOADERS = ("core", "bpftrace")


def use_ebpf_loader(monkeypatch: pytest.MonkeyPatch, loader: str | None) -> None:
    """Force ``loader`` for this test (its subprocesses inherit the setting); skip when that
    loader, or the tier, cannot run here. ``None``: a test of another tier, nothing to do."""
    if loader is None:
        return
    from analyzer.attribution import ebpf, ebpf_backend

    monkeypatch.setenv(ebpf_backend.ENV, loader)
    reason = ebpf.unavailable_reason()
    if reason:
        pytest.skip(reason)


def tiers_with_loaders(*tiers: str) -> list[object]:
    """``("tier", "loader")`` parameters: each ebpf loader for "ebpf", None for other tiers."""
    return [pytest.param(t, loader, id=f"{t}-{loader}" if loader else t)
            for t in tiers for loader in (EBPF_LOADERS if t == "ebpf" else (None,))]


@pytest.fixture(params=EBPF_LOADERS)
def ebpf_loader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The test runs once with each ebpf loader (skipped where that one cannot run)."""
    use_ebpf_loader(monkeypatch, request.param)
    return str(request.param)
