"""The tshark engine gives the same ALPN names and JA4 as the builtin engine for odd ALPN bytes.

tshark prints ALPN names as text that loses bytes (above 0x7f they become U+FFFD, a NUL ends
the text, an empty name has no text), so the engine reads such ClientHellos again with their
raw bytes. The crafted ClientHellos and their expected JA4 come from tests/protocols/
test_tls_alpn.py (FoxIO's JA4.md rule). Wireshark's own ``tls.handshake.ja4`` field exists
from Wireshark 4.2 on; Debian 12's tshark (4.0) has none, so it is not compared here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scapy.utils import wrpcap

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.core.test_engine import Conversation
from tests.protocols.test_tls_alpn import CASES, _expected_ja4, crafted_hello

TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_engine_reads_odd_alpn_bytes(tmp_path: Path) -> None:
    packets = []
    for i, (value, _part, _how) in enumerate(CASES):
        hello = crafted_hello(None if value is None else [value, b"h2"])
        packets += Conversation(sport=42000 + i).handshake().client(hello).packets
    path = tmp_path / "alpn.pcap"
    wrpcap(str(path), packets)
    results = {}
    for engine in ("builtin", "tshark"):
        opts = AnalyzeOptions(watch=WatchList.build(["example.com"]), engine=engine)
        report = analyze_files([path], opts)
        assert report.warnings == []  # every ClientHello with odd ALPN bytes was read again
        results[engine] = {c.sport: (c.tls.alpn, c.tls.ja4) for c in report.contacts
                           if c.tls is not None}
    want_ja4 = {42000 + i: _expected_ja4(part, value is not None)[0]
                for i, (value, part, _how) in enumerate(CASES)}
    assert {k: v[1] for k, v in results["tshark"].items()} == want_ja4
    assert results["tshark"] == results["builtin"]
    # the empty first name is kept (tshark's text alone drops it)
    assert results["tshark"][42001][0] == ("", "h2")
