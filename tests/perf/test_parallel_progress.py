"""Several captures in worker processes give the serial report; progress shows on a terminal
only, and --quiet silences it."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

from click.testing import CliRunner

from analyzer.base.watchlist import WatchList
from analyzer.cli import cli
from analyzer.commands.progress import Progress
from analyzer.pipeline import AnalyzeOptions, analyze_files
from analyzer.pipeline.parallel import expand_paths
from bench.gen import write_pcap
from tests.conftest import CAPTURES


def _inputs(tmp_path: Path) -> list[Path]:
    paths = sorted(CAPTURES.glob("*.pcapng"))[:4]
    for seed in (1, 2):
        gen = tmp_path / f"gen{seed}.pcap"
        write_pcap(gen, 6_000, seed)
        paths.append(gen)
    return paths


def test_parallel_report_equals_serial(tmp_path: Path) -> None:
    paths = _inputs(tmp_path)
    watch = WatchList.build([], match_all=True)
    serial = analyze_files(paths, AnalyzeOptions(watch=watch, workers=1))
    parallel = analyze_files(paths, AnalyzeOptions(watch=watch, workers=3))
    assert [c.to_dict() for c in parallel.contacts] == [c.to_dict() for c in serial.contacts]
    assert parallel.stats == serial.stats
    assert parallel.warnings == serial.warnings
    assert len(serial.contacts) > 10


def test_directory_is_expanded_in_name_order(tmp_path: Path) -> None:
    for name in ("b.pcapng", "a.pcap", "notes.txt"):
        src = CAPTURES / "default.pcapng"
        shutil.copy(src, tmp_path / name)
    assert [p.name for p in expand_paths([tmp_path])] == ["a.pcap", "b.pcapng"]  # type: ignore[union-attr]


def test_cli_directory_with_workers(tmp_path: Path) -> None:
    for p in sorted(CAPTURES.glob("*.pcapng"))[:3]:
        shutil.copy(p, tmp_path / p.name)
    runner = CliRunner()
    one = runner.invoke(cli, ["analyze", "-q", "--all", "-f", "jsonl", "-j", "1", str(tmp_path)])
    two = runner.invoke(cli, ["analyze", "-q", "--all", "-f", "jsonl", "-j", "2", str(tmp_path)])
    assert one.exit_code == 0, one.output
    assert two.exit_code == 0 and two.output == one.output and one.output.count("\n") > 5


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    assert Progress.for_terminal(quiet=False, stream=io.StringIO()) is None
    assert Progress.for_terminal(quiet=True, stream=_Tty()) is None
    assert Progress.for_terminal(quiet=False, stream=_Tty()) is not None


def test_progress_reports_bytes_packets_exchanges(tmp_path: Path) -> None:
    path = tmp_path / "gen.pcap"
    write_pcap(path, 150_000, 3)
    out = _Tty()
    progress = Progress(out, interval=0.0)
    report = analyze_files([path], AnalyzeOptions(), progress=progress)
    text = out.getvalue()
    assert "MB (" in text and "packets" in text and "exchanges so far" in text
    assert text.endswith("\n") and text.rstrip().endswith("done")
    assert f"{report.stats[0].packets:,} packets, done" in text


def test_quiet_cli_writes_nothing_on_stderr(tmp_path: Path) -> None:
    path = tmp_path / "gen.pcap"
    write_pcap(path, 3_000, 3)
    result = CliRunner().invoke(cli, ["analyze", "-q", str(path)])
    assert result.exit_code == 0
    assert result.stderr == ""
