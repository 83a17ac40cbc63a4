"""Process information in pcapng files: ptcpdump's comments, ours, and Apple's blocks."""

from __future__ import annotations

import struct
from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.base.errors import ParseError
from analyzer.base.model import Ancestor, GoFiles, ProcessInfo
from analyzer.source.capture_file import ReadState, open_capture
from analyzer.source.process_comments import (
    ApplePib,
    comments_for_process,
    pack_processid_threadid,
    parse_apple_pib,
    process_from_apple,
    process_from_comments,
    unpack_processid_threadid,
)


def _frames(path: Path) -> list:
    with path.open("rb") as fh:
        return list(open_capture(fh, ReadState(str(path))))


def test_ptcpdump_curl_user_file(shared_captures: Path) -> None:
    frames = _frames(shared_captures / "ptcpdump" / "curl-user.pcapng")
    procs = [process_from_comments(f.comments, f.pid) for f in frames]
    attributed = [p for p in procs if p is not None]
    assert attributed, "ptcpdump's file carries process comments"
    p = attributed[0]
    assert (p.pid, p.comm, p.cmdline, p.uid) == (99722, "curl", "curl https://kernel.org", 1000)
    assert (p.ppid, p.parent_comm, p.parent_cmdline) == (18840, "bash", "-bash")
    assert p.source == "pcapng-comment"


@pytest.mark.parametrize(("name", "pid", "comm"), [
    ("dns.pcapng", 380281, "dig"), ("tcp.pcapng", 345650, "curl"), ("icmp.pcapng", 459141, "ping"),
    ("curl-thread.pcapng", 122868, "curl"),
])
def test_every_ptcpdump_sample(shared_captures: Path, name: str, pid: int, comm: str) -> None:
    procs = {process_from_comments(f.comments, f.pid) for f in _frames(shared_captures / "ptcpdump" / name)}
    procs.discard(None)
    assert {(p.pid, p.comm) for p in procs if p} == {(pid, comm)}


def test_arp_has_no_process(shared_captures: Path) -> None:
    frames = _frames(shared_captures / "ptcpdump" / "arp.pcapng")
    assert frames and all(process_from_comments(f.comments, f.pid) is None for f in frames)


def test_older_command_key_and_epb_pid_only() -> None:
    old = process_from_comments(["PID: 12\nCommand: /usr/local/go/bin/go\nArgs: go mod download"], None)
    assert old is not None and (old.pid, old.comm, old.cmdline) == (12, "go", "go mod download")
    bare = process_from_comments([], 4242)
    assert bare is not None and bare.pid == 4242 and bare.comm is None
    assert process_from_comments(["just a note"], None) is None
    assert process_from_comments(["PID: -3\nCmd: x"], None) is None


def test_writer_matches_ptcpdump_format_and_round_trips() -> None:
    p = ProcessInfo(pid=99722, comm="curl", cmdline="curl https://kernel.org", ppid=18840,
                    source="ebpf", uid=1000, parent_comm="bash", parent_cmdline="-bash")
    comments = comments_for_process(p, exe="/usr/bin/curl", parent_exe="/usr/bin/bash")
    assert comments == [
        "PID: 99722\nCmd: /usr/bin/curl\nArgs: curl https://kernel.org",
        "UserId: 1000",
        "ParentPID: 18840\nParentCmd: /usr/bin/bash\nParentArgs: -bash",
    ]
    back = process_from_comments(comments, 99722)
    assert back is not None
    assert (back.pid, back.comm, back.cmdline, back.ppid, back.uid, back.parent_comm) == \
        (99722, "curl", "curl https://kernel.org", 18840, 1000, "bash")


def test_processid_threadid_option() -> None:
    raw = pack_processid_threadid(99722, 99723)
    assert raw == struct.pack("<II", 99722, 99723)
    assert unpack_processid_threadid(raw) == (99722, 99723)
    with pytest.raises(ParseError):
        unpack_processid_threadid(b"\x01\x02")


