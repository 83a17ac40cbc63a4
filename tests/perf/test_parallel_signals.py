"""Worker processes end whatever SIGTERM handler the caller has installed: a run with several
captures finishes, and a failing one raises its error, instead of hanging on the workers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import CAPTURES

ROOT = Path(__file__).resolve().parents[2]

# The caller's handler ignores SIGTERM, as a service's or test harness's may well do.
_SCRIPT = textwrap.dedent("""
    import signal, sys
    signal.signal(signal.SIGTERM, lambda *_: None)
    from analyzer.base.watchlist import WatchList
    from analyzer.base.errors import CaptureError
    from analyzer.pipeline import AnalyzeOptions, analyze_files
    runs, paths = int(sys.argv[1]), sys.argv[2:]
    for _ in range(runs):  # the worker's end races with the pool's: several runs, several chances
        try:
            report = analyze_files(paths, AnalyzeOptions(
                watch=WatchList.build([], match_all=True), workers=2, keep_evidence=False))
        except CaptureError as exc:
            print("error:", exc)
        else:
            print("contacts:", len(report.contacts))
""")


def _run(paths: list[Path], runs: int = 1) -> str:
    proc = subprocess.Popen([sys.executable, "-c", _SCRIPT, str(runs), *map(str, paths)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("the run hung on its worker processes") from None
    assert proc.returncode == 0, err
    return out


def test_run_with_workers_ends_under_a_sigterm_handler() -> None:
    lines = _run(sorted(CAPTURES.glob("*.pcapng")), runs=8).splitlines()
    assert len(lines) == 8 and len(set(lines)) == 1, lines
    assert lines[0].startswith("contacts: ") and int(lines[0].split()[1]) > 0, lines


def test_failing_run_with_workers_raises_under_a_sigterm_handler(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(b"this is not a capture at all")
    paths = [*sorted(CAPTURES.glob("*.pcapng"))[:3], bad, *sorted(CAPTURES.glob("*.pcapng"))[3:6]]
    out = _run(paths)
    assert out.startswith("error: ") and "bad.pcap" in out, out
