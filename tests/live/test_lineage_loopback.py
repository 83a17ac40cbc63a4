"""Ancestor chains and environments under `capture` and `run`, with real bash and curl on loopback
(root). A shell that execs its last command in place, or exits, right after its child connected
must still be reported as the shell, with its command line at connect time."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from analyzer.attribution import ebpf
from tests.conftest import tiers_with_loaders, use_ebpf_loader
from tests.live.loopback_http import serve_ok

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from analyzer.cli import main; main()"]
SECRET = "s3cr3t-pw"
PROXY_URL = f"http://user:{SECRET}@127.0.0.1:9"

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="capturing and tracing need root"),
    pytest.mark.skipif(not (shutil.which("tcpdump") and shutil.which("curl") and shutil.which("bash")),
                       reason="tcpdump, curl and bash are needed"),
]


@pytest.fixture
def port() -> Iterator[int]:
    # answers after a moment, so a connection outlives its parent shell (and a 20 ms poll)
    with serve_ok(delay=0.6) as port:
        yield port


def _curl(port: int, path: str) -> str:
    return f'curl -s -o /dev/null -H "Host: proxy.golang.org" http://127.0.0.1:{port}/{path}'


def _shells(port: int) -> list[tuple[str, str]]:
    """(path, script): the shell runs its last command (sleep) in place after curl returns; the
    other exits while its curl still waits for the answer."""
    return [("exec", f"true; {_curl(port, 'exec')}; sleep 2"),
            ("exit", f"{_curl(port, 'exit')} & sleep 0.2; exit 0")]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(REPO), **(extra or {}))


def _child_env() -> dict[str, str]:
    # curl reads http_proxy (lower case) for http URLs; these only have to be in the environment
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": "/root",
            "GOPROXY": "https://goproxy.example,direct", "HTTPS_PROXY": PROXY_URL,
            "NO_PROXY": "127.0.0.1", "LANG": "C.UTF-8"}


def _capture(args: list[str], work: Path, during: Any) -> subprocess.CompletedProcess[str]:
    """`capture ARGS` until ``during()`` has run (started once tracing is up), then SIGINT."""
    proc = subprocess.Popen([*CLI, "capture", *args], cwd=work, env=_env(), text=True,  # noqa: S603
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stderr is not None
        banner = ""
        while "capturing on" not in banner:
            line = proc.stderr.readline()
            assert line, banner + proc.stderr.read()
            banner += line
        during()
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, banner + err)


def _run_shells(port: int) -> None:
    jobs = [subprocess.Popen(["bash", "-c", script], env=_child_env())  # noqa: S603, S607
            for _, script in _shells(port)]
    for job in jobs:
        assert job.wait(timeout=30) == 0


def _check_parents(contacts: list[dict[str, Any]], port: int, tier: str) -> None:
    by_path = {c["http"]["path"].strip("/"): c for c in contacts if c["layer"] == "http"}
    assert set(by_path) == {"exec", "exit"}, by_path
    for path, script in _shells(port):
        p = by_path[path]["process"]
        assert p is not None and p["source"] == tier and p["comm"] == "curl", p
        assert (p["parent_comm"], p["parent_cmdline"]) == ("bash", f"bash -c {script}"), p
        nearest = p["ancestors"][0]
        assert (nearest["pid"], nearest["comm"], nearest["cmdline"]) == \
            (p["ppid"], "bash", f"bash -c {script}"), p["ancestors"]
        # the chain goes on up to this test's own process
        assert os.getpid() in [a["pid"] for a in p["ancestors"]], p["ancestors"]
        assert p["env"]["GOPROXY"] == "https://goproxy.example,direct"
        assert p["env"]["HTTPS_PROXY"] == "http://xxxxx@127.0.0.1:9"
        assert "PATH" not in p["env"] and "LANG" not in p["env"]


@pytest.mark.parametrize(("tier", "loader"), tiers_with_loaders("ebpf", "procfs"))
def test_capture_names_the_shell_as_it_was_at_connect(tier: str, loader: str | None, tmp_path: Path,
                                                      port: int,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    use_ebpf_loader(monkeypatch, loader)
    if tier == "ebpf" and ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    out = tmp_path / "c.pcapng"
    res = _capture(["--attribution", tier, "-i", "lo", "--filter", f"tcp port {port}",
                    "-w", str(out), "-f", "jsonl"], tmp_path, lambda: _run_shells(port))
    assert res.returncode == 0, res.stderr[-2000:]
    contacts = [json.loads(line) for line in res.stdout.splitlines()]
    _check_parents(contacts, port, tier)
    # analyze reads the same chain and environment back from the pcapng's comments
    back = subprocess.run([*CLI, "analyze", "-f", "jsonl", str(out)], cwd=tmp_path, env=_env(),  # noqa: S603
                          capture_output=True, text=True, timeout=120)
    assert back.returncode == 0, back.stderr[-2000:]
    again = [json.loads(line) for line in back.stdout.splitlines()]
    _check_parents(again, port, "pcapng-comment")


@pytest.mark.parametrize(("tier", "loader"), tiers_with_loaders("ebpf", "strace"))
def test_run_names_the_shell_as_it_was_at_connect(tier: str, loader: str | None, tmp_path: Path,
                                                  port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    use_ebpf_loader(monkeypatch, loader)
    if tier == "ebpf" and ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if tier == "strace" and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    # the inner scripts travel in variables (the outer command line stays short: the ebpf tier
    # reads at most 199 bytes of each argument); "; true": the outer shell must not exec its
    # last command in place
    (_, exec_script), (_, exit_script) = _shells(port)
    script = 'bash -c "$A"; bash -c "$B"; true'
    env = _env({**_child_env(), "A": exec_script, "B": exit_script})
    res = subprocess.run([*CLI, "run", "--attribution", tier, "-i", "lo", "--filter",  # noqa: S603
                          f"tcp port {port}", "-w", str(tmp_path / "r.pcapng"), "-f", "jsonl",
                          "--", "bash", "-c", script], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    contacts = [json.loads(line) for line in res.stdout.splitlines()]
    _check_parents(contacts, port, tier)
    for c in contacts:
        # above the inner shells: the outer `bash -c` that run started
        outer = c["process"]["ancestors"][1]
        assert (outer["comm"], outer["cmdline"]) == ("bash", f"bash -c {script}")


def test_proxy_password_is_redacted_in_every_format_and_in_the_pcapng(tmp_path: Path,
                                                                      port: int) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    out = tmp_path / "c.pcapng"
    res = _capture(["-i", "lo", "--filter", f"tcp port {port}", "-w", str(out), "-f", "jsonl"],
                   tmp_path, lambda: _run_shells(port))
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout and SECRET not in res.stdout + res.stderr
    data = out.read_bytes()
    assert b"xxxxx@127.0.0.1:9" in data and SECRET.encode() not in data
    for fmt in ("table", "jsonl", "json", "csv", "html", "parquet"):
        target = tmp_path / f"report.{fmt}"
        done = subprocess.run([*CLI, "analyze", "-f", fmt, "-o", str(target), str(out)],  # noqa: S603
                              cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        text = str(pq.read_table(target).to_pylist()) if fmt == "parquet" else target.read_text()
        assert SECRET not in text, fmt
        if fmt != "table":  # the table shows no environment
            assert "xxxxx@127.0.0.1:9" in text, fmt
    # --no-redact keeps it, in the report and in the file written
    raw = tmp_path / "raw.pcapng"
    res = _capture(["-i", "lo", "--filter", f"tcp port {port}", "-w", str(raw), "-f", "jsonl",
                    "--no-redact"], tmp_path, lambda: _run_shells(port))
    assert res.returncode == 0, res.stderr[-2000:]
    assert PROXY_URL in res.stdout and PROXY_URL.encode() in raw.read_bytes()
