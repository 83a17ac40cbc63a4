"""Text from the capture that is not UTF-8 does not break the tshark engine (a regression).

tshark copies a pcapng packet comment into its JSON byte for byte; a damaged one (a flipped
bit in a lab capture's "ParentArgs: ..." comment) made pyshark's JSON reading raise
UnicodeDecodeError. The packet is now read with the bad bytes replaced.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from scapy.layers.dns import DNS, DNSQR
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether

from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.core.test_capture_fuzz import SHB, _block, _opt

TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_comment_that_is_not_utf8(tmp_path: Path) -> None:
    frame = bytes(Ether() / IP(src="10.0.0.2", dst="10.0.0.53") / UDP(sport=5353, dport=53)
                  / DNS(id=7, rd=1, qd=DNSQR(qname="proxy.golang.org")))
    idb = _block(1, b"\x01\x00\x00\x00\xff\xff\x00\x00")
    epb = _block(6, b"".join([
        (0).to_bytes(4, "little"), (0).to_bytes(4, "little"), (1_000_000).to_bytes(4, "little"),
        len(frame).to_bytes(4, "little"), len(frame).to_bytes(4, "little"),
        frame + b"\x00" * (-len(frame) % 4),
        _opt(1, b"PID: 4242\nCmd: /usr/bin/go\nArgs: go mod\xaedownload"), _opt(0, b"")]))
    path = tmp_path / "comment.pcapng"
    path.write_bytes(SHB + idb + epb)
    watch = WatchList.build(["proxy.golang.org"])
    builtin = analyze_files([path], AnalyzeOptions(watch=watch))
    tshark = analyze_files([path], AnalyzeOptions(watch=watch, engine="tshark"))
    assert [c.dns.qname for c in tshark.contacts if c.dns] == ["proxy.golang.org"]
    assert [c.process.pid for c in tshark.contacts if c.process] == \
        [c.process.pid for c in builtin.contacts if c.process] == [4242]
