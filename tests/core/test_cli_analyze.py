"""`proxytrace analyze` as users and scripts call it: formats, stdin, and bad input."""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import CAPTURES, ROOT

PROXYTRACE = [sys.executable, "-m", "analyzer.cli"]
DEFAULT = CAPTURES / "default.pcapng"
EXPECT = CAPTURES / "lab-expect.toml"


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*PROXYTRACE, *args], input=stdin, capture_output=True, timeout=120,
                          cwd=ROOT, check=False)


def _lines(err: bytes) -> list[str]:
    return [ln for ln in err.decode().splitlines() if ln.strip()]


@pytest.fixture(autouse=True)
def _needs_capture() -> None:
    if not DEFAULT.exists():
        pytest.skip("captures/default.pcapng has not been recorded")


def test_jsonl_has_the_contract_fields() -> None:
    out = _run("analyze", "--expect", str(EXPECT), "--format", "jsonl", str(DEFAULT))
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.decode().splitlines()]
    assert rows
    for row in rows:
        for key in ("ts", "layer", "host", "transport", "src", "sport", "dst", "dport", "process",
                    "client", "dns", "tls", "http", "via_proxy", "operation", "findings"):
            assert key in row
        assert row["layer"] in ("dns", "tls", "http")
        assert row["findings"] == []  # the lab's own addresses and CA are expected
    assert {r["host"] for r in rows} == {"proxy.golang.org", "sum.golang.org"}


def test_stdin_equals_file_and_csv_has_one_row_per_contact() -> None:
    from_file = _run("analyze", "--format", "json", str(DEFAULT))
    from_stdin = _run("analyze", "--format", "json", "-", stdin=DEFAULT.read_bytes())
    assert from_stdin.returncode == 0, from_stdin.stderr
    a, b = json.loads(from_file.stdout), json.loads(from_stdin.stdout)
    assert [(c["layer"], c["host"], c["sport"]) for c in a] == \
        [(c["layer"], c["host"], c["sport"]) for c in b]
    rows = list(csv.DictReader(io.StringIO(_run("analyze", "-f", "csv", str(DEFAULT))
                                            .stdout.decode())))
    assert len(rows) == len(a) and "tls.ja4" in rows[0]


def test_output_file_is_private(tmp_path: Path) -> None:
    out = tmp_path / "r.jsonl"
    proc = _run("analyze", "-f", "jsonl", "-o", str(out), str(DEFAULT))
    assert proc.returncode == 0, proc.stderr
    assert out.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("content,message", [
    (b"", "empty file, not a capture"),
    (b"<html>hello</html>", "not a pcap or pcapng file"),
    (b"\xd4\xc3\xb2\xa1\x02\x00", "file header truncated"),
])
def test_bad_files_one_line_exit_3(tmp_path: Path, content: bytes, message: str) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    proc = _run("analyze", str(bad))
    assert proc.returncode == 3
    [line] = _lines(proc.stderr)
    assert str(bad) in line and message in line
    assert "Traceback" not in proc.stderr.decode()


def test_missing_file_and_directory(tmp_path: Path) -> None:
    for target, message in ((tmp_path / "nope.pcap", "no such file"),
                            (tmp_path, "directory holds no .pcap/.pcapng/.cap files")):
        proc = _run("analyze", str(target))
        assert proc.returncode == 3
        [line] = _lines(proc.stderr)
        assert message in line


def test_truncated_capture_reports_what_came_before(tmp_path: Path) -> None:
    whole = _run("analyze", "-f", "jsonl", str(DEFAULT))
    data = DEFAULT.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[: len(data) - 100])
    proc = _run("analyze", "-f", "jsonl", str(cut))
    assert proc.returncode == 3
    assert any("stopped there" in ln for ln in _lines(proc.stderr))
    before = whole.stdout.decode().splitlines()
    after = proc.stdout.decode().splitlines()
    assert after and len(after) <= len(before)


def test_watch_validation_refuses_filter_syntax() -> None:
    proc = _run("analyze", "--watch", "proxy.golang.org or 1=1", str(DEFAULT))
    assert proc.returncode == 2
    [line] = _lines(proc.stderr)
    assert "invalid hostname" in line


def test_every_command_has_help() -> None:
    import click

    from analyzer.cli import cli

    for name in cli.list_commands(click.Context(cli)):
        proc = _run(name, "--help")
        assert proc.returncode == 0 and b"Usage:" in proc.stdout, name
    assert os.access(ROOT / ".ci" / "run", os.X_OK)


def test_exit_without_teardown_loses_nothing(tmp_path: Path) -> None:
    """`analyze` ends the process without the interpreter's teardown once its output is
    written (cli.skip_teardown): a pipe still gets every line (far more than a pipe buffer),
    a file too, warnings reach stderr, and the status is the command's."""
    from click.testing import CliRunner

    from analyzer.cli import cli
    from bench.gen import write_pcap

    path = tmp_path / "mix.pcap"
    write_pcap(path, 20_000, 3)
    expected = CliRunner().invoke(cli, ["analyze", "-q", "--all", "-f", "jsonl", str(path)])
    assert expected.exit_code == 0 and len(expected.output) > 1 << 16
    piped = _run("analyze", "-q", "--all", "-f", "jsonl", str(path))
    assert piped.returncode == 0 and piped.stdout.decode() == expected.output
    out = tmp_path / "out.jsonl"
    written = _run("analyze", "-q", "--all", "-f", "jsonl", "-o", str(out), str(path))
    assert written.returncode == 0 and out.read_text() == expected.output
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(path.read_bytes()[:-500])
    damaged = _run("analyze", "-q", "--all", "-f", "jsonl", str(cut))
    assert damaged.returncode == 3 and b"truncated" in damaged.stderr
    assert damaged.stdout.decode().count("\n") > 50
