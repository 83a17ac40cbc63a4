"""The analyzer on every recorded lab capture reports exactly the contacts its manifest expects."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files

from .scenarios import SCENARIOS

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
EXPECT = CAPTURES / "lab-expect.toml"
# Findings that only a decrypted session can show (the redirect is inside TLS): a scenario that
# expects one is analyzed by the tshark engine with the scenario's key log.
NEEDS_DECRYPTION = {"http-downgrade-redirect"}


def _load(name: str) -> tuple[dict, list]:
    manifest_path = CAPTURES / f"{name}.json"
    if not manifest_path.exists():
        pytest.skip(f"{manifest_path} not recorded (make lab)")
    manifest = json.loads(manifest_path.read_text())
    watch = WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]])
    if any(k in NEEDS_DECRYPTION for e in manifest["expected"] for k in e["findings"]):
        keylog = CAPTURES / f"{name}.keylog"
        if shutil.which("tshark") is None:
            pytest.skip(f"{name} expects findings inside TLS: decrypting needs tshark, not installed")
        assert keylog.exists(), f"{keylog} not recorded (make lab)"
        options = AnalyzeOptions(watch=watch, expect_path=EXPECT, engine="tshark", keylog=keylog)
    else:
        options = AnalyzeOptions(watch=watch, expect_path=EXPECT)
    report = analyze_files([CAPTURES / f"{name}.pcapng"], options)
    return manifest, report.contacts


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_contacts_match_manifest(name: str) -> None:
    manifest, contacts = _load(name)
    got = Counter((c.host, c.layer) for c in contacts)
    want = Counter((e["host"], e["layer"]) for e in manifest["expected"])
    assert got == want, f"missing {dict(want - got)}, extra {dict(got - want)}"


@pytest.mark.parametrize("name", SCENARIOS)
def test_processes_match_manifest(name: str) -> None:
    """The recorded captures carry process comments (eBPF tier while recording): the analyzer
    must name the same process the logs say made each contact."""
    manifest, contacts = _load(name)
    if not (manifest.get("annotation") or {}).get("tier"):
        pytest.skip(f"{name} was recorded without process comments")
    got = Counter((c.host, c.layer, c.process.comm if c.process else None) for c in contacts)
    want = Counter((e["host"], e["layer"], e["process"]) for e in manifest["expected"])
    assert got == want, f"missing {dict(want - got)}, extra {dict(got - want)}"


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_findings_match_manifest(name: str) -> None:
    """Each (host, layer) carries the finding kinds the scenario is meant to show, and clean
    contacts (under the lab's expectations file) carry none."""
    manifest, contacts = _load(name)
    got = Counter((c.host, c.layer, tuple(sorted({f.kind for f in c.findings}))) for c in contacts)
    want = Counter((e["host"], e["layer"], tuple(sorted(set(e["findings"]))))
                   for e in manifest["expected"])
    assert got == want, f"missing {dict(want - got)}, extra {dict(got - want)}"
