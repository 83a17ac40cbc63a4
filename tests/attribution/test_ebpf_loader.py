"""The loader built at install (analyzer/attribution/bpf): its choice, its errors, its stop, and
the tier's fallback to bpftrace when it cannot load."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from analyzer.attribution import ebpf, ebpf_backend

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="the ebpf tier needs root")
needs_loader = pytest.mark.skipif(not ebpf_backend.loader_built(),
                                  reason=f"the CO-RE loader is not built ({ebpf_backend.LOADER})")


def test_the_environment_forces_a_loader_or_lets_the_tier_choose(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(ebpf_backend, "LOADER", tmp_path / "not-built")
    monkeypatch.setenv(ebpf_backend.ENV, "core")
    assert ebpf_backend.first_choice() is None
    assert "PROXYTRACE_EBPF_LOADER=core" in ebpf_backend.missing_reason()
    assert "not installed" in ebpf_backend.missing_reason()  # the missing-tool exit status
    monkeypatch.setenv(ebpf_backend.ENV, "BPFTRACE")
    assert ebpf_backend.forced() == "bpftrace" and not ebpf_backend.can_fall_back()
    for unset in ("", "auto", "something-else"):
        monkeypatch.setenv(ebpf_backend.ENV, unset)
        assert ebpf_backend.forced() is None
        expected = "bpftrace" if shutil.which("bpftrace") else None
        assert ebpf_backend.first_choice() == expected  # nothing built: bpftrace or nothing


@needs_loader
def test_the_built_loader_is_chosen_when_nothing_is_forced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ebpf_backend.ENV, raising=False)
    assert ebpf_backend.first_choice() == "core"
    assert ebpf.EbpfTracer().program == "proxytrace-ebpf"


@needs_root
@needs_loader
def test_without_root_the_loader_says_so_in_one_line() -> None:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv is needed to drop to an unprivileged user")
    proc = subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",  # noqa: S603
                           "--inh-caps=-all", str(ebpf_backend.LOADER)],
                          capture_output=True, text=True, timeout=30, check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == "proxytrace-ebpf: needs root (it loads BPF programs)\n"


@needs_root
@needs_loader
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_the_loader_prints_every_event_before_it_exits(sig: int) -> None:
    """No sync, no pause: what the kernel program sent before the signal is printed."""
    proc = subprocess.Popen([str(ebpf_backend.LOADER)], stdout=subprocess.PIPE,  # noqa: S603
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    try:
        assert proc.stdout.readline() == "R\t\n"
        ports = set()
        for _ in range(50):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.connect(("127.0.0.1", 9))
                ports.add(s.getsockname()[1])
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    socks = [e for e in map(ebpf.parse_line, out.splitlines()) if isinstance(e, ebpf.SockEvent)]
    seen = {e.local_port for e in socks if e.pid == os.getpid() and e.remote_port == 9}
    assert ports <= seen


def _failing_loader(tmp_path: Path) -> Path:
    """A stand-in for a loader the kernel refuses: the loader's one line and exit status."""
    fake = tmp_path / "proxytrace-ebpf"
    fake.write_text("#!/bin/sh\necho 'proxytrace-ebpf: cannot load the kernel program: "
                    "Invalid argument' >&2\nexit 4\n")
    fake.chmod(0o700)
    return fake


@needs_root
def test_a_loader_that_cannot_load_gives_way_to_bpftrace(monkeypatch: pytest.MonkeyPatch,
                                                         tmp_path: Path) -> None:
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed")
    monkeypatch.delenv(ebpf_backend.ENV, raising=False)
    monkeypatch.setattr(ebpf_backend, "LOADER", _failing_loader(tmp_path))
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    tracer = ebpf.EbpfTracer()
    assert tracer.backend == "core"
    tracer.start()
    try:
        assert tracer.backend == "bpftrace" and tracer.sync()
    finally:
        tracer.stop()
    assert tracer.fallback_note == ("ebpf tier: proxytrace-ebpf exited: proxytrace-ebpf: cannot "
                                    "load the kernel program: Invalid argument; tracing with "
                                    "bpftrace instead")


@needs_root
def test_a_forced_loader_that_cannot_load_is_an_error(monkeypatch: pytest.MonkeyPatch,
                                                      tmp_path: Path) -> None:
    monkeypatch.setenv(ebpf_backend.ENV, "core")
    monkeypatch.setattr(ebpf_backend, "LOADER", _failing_loader(tmp_path))
    tracer = ebpf.EbpfTracer()
    with pytest.raises(RuntimeError, match="cannot load the kernel program: Invalid argument"):
        tracer.start(timeout=20)
    tracer.stop()
