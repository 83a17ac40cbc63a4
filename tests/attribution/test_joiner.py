"""Joining socket records to flows: exact 4-tuples, port reuse, never a guess."""

from __future__ import annotations

from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.records import ProcessRecord, SocketRecord
from analyzer.events.records import FlowRef


def _sock(ts: float, pid: int, lport: int | None, remote: str = "10.0.0.1", rport: int = 443,
          transport: str = "tcp", local: str | None = "10.0.0.2") -> SocketRecord:
    return SocketRecord(ts=ts, pid=pid, transport="udp" if transport == "udp" else "tcp",
                        local=local, local_port=lport, remote=remote, remote_port=rport,
                        source="ebpf", comm=f"p{pid}")


def test_exact_match_with_parent_details() -> None:
    att = SocketAttributor("ebpf", [_sock(10.0, 7, 5000)],
                           [ProcessRecord(7, ppid=1, comm="go", cmdline="go mod download", exe="/usr/bin/go"),
                            ProcessRecord(1, comm="bash", cmdline="-bash")])
    p = att.process_for(FlowRef("tcp", "10.0.0.2", 5000, "10.0.0.1", 443), 10.001)
    assert p is not None
    assert (p.pid, p.comm, p.cmdline, p.ppid, p.parent_comm, p.source) == \
        (7, "p7", "go mod download", 1, "bash", "ebpf")


def test_port_reuse_picks_the_socket_open_at_that_time() -> None:
    att = SocketAttributor("ebpf", [_sock(10.0, 7, 5000), _sock(50.0, 8, 5000)])
    flow = FlowRef("tcp", "10.0.0.2", 5000, "10.0.0.1", 443)
    assert att.process_for(flow, 20.0).pid == 7  # type: ignore[union-attr]
    assert att.process_for(flow, 50.5).pid == 8  # type: ignore[union-attr]


def test_other_ports_protocols_and_addresses_do_not_match() -> None:
    att = SocketAttributor("ebpf", [_sock(10.0, 7, 5000)])
    assert att.process_for(FlowRef("tcp", "10.0.0.2", 5001, "10.0.0.1", 443), 10.0) is None
    assert att.process_for(FlowRef("udp", "10.0.0.2", 5000, "10.0.0.1", 443), 10.0) is None
    assert att.process_for(FlowRef("tcp", "10.0.0.9", 5000, "10.0.0.1", 443), 10.0) is None


def test_wildcard_local_address_and_mapped_ipv6() -> None:
    att = SocketAttributor("strace", [_sock(1.0, 3, 6000, remote="::ffff:10.0.0.1", local="0.0.0.0")])
    assert att.process_for(FlowRef("tcp", "10.0.0.2", 6000, "10.0.0.1", 443), 1.0) is not None


def test_peer_only_records_match_only_when_unambiguous() -> None:
    one = SocketAttributor("strace", [_sock(5.0, 3, None, rport=53, transport="udp")])
    flow = FlowRef("udp", "10.0.0.2", 41000, "10.0.0.1", 53)
    assert one.process_for(flow, 5.1).pid == 3  # type: ignore[union-attr]
    two = SocketAttributor("strace", [_sock(5.0, 3, None, rport=53, transport="udp"),
                                      _sock(5.05, 4, None, rport=53, transport="udp")])
    assert two.process_for(flow, 5.1) is None
    assert one.process_for(flow, 60.0) is None  # too far in time


def test_process_tree() -> None:
    att = SocketAttributor("ebpf", processes=[ProcessRecord(10, ppid=1), ProcessRecord(11, ppid=10),
                                              ProcessRecord(12, ppid=11), ProcessRecord(99, ppid=1)])
    assert att.in_tree(12, 10) and att.in_tree(10, 10)
    assert not att.in_tree(99, 10) and not att.in_tree(5, 10)


def test_later_process_records_fill_in() -> None:
    att = SocketAttributor("ebpf", processes=[ProcessRecord(10, ppid=1, comm="sh")])
    att.add_processes([ProcessRecord(10, cmdline="go build", comm="go")])
    rec = att.processes[10]
    assert (rec.ppid, rec.comm, rec.cmdline) == (1, "go", "go build")
