"""``proxytrace run`` end to end on loopback with real programs (curl, sh), as root."""

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

import pytest

from analyzer.attribution import ebpf
from analyzer.source.capture_file import ReadState, open_capture
from tests.conftest import tiers_with_loaders, use_ebpf_loader
from tests.live.loopback_http import serve_ok

REPO = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-c", "from analyzer.cli import main; main()"]

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="capturing needs root")
needs_tools = pytest.mark.skipif(not (shutil.which("tcpdump") and shutil.which("curl")),
                                 reason="tcpdump and curl are needed")


@pytest.fixture
def http_port() -> Iterator[int]:
    with serve_ok() as port:
        yield port


def _proxytrace(args: list[str], cwd: Path, env: dict[str, str] | None = None,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    run_env = dict(os.environ, PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run([*CLI, *args], cwd=cwd, env=run_env, capture_output=True, text=True,  # noqa: S603
                          timeout=timeout)


def _curl(port: int) -> list[str]:
    return ["curl", "-s", "-o", "/dev/null", "-H", "Host: proxy.golang.org", f"http://127.0.0.1:{port}/"]


def test_command_not_found_is_127(tmp_path: Path) -> None:
    proc = _proxytrace(["run", "--", "no-such-command-xyz"], tmp_path)
    assert proc.returncode == 127
    assert "no-such-command-xyz: command not found" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_without_privileges_says_what_would_work(tmp_path: Path) -> None:
    """As an unprivileged user (nobody), the check names sudo and setcap."""
    code = ("from analyzer.live.privileges import capture_problem;"
            "print(capture_problem('/usr/bin/tcpdump'))")
    if os.geteuid() == 0:
        setpriv = shutil.which("setpriv")
        if setpriv is None:
            pytest.skip("setpriv is needed to drop to an unprivileged user")
        argv = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
                "/usr/bin/python3", "-c", code]
    else:
        argv = [sys.executable, "-c", code]
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=60)  # noqa: S603
    assert "sudo" in proc.stdout and "setcap cap_net_raw,cap_net_admin=eip /usr/bin/tcpdump" in proc.stdout


