"""The committed filters/ directory is exactly what `proxytrace filters export` generates."""

from __future__ import annotations

from pathlib import Path

from analyzer.filters.export import BPF_FILE, default_spec, export
from analyzer.filters.libpcap import check_filter

from .conftest import ROOT

COMMITTED = ROOT / "filters"


def _tree(base: Path) -> dict[str, bytes]:
    return {str(p.relative_to(base)): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}


def test_committed_filters_equal_a_fresh_export(tmp_path: Path) -> None:
    assert COMMITTED.is_dir(), "filters/ is missing: run `make filters`"
    export(tmp_path / "filters")
    fresh, committed = _tree(tmp_path / "filters"), _tree(COMMITTED)
    assert sorted(fresh) == sorted(committed), "run `make filters` and commit the result"
    for name in fresh:
        assert fresh[name] == committed[name], f"filters/{name} is stale: run `make filters`"


def test_export_is_reproducible(tmp_path: Path) -> None:
    export(tmp_path / "a")
    export(tmp_path / "b")
    assert _tree(tmp_path / "a") == _tree(tmp_path / "b")


def test_committed_bpf_file_compiles() -> None:
    expression = (COMMITTED / BPF_FILE).read_text().strip()
    assert expression == default_spec().capture_filter
    assert set(check_filter(expression)) == {"EN10MB", "LINUX_SLL2"}
