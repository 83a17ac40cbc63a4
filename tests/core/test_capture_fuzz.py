"""Damaged captures: every capture in the repository, mutated, gives only the documented outcomes.

Each capture (captures/*.pcapng, the bundled test captures under tests/data, and the public
ones in ../shared/captures when present) is cut short, has bits flipped, bytes inserted or
deleted, or a stretch repeated, with a fixed seed per file, and goes through the whole
``analyze_files`` path (reader, decoder, reassembly, parsers, contacts, findings) and the jsonl
writer. The outcomes README.md documents:

- a report; a file that ends in damage is marked damaged and says so in a warning, and keeps
  every contact whose evidence lies before the damage;
- or ``CaptureError``, one line naming the file (a file that cannot be read at all).

Anything else (another exception type, a traceback) fails. A few mutated files also go through
the ``proxytrace analyze`` command: exit 0, or 3 with one-line messages, never a traceback.
"""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
import sys
from dataclasses import replace
from functools import cache
from pathlib import Path

import pytest

from analyzer.base.errors import CaptureError
from analyzer.base.model import Contact
from analyzer.base.watchlist import WatchList
from analyzer.pipeline import AnalyzeOptions, Report, analyze_files
from analyzer.report.contacts import render_report
from analyzer.source.capture_file import ReadState, open_capture
from tests.conftest import CAPTURES, ROOT, SHARED_CAPTURES

SEED = 20261203
MUTATIONS = 40          # per capture: well under a second for the largest
EXTENSIONS = (".pcap", ".pcapng", ".cap")
FILES = sorted(CAPTURES.glob("*.pcapng")) + sorted(
    p for p in (ROOT / "tests" / "data").rglob("*") if p.suffix in EXTENSIONS)
if SHARED_CAPTURES.is_dir():
    FILES += sorted(p for p in SHARED_CAPTURES.rglob("*") if p.suffix in EXTENSIONS)
OPTS = AnalyzeOptions(watch=WatchList.build([], match_all=True),
                      expect_path=CAPTURES / "lab-expect.toml")


def mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    kind = rng.choice(["cut", "flip", "insert", "delete", "repeat"])
    out = bytearray(data)
    at = rng.randrange(len(out))
    if kind == "cut":
        del out[at:]
    elif kind == "flip":
        for _ in range(rng.choice([1, 2, 8, 32])):
            pos = rng.randrange(len(out))
            out[pos] ^= 1 << rng.randrange(8)
    elif kind == "insert":
        out[at:at] = rng.randbytes(rng.choice([1, 3, 16, 300]))
    elif kind == "delete":
        del out[at:at + rng.choice([1, 3, 16, 300])]
    else:
        out[at:at] = out[at:at + rng.randrange(1, 2000)]
    return kind, bytes(out)


def _key(c: Contact) -> tuple[object, ...]:
    return (c.layer, c.host, c.transport, c.src, c.sport, c.dst, c.dport, c.frames[:1])


@cache
def _whole(path: Path) -> Report:
    return analyze_files([path], OPTS)


def _check_report(report: Report, kind: str, original: Report, tmp: Path) -> None:
    [stats] = report.stats
    if stats.damaged:
        assert stats.warnings, "damaged without a warning"
    render_report(report, "jsonl", str(tmp / "out.jsonl"))
    if kind != "cut":
        return
    # Cut short: nothing that was not there, and everything whose evidence came before the cut.
    got = {_key(c) for c in report.contacts}
    known = {_key(c) for c in original.contacts}
    flows = {k[1:-1] for k in known}
    for extra in got - known:
        # A SOCKS request whose tunnel was cut before its TLS or HTTP is a "socks" contact; in
        # the whole capture the same connection is the contact inside the tunnel.
        assert extra[0] == "socks" and extra[1:-1] in flows, extra
    before = {_key(c) for c in original.contacts if c.frames and max(c.frames) < stats.packets}
    assert before <= got, sorted(before - got)


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_mutated_capture_gives_a_report_or_one_line(path: Path, tmp_path: Path) -> None:
    data = path.read_bytes()
    original = _whole(path)
    rng = random.Random(f"{SEED}:{path.name}")
    for i in range(MUTATIONS):
        kind, damaged = mutate(rng, data)
        bad = tmp_path / f"{i}-{kind}{path.suffix}"
        bad.write_bytes(damaged)
        try:
            report = analyze_files([bad], OPTS)
        except CaptureError as exc:
            message = str(exc)
            assert "\n" not in message and str(bad) in message, (kind, message)
            continue
        _check_report(report, kind, original, tmp_path)


# (capture, mutation number): a lab capture, a pcap with a CONNECT tunnel, a DNS pcapng
CLI_CASES = [("default.pcapng", 0), ("default.pcapng", 3), ("http_connect-with-header.pcap", 1),
             ("ptcpdump_dns.pcapng", 2)]


