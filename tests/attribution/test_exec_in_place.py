"""A process that execs another program keeps its pid: the go command switching to a downloaded
toolchain. Contacts made before the exec are named after the program that made them."""

from __future__ import annotations

from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.records import ProcessRecord, SocketRecord
from analyzer.events.records import FlowRef
from analyzer.live.annotate import comments_with_exe

GO = "/work/main/.venv/bin/go"
# bpftrace cuts strings at 64 bytes: the toolchain's path arrives truncated
TOOLCHAIN = "/tmp/gopath/pkg/mod/golang.org/toolchain@v0.0.1-go1.99.0.linux-amd64/bin/go"[:64]


def _attributor() -> SocketAttributor:
    sock = SocketRecord(ts=10.5, pid=700, transport="tcp", local="10.0.0.2", local_port=40000,
                        remote="10.0.0.1", remote_port=443, source="ebpf", comm="go")
    procs = [ProcessRecord(pid=700, ppid=1, comm="go", cmdline="go mod download", exe=GO, ts=10.0),
             ProcessRecord(pid=700, ppid=1, comm="toolc", cmdline="go mod download",
                           exe=TOOLCHAIN, ts=11.0)]
    return SocketAttributor("ebpf", [sock], procs)


def test_contact_before_exec_names_the_first_program() -> None:
    att = _attributor()
    proc = att.process_for(FlowRef("tcp", "10.0.0.2", 40000, "10.0.0.1", 443), 10.6)
    assert proc is not None and proc.pid == 700 and proc.comm == "go"
    assert att.exe_for(700, "go") == GO
    [main, *_] = comments_with_exe(att)(proc)
    assert main.splitlines()[1] == f"Cmd: {GO}"


def test_latest_program_still_known_for_later_times() -> None:
    att = _attributor()
    rec = att.record_at(700, 12.0)
    assert rec is not None and rec.exe == TOOLCHAIN
    assert att.record_at(700, 10.2) is not None and att.record_at(700, 10.2).exe == GO  # type: ignore[union-attr]


def test_remembered_comment_lines_equal_fresh_ones() -> None:
    """comments_with_exe remembers a process object's lines (full and cut): every call gives
    what a fresh one gives, for the same object and for an equal one made anew."""
    att = _attributor()
    proc = att.process_for(FlowRef("tcp", "10.0.0.2", 40000, "10.0.0.1", 443), 10.6)
    assert proc is not None
    remembering = comments_with_exe(att)
    for _ in range(3):
        for full in (True, False):
            assert remembering(proc, full=full) == comments_with_exe(att)(proc, full=full)
    assert remembering(proc, full=True) != remembering(proc, full=False)
    other = att.process_for(FlowRef("tcp", "10.0.0.2", 40000, "10.0.0.1", 443), 12.0)
    assert other is not None
    assert remembering(other) == comments_with_exe(att)(other)
