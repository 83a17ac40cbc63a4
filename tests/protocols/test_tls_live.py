"""Fresh handshakes from the real clients on this machine, through tests/data/tls/record.py.

The stored recordings pin the parser; this checks that today's go, node and curl still produce
the fingerprints the client-inference table and GO_NETWORK_FACTS.md section 9 rely on.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from analyzer.protocols.tls import parse_client_hello, parse_server_flight

ROOT = Path(__file__).resolve().parents[2]
RECORDER = ROOT / "tests" / "data" / "tls" / "record.py"
GO = ROOT / ".venv" / "bin" / "go"

EXPECTED_JA4 = {
    "go1.27.3": "t13d1312h2_f57a46bbacb6_f50d94e863eb",
    "node": "t13d591000_a33745022dd6_1f22a2ca17c4",
    "curl": "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not GO.exists():
        pytest.skip(f"the go command is not installed at {GO} (make install)")
    out = tmp_path_factory.mktemp("tls-recording")
    subprocess.run([sys.executable, str(RECORDER), str(out)], check=True, timeout=300,  # noqa: S603 - fixed argv
                   capture_output=True)
    return out


def test_go_command_fingerprint(recorded: Path) -> None:
    versions = json.loads((recorded / "PROVENANCE.json").read_text())["versions"]
    if "go1.27.3 " not in versions["go"] + " ":
        pytest.skip(f"expected go1.27.3, found {versions['go']}")
    hello = parse_client_hello((recorded / "go1.27.3.client.bin").read_bytes())
    assert hello is not None and hello.sni == "localhost"
    assert hello.ja4 == EXPECTED_JA4["go1.27.3"]
    assert hello.ja3 == "03117a8ed39ef02427ebbc39f121275c"


def test_go_against_tls12_server_shows_chain(recorded: Path) -> None:
    flight = parse_server_flight((recorded / "go1.27.3-tls12.server.bin").read_bytes())
    assert [c.subject_cn for c in flight.certificates] == ["localhost", "proxytrace test CA"]


# The versions the expected fingerprints were measured with (other builds offer other suites).
MEASURED = {"node": "v20.", "curl": "curl 7.88.1 "}


@pytest.mark.parametrize("client", ["node", "curl"])
def test_other_client_fingerprints(recorded: Path, client: str) -> None:
    if shutil.which(client) is None:
        pytest.skip(f"{client} is not installed")
    version = json.loads((recorded / "PROVENANCE.json").read_text())["versions"][client]
    if not version.startswith(MEASURED[client]):
        pytest.skip(f"fingerprint measured with {MEASURED[client].strip()}, found {version}")
    hello = parse_client_hello((recorded / f"{client}.client.bin").read_bytes())
    assert hello is not None and hello.sni == "localhost"
    assert hello.ja4 == EXPECTED_JA4[client]
