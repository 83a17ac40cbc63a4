"""Folding ``go -x`` lines into TLS contacts."""

from __future__ import annotations

from analyzer.attribution.gotrace import TimedGet, apply_go_trace, gets_from_text, parse_get_line
from analyzer.base.model import Contact, ProcessInfo

GO = ProcessInfo(pid=40, comm="go", cmdline="go mod download", ppid=1, source="ebpf")


def _tls(ts: float, host: str, process: ProcessInfo | None = GO, sport: int = 5000) -> Contact:
    return Contact(ts=ts, layer="tls", host=host, transport="tcp", src="10.0.0.2", sport=sport,
                   dst="10.0.0.1", dport=443, flow_id=f"F{sport}", process=process)


def test_start_lines_only() -> None:
    start = parse_get_line("# get https://proxy.golang.org/vanity.example/m/@v/v1.0.0.mod", 5.0)
    assert start is not None and start.host == "proxy.golang.org" and start.operation == "module-mod"
    assert parse_get_line("# get https://proxy.golang.org/x/@v/list: 200 OK (0.010s)", 5.0) is None
    assert parse_get_line("mkdir -p $WORK/b001/", 5.0) is None


def test_each_connection_gets_the_request_that_opened_it() -> None:
    gets = [
        TimedGet(1.00, "https://proxy.golang.org/m/@v/v1.0.0.mod", "proxy.golang.org", "/m/@v/v1.0.0.mod", "module-mod"),
        TimedGet(1.20, "https://sum.golang.org/lookup/m@v1.0.0", "sum.golang.org", "/lookup/m@v1.0.0", "sumdb-lookup"),
        TimedGet(1.40, "https://proxy.golang.org/m/@v/v1.0.0.zip", "proxy.golang.org", "/m/@v/v1.0.0.zip", "module-zip"),
    ]
    contacts = [_tls(1.01, "proxy.golang.org", sport=1), _tls(1.21, "sum.golang.org", sport=2),
                _tls(1.45, "proxy.golang.org", sport=3)]
    out = apply_go_trace(contacts, gets, pids={40})
    assert [c.operation for c in out] == ["module-mod", "sumdb-lookup", "module-zip"]
    assert out[0].url == "https://proxy.golang.org/m/@v/v1.0.0.mod"
    assert all("-x log" in c.notes[-1] for c in out)


def test_other_processes_dns_and_known_operations_are_left_alone() -> None:
    gets = gets_from_text("# get https://proxy.golang.org/m/@v/list\n", ts=1.0)
    node = ProcessInfo(pid=41, comm="node", cmdline="node", ppid=1, source="ebpf")
    other = _tls(2.0, "proxy.golang.org", process=node)
    earlier = _tls(0.5, "proxy.golang.org", sport=9)
    out = apply_go_trace([other, earlier], gets, pids={40})
    assert [c.operation for c in out] == [None, None]
