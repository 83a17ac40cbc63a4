"""Ancestor chains at connect time and environments at exec, from each tier's own output."""

from __future__ import annotations

import os

import pytest

from analyzer.attribution import ebpf
from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.procfs import chain_records, process_record
from analyzer.attribution.strace import parse_execve, parse_output
from analyzer.base.errors import ParseError
from analyzer.base.model import env_from_block
from analyzer.events.records import FlowRef

CURL_FLOW = FlowRef("tcp", "127.0.0.1", 40000, "127.0.0.1", 18080)

# A shell runs `true; curl ...; sleep 14`: it forks curl, curl connects, then the shell execs
# sleep in place (its last command) and a moment later exits. Times in kernel ns.
SHELL = 'bash -c true; curl -s http://127.0.0.1:18080/; sleep 14'
BPFTRACE_LINES = [
    # bash's execve entry: argv and the environment lines the kernel let through
    "A\t1000\t500\t0\tbash", "A\t1000\t500\t1\t-c",
    "A\t1000\t500\t2\ttrue; curl -s http://127.0.0.1:18080/; sleep 14",
    "V\t1000\t500\tGOPROXY=direct", "V\t1000\t500\tHOME=/home/u",
    "V\t1000\t500\tHTTPS_PROXY=http://user:secret@proxy:3128", "V\t1000\t500\tHOSTNAME=box",
    "E\t1100\t500\t400\t1000\tbash\t/usr/bin/bash",
    "F\t2000\t501\t500",
    # curl's exec: a failed execve first (a PATH search), then the one that worked
    "A\t2100\t501\t0\tcurl", "V\t2100\t501\tGOPROXY=direct",
    "A\t2200\t501\t0\tcurl", "A\t2200\t501\t1\t-s", "A\t2200\t501\t2\thttp://127.0.0.1:18080/",
    "V\t2200\t501\tGOPROXY=direct", "V\t2200\t501\tGOFLAGS=-mod=mod",
    "E\t2300\t501\t500\t1000\tcurl\t/usr/bin/curl",
    "S\t3000\t501\t501\t500\t1000\t6\t127.0.0.1\t40000\t127.0.0.1\t18080\tcurl",
    "X\t4000\t501",
    # the shell execs its last command in place, then exits
    "A\t5000\t500\t0\tsleep", "A\t5000\t500\t1\t14", "V\t5000\t500\tGOPROXY=direct",
    "E\t5100\t500\t400\t1000\tsleep\t/usr/bin/sleep",
    "X\t9000\t500",
]
# the shell's own parent, known from the table of running processes
TERMINAL = "E\t10\t400\t1\t1000\tbash\t/usr/bin/bash"


def _ebpf_attributor(lines: list[str]) -> SocketAttributor:
    sockets, procs = ebpf.parse_output("\n".join(lines))
    return SocketAttributor("ebpf", sockets, procs)


def test_parent_that_execs_after_the_connect_is_shown_as_it_was() -> None:
    att = _ebpf_attributor([TERMINAL, *BPFTRACE_LINES])
    proc = att.process_for(CURL_FLOW, 3000 / 1e9)
    assert proc is not None
    assert (proc.pid, proc.comm, proc.cmdline) == (501, "curl", "curl -s http://127.0.0.1:18080/")
    assert (proc.ppid, proc.parent_comm, proc.parent_cmdline) == (500, "bash", SHELL)
    assert [(a.pid, a.comm, a.cmdline) for a in proc.ancestors] == [
        (500, "bash", SHELL), (400, "bash", None), (1, None, None)]
    # the environment of the exec that worked, filtered to the recorded names
    assert proc.env == (("GOFLAGS", "-mod=mod"), ("GOPROXY", "direct"))
    assert dict(proc.ancestors[0].env or ()) == {
        "GOPROXY": "direct", "HOME": "/home/u", "HTTPS_PROXY": "http://user:secret@proxy:3128"}
    assert proc.exe == "/usr/bin/curl" and proc.chain_text() == "curl ← bash ← bash ← ?"
    # the shell's later program is still known for later times
    later = att.record_at(500, 6000 / 1e9)
    assert later is not None and later.cmdline == "sleep 14"


