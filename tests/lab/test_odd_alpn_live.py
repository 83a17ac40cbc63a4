"""Odd ALPN values sent by the real ``openssl s_client`` in the lab get FoxIO's JA4 ALPN part.

``openssl s_client -alpn`` sends the protocol names it is given byte for byte (a
comma-separated list), so a real TLS stack puts GREASE-like, one-byte, 0xff and non-ASCII first
values on the wire. The expected ALPN parts come from tests/protocols/test_tls_alpn.py (FoxIO's
JA4.md rule, the hex worked out there); both engines must give them.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.protocols.test_tls_alpn import CASES

from .netlab import Lab

pytestmark = pytest.mark.lab

# first ALPN values an argument can carry (no NUL, no comma, not empty)
SENT = [b"\x0a\x0a", b"x", b"\xff", b"\xff\xff", b"\xe9x", b"x\xe9", b" ", b"a ", b"h2"]
PART = {value: part for value, part, _how in CASES}


def test_openssl_sends_odd_alpn(lab: Lab, tmp_path: Path) -> None:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    capture = tmp_path / "odd-alpn.pcapng"
    with lab.capture(capture):
        for value in SENT:
            # the argument is bytes (os.fsencode gives them back as they are); stdin at EOF
            # makes s_client close after the handshake
            argv = ["openssl", "s_client", "-connect", "proxy.golang.org:443", "-servername",
                    "proxy.golang.org", "-alpn",
                    (value + b",http/1.1").decode("utf-8", "surrogateescape")]
            subprocess.run(lab.client_cmd(argv), env=lab.client_env(),  # noqa: S603 - a list
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=30,
                           check=False, cwd=lab.tmp)
    for engine in ("builtin", *(["tshark"] if shutil.which("tshark") else [])):
        # the default watch list has the Go hosts
        report = analyze_files([capture], AnalyzeOptions(engine=engine))
        tls = sorted((c for c in report.contacts if c.layer == "tls"), key=lambda c: c.ts)
        assert len(tls) == len(SENT), engine
        for contact, value in zip(tls, SENT, strict=True):
            assert contact.tls is not None
            assert contact.tls.alpn[1] == "http/1.1", engine
            assert contact.tls.ja4[8:10] == PART[value], (engine, value)
