"""Cross-check: the addresses, names and response codes we read agree with Wireshark's dissector."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.protocols.dns import parse_dns

from .pcap_payloads import udp_payloads

DATA = Path(__file__).resolve().parent.parent / "data" / "dns"
FIELDS = ["frame.number", "dns.qry.name", "dns.a", "dns.aaaa", "dns.flags.rcode",
          "dns.svcb.svcparam.ipv4hint.ip"]
RCODES = {"0": "NOERROR", "3": "NXDOMAIN"}


def tshark_rows(capture: Path) -> dict[int, list[str]]:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed")
    args = [tshark, "-n", "-r", str(capture), "-Y", "dns || mdns", "-T", "fields", "-E", "separator=|"]
    for name in FIELDS:
        args += ["-e", name]
    out = subprocess.run(args, capture_output=True, text=True, timeout=60,  # noqa: S603
                         check=True).stdout
    rows = [line.split("|") for line in out.splitlines() if line]
    return {int(row[0]): row[1:] for row in rows}


def _set(text: str) -> set[str]:
    # Names are compared lower-case: we normalise them, Wireshark shows them as sent.
    return {item.lower() for item in text.split(",") if item}


@pytest.mark.parametrize("capture", sorted(p.name for p in DATA.glob("*.pcap*")))
def test_agrees_with_tshark(capture: str) -> None:
    rows = tshark_rows(DATA / capture)
    ours = {p.frame: parse_dns(p.data) for p in udp_payloads(DATA / capture)}
    assert set(rows) == set(ours)
    for frame, (qnames, v4, v6, rcode, hints) in rows.items():
        message = ours[frame]
        records = message.answers + message.authority + message.additional
        assert _set(qnames) == {q.name for q in message.questions}, frame
        assert _set(v4) == {r.value for r in records if r.rtype == "A"}, frame
        assert _set(v6) == {r.value for r in records if r.rtype == "AAAA"}, frame
        assert _set(hints) == {h for r in records if r.svcb for h in r.svcb.ipv4hint}, frame
        if message.is_response:
            assert RCODES[rcode] == message.rcode, frame
