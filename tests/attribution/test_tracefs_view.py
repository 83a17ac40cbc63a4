"""bpftrace with a private, narrowed list of tracepoints builds the same programs, faster."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from analyzer.attribution import ebpf, tracefs_view

SCRIPT = r'''
BEGIN { printf("R\t\n"); }
tracepoint:syscalls:sys_enter_connect, t:syscalls:sys_exit_connect { @x[tid] = 1; }
tracepoint:sched:sched_process_ex* { printf("t:not:a_probe %s\n", comm); }
'''


def test_the_tracepoints_a_script_uses() -> None:
    assert tracefs_view.tracepoints_in(SCRIPT) == [
        "sched:sched_process_ex*", "syscalls:sys_enter_connect", "syscalls:sys_exit_connect"]
    assert "sock:inet_sock_set_state" in tracefs_view.tracepoints_in(ebpf.SCRIPT)


def test_the_narrowed_list_keeps_only_those_lines_in_order() -> None:
    available = ("syscalls:sys_exit_connect\nsched:sched_process_exec\nsched:sched_process_exit\n"
                 "syscalls:sys_enter_connect\nnet:netif_rx\n")
    assert tracefs_view.narrowed(available, tracefs_view.tracepoints_in(SCRIPT)) == (
        "syscalls:sys_exit_connect\nsched:sched_process_exec\nsched:sched_process_exit\n"
        "syscalls:sys_enter_connect\n")


def _emit(argv_prefix: list[str], out: Path) -> bytes:
    proc = subprocess.run([*argv_prefix, "bpftrace", "--emit-elf", str(out), "-e", ebpf.SCRIPT],  # noqa: S603
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-500:]
    return out.read_bytes()


@pytest.mark.skipif(os.geteuid() != 0, reason="the ebpf tier needs root")
def test_bpftrace_builds_the_same_programs_in_the_view(tmp_path: Path) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed (the view is for bpftrace only)")
    events = tracefs_view.prepare(ebpf.SCRIPT)
    if events is None:
        pytest.skip("no private view of tracefs here (unshare or mount missing)")
    try:
        assert os.stat(events).st_mode & 0o777 == 0o600
        wrapped = tracefs_view.wrap(["true"], events)[:-1]  # everything before the command
        assert _emit(wrapped, tmp_path / "view.elf") == _emit([], tmp_path / "plain.elf")
    finally:
        events.unlink()


@pytest.mark.skipif(os.geteuid() != 0, reason="the ebpf tier needs root")
def test_the_tracer_still_starts_when_the_view_cannot_be_made(monkeypatch: pytest.MonkeyPatch) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if not shutil.which("bpftrace"):
        pytest.skip("bpftrace is not installed (the view is for bpftrace only)")
    events = tracefs_view.prepare(ebpf.SCRIPT)
    if events is None:
        pytest.skip("no private view of tracefs here (unshare or mount missing)")
    events.unlink()
    # a view whose bind mount is refused, as in a container without CAP_SYS_ADMIN
    monkeypatch.setattr(tracefs_view, "wrap", lambda argv, events: [
        "sh", "-c", f"exit {tracefs_view.MOUNT_FAILED}"])
    tracer = ebpf.EbpfTracer(backend="bpftrace")
    tracer.start()
    try:
        assert tracer.sync()  # tracing works, through a plain bpftrace
    finally:
        tracer.stop()