def _pib(pid: int, name: bytes) -> bytes:
    opt = struct.pack("<HH", 2, len(name)) + name + b"\0" * (-len(name) % 4)
    return struct.pack("<I", pid) + opt + b"\0\0\0\0"


def test_apple_process_information_block() -> None:
    pibs = [parse_apple_pib(_pib(501, b"curl")), parse_apple_pib(_pib(77, b"go"))]
    assert pibs == [ApplePib(501, "curl", None), ApplePib(77, "go", None)]
    p = process_from_apple(pibs, 1)
    assert p is not None and (p.pid, p.comm, p.source) == (77, "go", "pcapng-comment")
    assert process_from_apple(pibs, 9) is None
    assert process_from_apple(pibs, None, 0) is not None


@pytest.mark.parametrize("body", [b"", b"\x01\x00", _pib(1, b"x")[:6] + b"\xff\x00"])
def test_apple_block_hostile_bytes(body: bytes) -> None:
    try:
        parse_apple_pib(body)
    except ParseError:
        return
    # A short but well-formed prefix is fine too; anything else must have raised ParseError.
    assert len(body) >= 4


# -- ancestors and environment after ptcpdump's three lines ---------------------------------------

def _ptcpdump_fields(comments: list[str]) -> dict[str, str]:
    """What ptcpdump's own reader takes from a packet's comments (internal/types: each line is
    ``Key: value``, split at the first colon, unknown keys skipped)."""
    out: dict[str, str] = {}
    for comment in comments:
        for line in comment.strip().split("\n"):
            key, sep, value = line.strip().partition(":")
            if sep and key.strip() in ("PID", "Cmd", "Command", "Args", "ParentPID", "UserId"):
                out[key.strip()] = value.strip()
    return out


CHAINED = ProcessInfo(
    pid=30, comm="go", cmdline="go list -m all", ppid=20, source="ebpf", uid=1000,
    parent_comm="gopls", parent_cmdline="gopls -mode=stdio", exe="/usr/local/go/bin/go",
    env=(("GOPROXY", "off"), ("HOME", "/home/u")),
    ancestors=(Ancestor(20, "gopls", "gopls -mode=stdio", "/home/u/go/bin/gopls", (("HOME", "/home/u"),)),
               Ancestor(10, "python3", "python3 client.py\nwith: a newline", "/usr/bin/python3", None),
               Ancestor(1, None, None)))


def test_chain_and_environment_round_trip_after_ptcpdumps_lines() -> None:
    comments = comments_for_process(CHAINED)
    lines = comments[0].split("\n")
    assert lines[:3] == ["PID: 30", "Cmd: /usr/local/go/bin/go", "Args: go list -m all"]
    assert [line.split(":", 1)[0] for line in lines[3:]] == ["Env", "Ancestors"]
    # ptcpdump's reader still finds its fields, and ignores ours
    assert _ptcpdump_fields(comments) == {"PID": "30", "Cmd": "/usr/local/go/bin/go",
                                          "Args": "go list -m all", "UserId": "1000",
                                          "ParentPID": "20"}
    back = process_from_comments(comments, 30)
    assert back is not None
    assert (back.ancestors, back.env, back.exe) == (CHAINED.ancestors, CHAINED.env, CHAINED.exe)
    assert (back.ppid, back.parent_comm, back.parent_cmdline) == (20, "gopls", "gopls -mode=stdio")
    assert back.chain_text() == "go ← gopls ← python3 ← ?"


