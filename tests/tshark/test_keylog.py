"""With the lab's key logs, TLS contacts carry the Go operations the server logged for them.

The lab's server log (in each manifest) is the ground truth. The lab server writes the secrets of
every connection it terminates into the scenario's key log (the go command's too, though
crypto/tls writes none itself), so every recorded TLS connection can be decrypted, and the
operations read from the decrypted requests must be exactly those the server saw on that
connection, in order. A connection is matched to the server's log by its ClientHello random
(which the server logs per handshake): that also covers connections tunnelled through the
forward proxy, whose client port the server never sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from analyzer.base.model import Contact
from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.contacts.operations import operation_for
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES
from tests.lab.scenarios import SCENARIOS as LAB_SCENARIOS

TSHARK = shutil.which("tshark")
SCENARIOS = list(LAB_SCENARIOS)

pytestmark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
# Connections (scenario, server port) Wireshark dissects but does not decrypt, each with why
# (docs/tshark-engine.md); the tests check they stay undecrypted, so the list cannot rot.
NOT_DECRYPTED: dict[tuple[str, int], str] = {
    ("socks-curl", 1081): "Wireshark 4.0 decrypts TLS inside a SOCKS tunnel on port 1080 only: "
                          "a port decoded as socks (ssh -D on 1081) is dissected, not decrypted",
}


def _decryptable(scenario: str, contacts: list[Contact]) -> list[Contact]:
    for c in contacts:
        if (scenario, c.dport) in NOT_DECRYPTED:
            assert c.http is None and c.operations == (), NOT_DECRYPTED[(scenario, c.dport)]
    return [c for c in contacts if (scenario, c.dport) not in NOT_DECRYPTED]


def _manifest(scenario: str) -> dict[str, Any]:
    path = CAPTURES / f"{scenario}.json"
    if not path.exists():
        pytest.skip(f"{path} not recorded (make lab)")
    return json.loads(path.read_text())


def _server_operations(manifest: dict[str, Any]) -> dict[str, list[str]]:
    """ClientHello random -> the Go operations of the requests on that connection, in order."""
    by_conn: dict[tuple[str, int], list[str]] = defaultdict(list)
    for entry in manifest["server_log"]:
        if entry.get("event") == "request" and entry.get("tls"):
            op = operation_for(entry["host"], entry["path"], entry["method"],
                               entry.get("user_agent"))
            if op is not None:
                by_conn[(entry["client_ip"], entry["client_port"])].append(op)
    out = {}
    for entry in manifest["server_log"]:
        if entry.get("event") == "tls" and entry.get("client_random"):
            out[entry["client_random"]] = by_conn.get((entry["client_ip"], entry["client_port"]), [])
    return out


def _client_randoms(capture: Path) -> dict[int, str]:
    """Client port -> ClientHello random, read by tshark (the key log is indexed by it)."""
    assert TSHARK is not None
    proc = subprocess.run(  # noqa: S603 - fixed argument list
        [TSHARK, "-r", str(capture), "-n", "-Y", "tls.handshake.type == 1", "-T", "fields",
         "-e", "tcp.srcport", "-e", "tls.handshake.random"],
        capture_output=True, text=True, timeout=120, check=True)
    out = {}
    for line in proc.stdout.splitlines():
        port, _, random = line.partition("\t")
        if port and random:
            out[int(port)] = random.replace(":", "").lower()
    return out


def _keyed_randoms(keylog: Path) -> set[str]:
    return {parts[1].lower() for parts in (line.split() for line in keylog.read_text().splitlines())
            if len(parts) == 3}


def _tls_contacts(scenario: str, manifest: dict[str, Any], keylog: Path | None) -> list[Contact]:
    opts = AnalyzeOptions(watch=WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]]),
                          engine="tshark", keylog=keylog)
    report = analyze_files([CAPTURES / f"{scenario}.pcapng"], opts)
    return [c for c in report.contacts if c.layer == "tls"]


def _keylog(scenario: str, manifest: dict[str, Any]) -> Path | None:
    """The scenario's key log; None (checked) when the scenario made no TLS connection."""
    path = CAPTURES / f"{scenario}.keylog"
    handshakes = [e for e in manifest["server_log"] if e.get("event") == "tls"]
    assert path.exists() == bool(handshakes), f"{scenario}: {len(handshakes)} TLS handshakes " \
        f"in the server log, key log {'present' if path.exists() else 'missing'}"
    return path if path.exists() else None


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_keylog_holds_every_recorded_connection(scenario: str) -> None:
    """Every ClientHello in the capture has its secrets in the scenario's key log."""
    manifest = _manifest(scenario)
    keylog = _keylog(scenario, manifest)
    randoms = _client_randoms(CAPTURES / f"{scenario}.pcapng")
    if keylog is None:
        assert randoms == {}, f"{scenario}: TLS on the wire but no key log"
        return
    assert randoms, f"{scenario}: a key log but no ClientHello in the capture"
    keyed = _keyed_randoms(keylog)
    missing = {port: r for port, r in randoms.items() if r not in keyed}
    assert missing == {}, f"{scenario}: connections without keys (client port: random)"
    # Server-side randoms are those on the wire: the server log and the capture agree.
    logged = {e["client_random"] for e in manifest["server_log"] if e.get("event") == "tls"}
    assert logged == set(randoms.values())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_tls_contact_gets_its_operations(scenario: str) -> None:
    manifest = _manifest(scenario)
    contacts = _tls_contacts(scenario, manifest, _keylog(scenario, manifest))
    expected_tls = [e for e in manifest["expected"] if e["layer"] == "tls"]
    assert len(contacts) == len(expected_tls)
    if not expected_tls:
        return  # a plaintext-only scenario (mirror): nothing to decrypt, nothing reported
    expected = _server_operations(manifest)
    randoms = _client_randoms(CAPTURES / f"{scenario}.pcapng")
    decrypted = _decryptable(scenario, contacts)
    got = {c.sport: list(c.operations) for c in decrypted}
    want = {c.sport: expected[randoms[c.sport]] for c in decrypted}
    assert got == want
    for contact in decrypted:
        assert contact.http is not None, f"port {contact.sport}: nothing read inside TLS"
        assert contact.operation == (contact.operations[0] if contact.operations else None)
    # The manifest's own per-contact operations (derived when recording) say the same.
    skipped = [tuple(expected[randoms[c.sport]]) for c in contacts if c not in decrypted]
    assert sorted([*map(tuple, got.values()), *skipped]) == sorted(
        tuple(e["operations"]) for e in expected_tls)


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s != "mirror"])
def test_connections_without_keys_stay_opaque(scenario: str, tmp_path: Path) -> None:
    """With the keys of one connection only, that one is decrypted and nothing is invented for
    the others."""
    manifest = _manifest(scenario)
    full = _keylog(scenario, manifest)
    assert full is not None
    randoms = _client_randoms(CAPTURES / f"{scenario}.pcapng")
    contacts = _decryptable(scenario, _tls_contacts(scenario, manifest, full))
    keyed_port = min(c.sport for c in contacts)
    keep = randoms[keyed_port]
    partial = tmp_path / "one.keylog"
    partial.write_text("".join(f"{line}\n" for line in full.read_text().splitlines()
                               if len(line.split()) == 3 and line.split()[1].lower() == keep))
    expected = _server_operations(manifest)
    for contact in _tls_contacts(scenario, manifest, partial):
        if contact.sport == keyed_port:
            assert contact.http is not None
            assert list(contact.operations) == expected[keep]
        else:
            assert contact.operations == () and contact.http is None, contact.sport