@needs_root
@needs_tools
@pytest.mark.parametrize(("tier", "loader"), tiers_with_loaders("ebpf", "strace"))
def test_short_lived_curl_is_attributed(tier: str, loader: str | None, tmp_path: Path,
                                        http_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    use_ebpf_loader(monkeypatch, loader)
    if tier == "ebpf" and ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if tier == "strace" and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    out = tmp_path / "run.pcapng"
    proc = _proxytrace(["run", "--attribution", tier, "--filter", f"tcp port {http_port}",
                        "-w", str(out), "-f", "jsonl", "--", *_curl(http_port)], tmp_path,
                       env={"PROXYTRACE_TIMING": "1"})
    assert proc.returncode == 0, proc.stderr
    if loader:  # the timing lines name the program that loaded the kernel program
        program = "proxytrace-ebpf" if loader == "core" else "bpftrace"
        assert "timing +" in proc.stderr and f" tracer (ebpf, {program}) ready\n" in proc.stderr
        assert "instead" not in proc.stderr  # forced: no fallback
    contacts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [c["host"] for c in contacts] == ["proxy.golang.org"]
    p = contacts[0]["process"]
    assert p["comm"] == "curl" and p["source"] == tier and p["cmdline"].startswith("curl -s")
    assert os.stat(out).st_mode & 0o777 == 0o600
    with out.open("rb") as fh:
        frames = list(open_capture(fh, ReadState(str(out))))
    # On loopback both ends are local: packets the test's server sent may carry its own pid.
    pids = {f.pid for f in frames}
    assert p["pid"] in pids and pids <= {p["pid"], os.getpid()}
    assert f"PID: {p['pid']}\nCmd: " in frames[0].comments[0]


@needs_root
@needs_tools
def test_procfs_never_guesses(tmp_path: Path, http_port: int) -> None:
    proc = _proxytrace(["run", "--attribution", "procfs", "--filter", f"tcp port {http_port}",
                        "-w", str(tmp_path / "p.pcapng"), "-f", "jsonl", "--", *_curl(http_port)],
                       tmp_path)
    assert proc.returncode == 0, proc.stderr
    (contact,) = [json.loads(line) for line in proc.stdout.splitlines()]
    # Polling may miss a connection this short; when it does see it, it is curl's.
    assert contact["process"] is None or contact["process"]["comm"] == "curl"
    assert "procfs" in proc.stderr


@needs_root
@needs_tools
def test_exit_status_default_file_name_and_dumpcap(tmp_path: Path) -> None:
    if not shutil.which("dumpcap"):
        pytest.skip("dumpcap is not installed")
    proc = _proxytrace(["run", "--backend", "dumpcap", "--attribution", "procfs", "--filter",
                        "udp port 9", "--", "sh", "-c", "exit 3"], tmp_path)
    assert proc.returncode == 3, proc.stderr
    written = list(tmp_path.glob("proxytrace-*.pcapng"))
    assert len(written) == 1 and os.stat(written[0]).st_mode & 0o777 == 0o600
    assert "kernel drops: 0" in proc.stderr


@needs_root
@needs_tools
def test_deny_gate_with_github_annotations(tmp_path: Path, http_port: int) -> None:
    proc = _proxytrace(["run", "--attribution", "strace" if shutil.which("strace") else "procfs",
                        "--filter", f"tcp port {http_port}", "--deny", "proxy.golang.org",
                        "-w", str(tmp_path / "g.pcapng"), "-f", "jsonl", "-o",
                        str(tmp_path / "r.jsonl"), "--", *_curl(http_port)], tmp_path,
                       env={"GITHUB_ACTIONS": "true"})
    assert proc.returncode == 1
    reasons = [ln for ln in proc.stderr.splitlines() if "denied host" in ln]
    assert len(reasons) == 1 and "proxy.golang.org contacted over http" in reasons[0]
    assert proc.stdout.startswith("::error title=proxytrace deny proxy.golang.org::")


@needs_root
@needs_tools
def test_sigterm_still_writes_the_file_and_the_report(tmp_path: Path) -> None:
    out = tmp_path / "t.pcapng"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([*CLI, "run", "--attribution", "procfs", "--filter", "udp port 9",  # noqa: S603
                             "-w", str(out), "-f", "json", "--", "sleep", "30"], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait until the command runs under capture
        if subprocess.run(["pgrep", "-P", str(proc.pid), "-x", "sleep"],  # noqa: S603
                          capture_output=True, check=False).returncode == 0:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert json.loads(stdout) == []
    with out.open("rb") as fh:
        state = ReadState(str(out))
        list(open_capture(fh, state))
    assert not state.damaged


@needs_root
@needs_tools
@pytest.mark.parametrize("tier", ["procfs", "strace"])
def test_command_runs_as_the_sudo_user(tier: str, tmp_path: Path) -> None:
    if tier == "strace" and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    proc = _proxytrace(["run", "--attribution", tier, "--filter", "udp port 9", "-w",
                        str(tmp_path / "u.pcapng"), "-o", str(tmp_path / "r.json"), "-f", "json",
                        "--", "id", "-u"], tmp_path, env={"SUDO_UID": "65534", "SUDO_GID": "65534"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "65534"


@needs_root
@needs_tools
def test_all_hosts_captures_every_port(tmp_path: Path, http_port: int) -> None:
    """With --all and no --filter, a contact on a port outside the watch list is still seen."""
    proc = _proxytrace(["run", "--all", "--attribution", "strace" if shutil.which("strace")
                        else "procfs", "-w", str(tmp_path / "all.pcapng"), "-f", "jsonl", "--",
                        "curl", "-s", "-o", "/dev/null", f"http://127.0.0.1:{http_port}/x"],
                       tmp_path)
    assert proc.returncode == 0, proc.stderr
    contacts = [json.loads(line) for line in proc.stdout.splitlines()]
    # With --all, whatever else the machine sends meanwhile is reported too (a busy CI runner's
    # own DNS): the command's contact must be there once, and nothing else may be curl's.
    ours = [c for c in contacts if c.get("dport") == http_port]
    assert [(c["host"], c["layer"]) for c in ours] == [("127.0.0.1", "http")], contacts
    assert ours[0]["http"]["path"] == "/x"
    assert (ours[0].get("process") or {}).get("comm") == "curl", ours[0]
    others = [c for c in contacts if c.get("dport") != http_port]
    assert not [c for c in others if (c.get("process") or {}).get("comm") == "curl"], others