def test_go_files_round_trip_as_one_line_after_the_chain() -> None:
    files = GoFiles("/usr/local/go", (("/home/u/.config/go/env", None),
                                      ("/usr/local/go/go.env", "GOPROXY=https://proxy.golang.org,direct\n"
                                                               "GOSUMDB=sum.golang.org\n")))
    comments = comments_for_process(replace(CHAINED, go_files=files))
    lines = comments[0].split("\n")
    assert [line.split(":", 1)[0] for line in lines[3:]] == ["Env", "Ancestors", "GoFiles"]
    assert _ptcpdump_fields(comments)["Args"] == "go list -m all"
    back = process_from_comments(comments, 30)
    assert back is not None and back.go_files == files
    assert process_from_comments(comments_for_process(CHAINED), 30).go_files is None  # type: ignore[union-attr]


@pytest.mark.parametrize("line", ["GoFiles: {", "GoFiles: []", 'GoFiles: {"goroot": "/g"}',
                                  'GoFiles: {"goroot": 3, "files": {"/g/go.env": 5}}'])
def test_malformed_go_files_lines_are_ignored(line: str) -> None:
    p = process_from_comments([f"PID: 30\nCmd: /g/bin/go\nArgs: go\n{line}"], None)
    assert p is not None and p.pid == 30 and p.exe == "/g/bin/go"
    assert p.go_files is None  # read as if the capture had none


def test_malformed_chain_lines_are_ignored_not_fatal() -> None:
    base = "PID: 30\nCmd: /usr/local/go/bin/go\nArgs: go list"
    for extra in ("Env: {not json", "Env: [1, 2]", 'Env: {"GOPROXY": 3}', "Ancestors: {}",
                  'Ancestors: [{"pid": "x"}]', 'Ancestors: [{"pid": true}]'):
        p = process_from_comments([f"{base}\n{extra}"], None)
        assert p is not None and p.pid == 30 and p.ancestors == ()
        assert p.env in (None, ()), extra
    # an entry without a pid ends the chain; the entries before it stay
    p = process_from_comments([base + '\nAncestors: [{"pid": 20, "comm": "gopls"}, {"comm": "x"}]'], None)
    assert p is not None and [(a.pid, a.comm) for a in p.ancestors] == [(20, "gopls")]
    assert p.ppid == 20 and p.parent_comm == "gopls"


def test_ptcpdump_files_have_no_chain_or_environment(shared_captures: Path) -> None:
    for name in ("curl-user.pcapng", "curl-thread.pcapng", "tcp.pcapng"):
        procs = {process_from_comments(f.comments, f.pid) for f in _frames(shared_captures / "ptcpdump" / name)}
        procs.discard(None)
        assert procs and all(p.ancestors == () and p.env is None for p in procs if p), name


def test_comments_of_a_flow_with_its_process_are_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """A packet's comments are read only while its flow has no process yet (and lines seen
    before are not parsed again): the evidence is the one every comment read gives, on every
    repository capture that carries processes, and most packets' comments are left unread."""
    from analyzer.events.builtin.engine import Engine
    from analyzer.events.builtin.read import read_evidence_builtin
    from analyzer.source import process_comments
    from tests.conftest import CAPTURES

    parsed: list[int] = []
    real = process_comments.process_from_comments

    def counting(*args: object) -> object:
        parsed.append(1)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(process_comments, "process_from_comments", counting)
    paths = [p for p in sorted(CAPTURES.glob("*.pcapng"))]
    skipping = [read_evidence_builtin(p) for p in paths]
    read_some = len(parsed)
    monkeypatch.setattr(Engine, "wants_process", lambda self, seg: True)
    parsed.clear()
    every = [read_evidence_builtin(p) for p in paths]
    assert sum(len(ev.flow_processes) for ev in every) > 20
    for a, b in zip(skipping, every, strict=True):
        assert a.flow_processes == b.flow_processes
        assert (a.dns, a.tls, a.http, a.socks) == (b.dns, b.tls, b.http, b.socks)
    commented = 0
    for p in paths:
        with p.open("rb") as fh:
            commented += sum(1 for f in open_capture(fh, ReadState(p.name)) if f.comments)
    assert read_some < commented / 4, (read_some, commented)