def test_events_out_of_order_fold_the_same() -> None:
    # per-CPU buffers: bpftrace may print an exec before the argument lines of its execve
    shuffled = [TERMINAL, *reversed(BPFTRACE_LINES)]
    proc = _ebpf_attributor(shuffled).process_for(CURL_FLOW, 3000 / 1e9)
    assert proc is not None and proc.parent_cmdline == SHELL
    assert proc.cmdline == "curl -s http://127.0.0.1:18080/"


def test_arguments_cut_by_bpftrace_say_so() -> None:
    long = "x" * (ebpf.STRLEN - 1)
    flags = ("GOFLAGS=" + long)[:ebpf.STRLEN - 1]  # the kernel cuts the whole entry
    lines = ["A\t10\t800\t0\tbash", f"A\t10\t800\t1\t{long}", f"V\t10\t800\t{flags}",
             "E\t20\t800\t1\t0\tbash\t/usr/bin/bash"]
    _, procs = ebpf.parse_output("\n".join(lines))
    assert procs[0].cmdline == f"bash {long}..."
    assert procs[0].env == (("GOFLAGS", flags[len("GOFLAGS="):] + "..."),)


def test_forked_child_runs_its_parents_program_until_it_execs() -> None:
    lines = [TERMINAL, *BPFTRACE_LINES[:9],
             "S\t2050\t501\t501\t500\t1000\t6\t127.0.0.1\t40000\t127.0.0.1\t18080\tbash"]
    proc = _ebpf_attributor(lines).process_for(CURL_FLOW, 2050 / 1e9)
    assert proc is not None and proc.comm == "bash" and proc.cmdline == SHELL
    assert dict(proc.env or ())["GOPROXY"] == "direct"
    assert [a.pid for a in proc.ancestors] == [500, 400, 1]


def test_a_pid_seen_ending_is_not_named_after_the_process_that_ended() -> None:
    # pid 501 (curl) exits at 4000; a socket from pid 501 later, with no fork seen (lost event)
    lines = [TERMINAL, *BPFTRACE_LINES,
             "S\t9500\t501\t501\t1\t0\t6\t127.0.0.1\t40001\t127.0.0.1\t18080\tnc"]
    att = _ebpf_attributor(lines)
    late = att.process_for(FlowRef("tcp", "127.0.0.1", 40001, "127.0.0.1", 18080), 9500 / 1e9)
    assert late is not None and late.comm == "nc" and late.cmdline is None and late.ancestors == ()
    early = att.process_for(CURL_FLOW, 3000 / 1e9)
    assert early is not None and early.cmdline == "curl -s http://127.0.0.1:18080/"


def test_parent_unknown_to_the_tier_ends_the_chain_as_a_bare_pid() -> None:
    lines = ["E\t100\t700\t699\t0\tgo\t/usr/local/go/bin/go",
             "S\t200\t700\t700\t699\t0\t6\t127.0.0.1\t40000\t127.0.0.1\t18080\tgo"]
    proc = _ebpf_attributor(lines).process_for(CURL_FLOW, 200 / 1e9)
    assert proc is not None and [(a.pid, a.comm) for a in proc.ancestors] == [(699, None)]
    assert proc.env is None  # no execve entry seen: unknown, not empty


@pytest.mark.parametrize("line", ["A\t1\t2\tx\tbash", "V\t1\t2", "F\t1\t2", "X\tnope\t3",
                                  "A\t1\t2"])
def test_hostile_process_lines_raise_parse_error(line: str) -> None:
    with pytest.raises(ParseError):
        ebpf.parse_line(line)


def test_the_kernel_program_filters_environment_by_first_letter() -> None:
    # every recorded name starts with a letter the kernel lets through
    from analyzer.base.model import RECORDED_ENV_NAMES

    letters = set("GHhNnAaSX")
    assert {n[0] for n in RECORDED_ENV_NAMES} <= letters
    assert "tracepoint:syscalls:sys_enter_execve" in ebpf.SCRIPT
    assert "tracepoint:task:task_newtask" in ebpf.SCRIPT