def _find(name: str) -> Path:
    for path in FILES:
        if path.name == name:
            return path
    pytest.skip(f"{name} is not in this checkout")


@pytest.mark.parametrize(("name", "number"), CLI_CASES)
def test_mutated_capture_through_the_command(name: str, number: int, tmp_path: Path) -> None:
    path = _find(name)
    rng = random.Random(f"{SEED}:cli:{name}:{number}")
    kind, damaged = mutate(rng, path.read_bytes())
    bad = tmp_path / f"bad{path.suffix}"
    bad.write_bytes(damaged)
    proc = subprocess.run([sys.executable, "-m", "analyzer.cli", "analyze", "--all", "-q",
                           "-f", "jsonl", str(bad)], capture_output=True, timeout=120, cwd=ROOT,
                          check=False)
    err = proc.stderr.decode()
    assert "Traceback" not in err
    assert proc.returncode in (0, 3), err
    lines = [json.loads(line) for line in proc.stdout.decode().splitlines()]
    messages = [ln for ln in err.splitlines() if ln.strip()]
    assert all(ln.startswith("proxytrace: ") for ln in messages), messages
    try:
        report = analyze_files([bad], AnalyzeOptions(watch=WatchList.build([], match_all=True)))
    except CaptureError:
        assert proc.returncode == 3 and not lines and len(messages) == 1
        assert str(bad) in messages[0]
        return
    # the command prints what the library found, damaged or not, and says why it exits 3
    assert len(lines) == len(report.contacts)
    assert (proc.returncode == 3) == any(s.damaged for s in report.stats)
    if proc.returncode == 3:
        assert any(ln.startswith("proxytrace: warning: ") for ln in messages)


# --- regressions the mutations found ------------------------------------------------------------

def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    return struct.pack("<II", btype, len(body) + 12) + body + struct.pack("<I", len(body) + 12)


def _opt(code: int, value: bytes) -> bytes:
    return struct.pack("<HH", code, len(value)) + value + b"\x00" * (-len(value) % 4)


SHB = _block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1))


def _epb(payload: bytes) -> bytes:
    return _block(6, struct.pack("<IIIII", 0, 0, 1_000_000, len(payload), len(payload)) + payload)


def test_interface_block_with_a_damaged_text_option(tmp_path: Path) -> None:
    """An interface comment that is not UTF-8 (a flipped bit in ptcpdump_dns.pcapng) made
    dpkt's IDB parser raise UnicodeDecodeError; the interface is read by hand now, the option
    ignored, the frames kept, the time resolution option still read."""
    idb = _block(1, struct.pack("<HHI", 1, 0, 65535) + _opt(1, b"e\xe6h0") + _opt(9, b"\x03")
                 + _opt(0, b""))
    path = tmp_path / "idb.pcapng"
    path.write_bytes(SHB + idb + _epb(b"\x00" * 60) + _epb(b"\x00" * 60))
    report = analyze_files([path], OPTS)
    [stats] = report.stats
    assert stats.packets == 2 and not stats.damaged
    # if_tsresol 3 (milliseconds) is still read: the EPB's 1_000_000 ticks are 1000 s
    with path.open("rb") as fh:
        assert [f.ts for f in open_capture(fh, ReadState(path.name))] == [1000.0, 1000.0]


def test_interface_block_too_short_is_damage(tmp_path: Path) -> None:
    path = tmp_path / "short-idb.pcapng"
    path.write_bytes(SHB + _block(1, b"\x01\x00") + _epb(b"\x00" * 60))
    report = analyze_files([path], OPTS)
    [stats] = report.stats
    assert stats.damaged and "too short; stopped there" in stats.warnings[0]
    assert str(path) in stats.warnings[0] or path.name in stats.warnings[0]


TSHARK_CASES = ["default.pcapng", "direct-sumdb.pcapng", "forward-proxy.pcapng",
                "http_proxy.pcap", "tls_hrr.pcap", "dns_mdns.pcap"]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="tshark is not installed")
@pytest.mark.parametrize("name", TSHARK_CASES)
def test_mutated_capture_through_the_tshark_engine(name: str, tmp_path: Path) -> None:
    """The same outcomes with --engine tshark (a few files: tshark takes a second each)."""
    path = _find(name)
    rng = random.Random(f"{SEED}:tshark:{name}")
    opts = replace(OPTS, engine="tshark")
    for i in range(3):
        kind, damaged = mutate(rng, path.read_bytes())
        bad = tmp_path / f"{i}-{kind}{path.suffix}"
        bad.write_bytes(damaged)
        try:
            report = analyze_files([bad], opts)
        except CaptureError as exc:
            assert "\n" not in str(exc) and str(bad) in str(exc)
            continue
        [stats] = report.stats
        assert not stats.damaged or stats.warnings
