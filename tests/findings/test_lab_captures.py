"""Every lab capture yields exactly the findings its manifest expects (captures/*.json).

The manifests are derived from the lab's own logs (tests/lab/record.py); ``lab-expect.toml``
names the lab's addresses and CA, so clean scenarios must show no finding at all and the hijack
scenarios (dns-rewrite, interception, downgrade-redirect) exactly theirs.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
MANIFESTS = sorted(CAPTURES.glob("*.json"))
HIJACK_SCENARIOS = {"dns-rewrite", "interception", "downgrade-redirect"}

Key = tuple[str, str, int, str]


def _manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def _expected(manifest: dict[str, Any]) -> Counter[Key]:
    return Counter((e["layer"], e["host"], e["client_port"], kind)
                   for e in manifest["expected"] for kind in e["findings"])


def _found(capture: Path, manifest: dict[str, Any], **options: Any) -> Counter[Key]:
    opts = AnalyzeOptions(watch=WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]]),
                          expect_path=CAPTURES / "lab-expect.toml", **options)
    report = analyze_files([capture], opts)
    return Counter((c.layer, c.host, c.sport, f.kind) for c in report.contacts for f in c.findings)


def _unknown_ports(got: Counter[Key], want: Counter[Key]) -> Counter[Key]:
    """Where the logs could not tell a contact's client port (a tunnel through ``ssh -D``: ssh
    does not log it), the manifest has None; the found contact is compared without its port."""
    out: Counter[Key] = Counter()
    for (layer, host, port, kind), n in got.items():
        if (layer, host, port, kind) not in want and (layer, host, None, kind) in want:
            port = None
        out[(layer, host, port, kind)] += n
    return out


def _keylog_only(key: Key) -> bool:
    # A redirect inside TLS is only visible once the key log decrypts it.
    return key[0] == "tls" and key[3] == "http-downgrade-redirect"


@pytest.mark.skipif(not MANIFESTS, reason="no lab captures in captures/ (make lab records them)")
@pytest.mark.parametrize("manifest_path", MANIFESTS, ids=[p.stem for p in MANIFESTS])
def test_capture_findings_match_manifest(manifest_path: Path) -> None:
    manifest = _manifest(manifest_path)
    want = _expected(manifest)
    got = _unknown_ports(_found(manifest_path.with_suffix(".pcapng"), manifest), want)
    want_clear = Counter({k: n for k, n in want.items() if not _keylog_only(k)})
    assert got == want_clear
    if manifest["scenario"] in HIJACK_SCENARIOS:
        assert want, "a hijack scenario must expect findings"
    elif not want:
        assert got == Counter(), "clean scenarios yield no finding at all"


def _decryption_unavailable() -> str | None:
    if importlib.util.find_spec("analyzer.events.tshark.engine") is None:
        return "the tshark engine (key log decryption) is not part of this build"
    if shutil.which("tshark") is None:
        return "tshark is not installed"
    return None


@pytest.mark.skipif(not (CAPTURES / "downgrade-redirect.keylog").exists(),
                    reason="downgrade-redirect capture with key log not recorded")
@pytest.mark.skipif(_decryption_unavailable() is not None, reason=_decryption_unavailable() or "")
def test_downgrade_redirect_with_key_log() -> None:
    path = CAPTURES / "downgrade-redirect.json"
    manifest = _manifest(path)
    got = _found(path.with_suffix(".pcapng"), manifest, engine="tshark",
                 keylog=CAPTURES / "downgrade-redirect.keylog")
    assert got == _expected(manifest)


def _decrypted_exchanges(capture: Path, keylog: Path, evidence: Any) -> list[Any]:
    """HTTP exchanges inside TLS, read by tshark with the key log, on the engine's TLS flows."""
    from analyzer.events.records import HttpExchange
    from analyzer.protocols.http import HttpStreamParser

    tshark = shutil.which("tshark")
    assert tshark is not None
    proc = subprocess.run(  # noqa: S603 - fixed argv
        [tshark, "-r", str(capture), "-o", f"tls.keylog_file:{keylog}", "-Y", "http and tls",
         "-T", "fields", "-E", "separator=\t", "-e", "frame.number", "-e", "tcp.srcport",
         "-e", "tcp.dstport", "-e", "http.request.method", "-e", "http.request.uri",
         "-e", "http.host", "-e", "http.response.code", "-e", "http.location"],
        capture_output=True, text=True, timeout=120, check=True)
    by_port = {s.flow.client_port: s for s in evidence.tls}
    pending: dict[int, tuple[int, bytes]] = {}
    out = []
    for line in proc.stdout.splitlines():
        frame, sport, dport, method, uri, host, code, location = (line.split("\t") + [""] * 8)[:8]
        if method:
            pending[int(sport)] = (int(frame), f"{method} {uri} HTTP/1.1\r\nHost: {host}\r\n\r\n"
                                   .encode())
        elif code and int(dport) in pending and int(dport) in by_port:
            req_frame, raw = pending.pop(int(dport))
            head = f"HTTP/1.1 {code} X\r\n" + (f"Location: {location}\r\n" if location else "")
            request = HttpStreamParser(True).feed(raw)[0]
            parser = HttpStreamParser(False)
            parser.note_request_method("GET")
            response = parser.feed((head + "Content-Length: 0\r\n\r\n").encode())[0]
            session = by_port[int(dport)]
            out.append(HttpExchange(session.ts + 0.001, session.flow, request, (req_frame,),
                                    response, (int(frame),)))
    return out


@pytest.mark.skipif(not (CAPTURES / "downgrade-redirect.keylog").exists(),
                    reason="downgrade-redirect capture with key log not recorded")
@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
def test_downgrade_redirect_decrypted_by_tshark() -> None:
    """The redirect inside TLS, decrypted with the key log, lands on the TLS contact."""
    from analyzer.events.builtin.read import read_evidence_builtin
    from analyzer.pipeline import contacts_from_evidence

    path = CAPTURES / "downgrade-redirect.json"
    manifest = _manifest(path)
    capture = path.with_suffix(".pcapng")
    evidence = read_evidence_builtin(capture)
    decrypted = _decrypted_exchanges(capture, CAPTURES / "downgrade-redirect.keylog", evidence)
    assert decrypted, "tshark decrypted nothing with the key log"
    evidence.http.extend(decrypted)
    opts = AnalyzeOptions(watch=WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]]),
                          expect_path=CAPTURES / "lab-expect.toml")
    contacts = contacts_from_evidence(evidence, opts)
    got = Counter((c.layer, c.host, c.sport, f.kind) for c in contacts for f in c.findings)
    assert got == _expected(manifest)