# -- strace ---------------------------------------------------------------------------------------

STRACE = [
    '600 1.000000 execve("/usr/bin/bash", ["bash", "-c", "true; curl -s http://127.0.0.1:18080/ ]x; sleep 14"], '
    '["PATH=/usr/bin", "GOPROXY=direct", "HTTPS_PROXY=http://user:secret@proxy:3128"]) = 0',
    "600 1.100000 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|CLONE_CHILD_SETTID|SIGCHLD, "
    "child_tidptr=0x7f) = 601",
    '601 1.200000 execve("/usr/bin/curl", ["curl", "-s", "http://127.0.0.1:18080/"], '
    '["GOPROXY=direct", "GOFLAGS=-mod=mod", "LANG=C"]) = 0',
    "601 1.300000 connect(5<TCP:[127.0.0.1:40000->127.0.0.1:18080]>, {sa_family=AF_INET, "
    'sin_port=htons(18080), sin_addr=inet_addr("127.0.0.1")}, 16) = 0',
    '600 1.500000 execve("/usr/bin/sleep", ["sleep", "14"], ["GOPROXY=direct"]) = 0',
]


def test_strace_keeps_every_image_and_the_environment() -> None:
    state = parse_output(STRACE, root_ppid=77)
    # the shell's latest image (sleep) is later than curl's exec: the root is still the shell
    assert min(state.images, key=lambda p: p.ts or 0.0).pid == 600 and state.processes[600].ppid == 77
    att = SocketAttributor("strace", state.sockets, state.images)
    proc = att.process_for(CURL_FLOW, 1.3)
    assert proc is not None and proc.comm == "curl"
    assert proc.env == (("GOFLAGS", "-mod=mod"), ("GOPROXY", "direct"))
    assert proc.parent_cmdline == "bash -c true; curl -s http://127.0.0.1:18080/ ]x; sleep 14"
    assert [a.pid for a in proc.ancestors] == [600, 77]
    assert dict(proc.ancestors[0].env or ())["HTTPS_PROXY"] == "http://user:secret@proxy:3128"


def test_execve_without_v_has_no_environment() -> None:
    call = parse_execve('execve("/usr/bin/curl", ["curl", "-s"], 0x7fffcc413ac0 /* 35 vars */) = 0')
    assert call == ("/usr/bin/curl", ["curl", "-s"], None)
    cut = parse_execve('execve("/bin/x", ["x", "a\\"b"...], ["GOPROXY=off"]) = 0')
    assert cut == ("/bin/x", ["x", 'a"b...'], [("GOPROXY", "off")])


# -- procfs ----------------------------------------------------------------------------------------

def test_procfs_reads_this_process_and_its_chain() -> None:
    me = process_record(os.getpid())
    assert me is not None and me.exe and me.env is not None
    with open(f"/proc/{os.getpid()}/environ", "rb") as fh:
            assert me.env == env_from_block(fh.read())
    chain = chain_records(os.getpid(), 5.0, {})
    assert [r.pid for r in chain][:2] == [os.getpid(), os.getppid()]
    assert all(r.ts == 5.0 for r in chain)
    # already read with the same program: not read again
    again = chain_records(os.getpid(), 6.0, {r.pid: r for r in chain})
    assert again == []


def test_folding_in_chunks_joins_an_exec_to_arguments_folded_earlier() -> None:
    events = [e for e in (ebpf.parse_line(line) for line in [TERMINAL, *BPFTRACE_LINES]) if e]
    events.sort(key=lambda e: e.ns)
    whole = ebpf.fold_events(events, 0.0)
    folder = ebpf.EventFolder(0.0)
    cut = next(i for i, e in enumerate(events) if isinstance(e, ebpf.ExecEvent) and e.pid == 501)
    folder.feed(events[:cut])  # curl's argv and environment in one chunk, its exec in the next
    first = folder.take()
    folder.feed(events[cut:])
    second = folder.take()
    assert (first[0] + second[0], first[1] + second[1]) == whole
