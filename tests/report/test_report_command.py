"""``proxytrace report`` and the table/parquet/html formats through the real CLI."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer.cli import cli
from analyzer.report.parquet import PARQUET_SCHEMA

PUBLIC = Path(__file__).resolve().parents[3] / "shared" / "captures" / "public"
PROXY_PCAP = PUBLIC / "http_proxy.pcap"  # curl fetching http://bro.org/ through a forward proxy

pytestmark = pytest.mark.skipif(not PROXY_PCAP.is_file(),
                                reason=f"public test capture not found at {PROXY_PCAP}")


def test_report_writes_private_html(tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--watch", "bro.org", str(PROXY_PCAP),
                                      "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"wrote {out} (1 contact)" in result.stderr
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    page = out.read_text(encoding="utf-8")
    assert "<li><b>bro.org</b> was contacted once, by curl (inferred) through HTTP" in page
    assert "http-plaintext" in page


def test_report_defaults_to_report_html(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["report", "-q", str(PROXY_PCAP)])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "No contact with a watched host." in page  # bro.org is not watched by default


def test_report_to_stdout() -> None:
    result = CliRunner().invoke(cli, ["report", "--all", "-o", "-", str(PROXY_PCAP)])
    assert result.exit_code == 0
    assert result.stdout.startswith("<!DOCTYPE html>")
    assert result.stdout.rstrip().endswith("</html>")


def test_analyze_table_fits_80_columns() -> None:
    result = CliRunner().invoke(cli, ["analyze", "--all", "-q", str(PROXY_PCAP)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "1 contact with 1 watched host, 1 finding"
    assert any(line.startswith("curl (inferred)") for line in lines)
    assert max(len(line) for line in lines) <= 80
    assert "\x1b" not in result.stdout  # not a terminal: no colour


def test_analyze_parquet(tmp_path: Path) -> None:
    out = tmp_path / "c.parquet"
    result = CliRunner().invoke(cli, ["analyze", "--all", "-q", "--format", "parquet",
                                      "--output", str(out), str(PROXY_PCAP)])
    assert result.exit_code == 0, result.output
    table = pq.read_table(out)
    assert table.schema.equals(PARQUET_SCHEMA, check_metadata=True)
    row = table.to_pylist()[0]
    assert (row["host"], row["layer"], row["http"]["method"]) == ("bro.org", "http", "GET")
    assert row["via_proxy"] == {"address": "192.168.56.101", "port": 80, "kind": "http-forward"}


def test_unreadable_capture_is_one_line(tmp_path: Path) -> None:
    bogus = tmp_path / "not-a-capture.pcap"
    bogus.write_bytes(b"this is not a capture file at all")
    proc = subprocess.run(  # noqa: S603 - fixed argument list
        [sys.executable, "-m", "analyzer.cli", "report", str(bogus), "-o",
         str(tmp_path / "r.html")], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3
    assert len(proc.stderr.strip().splitlines()) == 1
    assert "not-a-capture.pcap" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("argv", [["report", "-o", "{dir}/missing/r.html"],
                                  ["analyze", "-f", "parquet", "-o", "{dir}/missing/c.parquet"]])
def test_unwritable_output_is_one_line(tmp_path: Path, argv: list[str]) -> None:
    args = [a.replace("{dir}", str(tmp_path)) for a in argv]
    proc = subprocess.run(  # noqa: S603 - fixed argument list
        [sys.executable, "-m", "analyzer.cli", *args, str(PROXY_PCAP)],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"proxytrace: {args[-1]}: cannot write: No such file or directory"
