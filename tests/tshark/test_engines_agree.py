"""Both engines give the same contacts on every capture, on the fields both can know.

The builtin engine reassembles and parses by hand; the tshark engine takes Wireshark's
dissection. Frames are left out of the comparison (tshark numbers the reassembled segments its
own way); everything a contact says about who talked to whom, with which name, fingerprint,
answer or request, which process (from pcapng comments) and which findings, must match.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.base.model import Contact
from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES, SHARED_CAPTURES

TSHARK = shutil.which("tshark")
LAB = sorted(CAPTURES.glob("*.pcapng"))
PUBLIC = sorted(p for p in SHARED_CAPTURES.glob("*/*") if p.suffix in (".pcap", ".pcapng"))
# Captures where Wireshark's dissectors and the builtin engine legitimately differ; each entry
# says why, so the list cannot grow silently.
NOT_COMPARABLE: dict[str, str] = {}


def _key(c: Contact) -> tuple[Any, ...]:
    base: tuple[Any, ...] = (c.layer, c.host, c.transport, c.src, c.sport, c.dst, c.dport,
                             c.process.pid if c.process else None,  # from pcapng comments
                             tuple(sorted(f.kind for f in c.findings)),
                             (c.via_proxy.address, c.via_proxy.port, c.via_proxy.kind)
                             if c.via_proxy else None, c.notes if c.layer == "socks" else ())
    if c.tls is not None:
        base += (c.tls.sni, c.tls.alpn, c.tls.ja4)
    if c.dns is not None:
        base += (c.dns.qname, c.dns.qtype, c.dns.answers)
    if c.http is not None and c.layer == "http":
        base += (c.http.method, c.http.path, c.http.status)
    return base


def _contacts(path: Path, engine: str) -> Counter[tuple[Any, ...]]:
    opts = AnalyzeOptions(watch=WatchList.build([], match_all=True), engine=engine,
                          expect_path=CAPTURES / "lab-expect.toml")
    return Counter(_key(c) for c in analyze_files([path], opts).contacts)


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
@pytest.mark.parametrize("path", LAB + PUBLIC, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_same_contacts(path: Path, tmp_path: Path) -> None:
    if path.name in NOT_COMPARABLE:
        pytest.skip(NOT_COMPARABLE[path.name])
    lab = path.parent == CAPTURES
    # A private copy: both engines must read the same bytes even if the lab re-records meanwhile.
    path = Path(shutil.copy(path, tmp_path / path.name))
    builtin = _contacts(path, "builtin")
    tshark = _contacts(path, "tshark")
    if lab:
        assert builtin, f"{path.name}: a lab capture without contacts compares nothing"
    only_builtin = builtin - tshark
    only_tshark = tshark - builtin
    assert not only_builtin and not only_tshark, (
        f"only builtin: {sorted(only_builtin, key=repr)[:5]}\n"
        f"only tshark: {sorted(only_tshark, key=repr)[:5]}")
