"""The strace tier's parser, on real strace -f -yy output recorded from curl and a Go program."""

from __future__ import annotations

from pathlib import Path

from analyzer.attribution.strace import (
    StraceState,
    feed_line,
    parse_output,
    parse_socket,
    strace_argv,
)
from analyzer.events.records import FlowRef

DATA = Path(__file__).parent / "data"


def test_curl_connect_then_getsockname() -> None:
    with (DATA / "curl.strace").open() as fh:
        state = parse_output(fh, root_ppid=1)
    assert [(s.pid, s.transport, s.local, s.local_port, s.remote, s.remote_port) for s in state.sockets] \
        == [(9788, "tcp", "127.0.0.1", 43384, "127.0.0.1", 18080)]
    proc = state.processes[9788]
    assert (proc.comm, proc.exe, proc.ppid) == ("curl", "/usr/bin/curl", 1)
    assert proc.cmdline == "curl -s -o /dev/null http://localhost:18080/"


def test_go_threads_fold_into_the_process_and_udp_dns_is_seen() -> None:
    with (DATA / "go.strace").open() as fh:
        state = parse_output(fh)
    assert {s.pid for s in state.sockets} == {11158}  # sockets opened on threads 11160/11161
    assert {s.tid for s in state.sockets} == {11160, 11161}
    udp = [s for s in state.sockets if s.transport == "udp"]
    assert [(s.local_port, s.remote_port) for s in udp] == [(49455, 53), (46455, 53)]
    tcp = [s for s in state.sockets if s.transport == "tcp"]
    assert [(s.local_port, s.remote_port) for s in tcp] == [(59952, 18080)]
    assert state.malformed == 0


def test_attributor_from_strace_records() -> None:
    from analyzer.attribution.joiner import SocketAttributor

    with (DATA / "go.strace").open() as fh:
        state = parse_output(fh)
    att = SocketAttributor("strace", state.sockets, state.processes.values())
    p = att.process_for(FlowRef("udp", "192.0.2.2", 46455, "10.255.255.53", 53), 1795658051.36)
    assert p is not None and (p.pid, p.comm, p.source) == (11158, "g", "strace")
    assert att.process_for(FlowRef("udp", "192.0.2.2", 1, "10.255.255.53", 53), 1795658051.36) is None


def test_ipv6_fork_exec_and_unconnected_send() -> None:
    lines = [
        '100 1.0 execve("/bin/sh", ["sh", "-c", "x"], 0x7ffd /* 3 vars */) = 0',
        "100 1.1 clone(child_stack=NULL, flags=CLONE_CHILD_CLEARTID|SIGCHLD, child_tidptr=0x7f) = 101",
        '101 1.2 execve("/usr/bin/node", ["node", "a.js"], 0x55 /* 3 vars */) = 0',
        "101 1.3 getsockname(20<TCPv6:[[::1]:40000->[::1]:443]>, {sa_family=AF_INET6}, [28]) = 0",
        '101 1.4 sendto(21<UDP:[0.0.0.0:5353]>, "\\1\\2", 2, 0, {sa_family=AF_INET, sin_port=htons(53), '
        'sin_addr=inet_addr("127.0.0.53")}, 16) = 2',
        "not a strace line",
    ]
    state = StraceState()
    for line in lines:
        feed_line(state, line)
    assert state.processes[101].ppid == 100 and state.processes[101].comm == "node"
    v6, udp = state.sockets
    assert (v6.transport, v6.local, v6.local_port, v6.remote, v6.remote_port) == ("tcp", "::1", 40000, "::1", 443)
    assert (udp.transport, udp.local_port, udp.remote, udp.remote_port) == ("udp", 5353, "127.0.0.53", 53)
    assert state.malformed == 1


def test_socket_decoding_edge_cases() -> None:
    assert parse_socket("5<TCP:[14637]>") is None  # not connected yet: no endpoints
    assert parse_socket("3<UNIX-STREAM:[1]>") is None
    assert parse_socket("9<UDPv6:[[fe80::1]:53->[fe80::2]:5353]>") == ("udp", "fe80::1", 53, "fe80::2", 5353)


def test_argv_wraps_the_command_without_a_shell() -> None:
    argv = strace_argv("/tmp/x.txt", ["go", "mod", "download"])
    assert argv[0] == "strace" and argv[-4:] == ["--", "go", "mod", "download"]
    assert "-yy" in argv and "-f" in argv
