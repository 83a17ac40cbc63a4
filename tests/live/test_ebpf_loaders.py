"""The two programs that can run the ebpf tier's kernel program (the loader built at install and
bpftrace with the script) trace the same real workload into the same events and the same records.

Both run at once over one workload on loopback: curl, a shell chain with Go settings in its
environment, the go command fetching from a loopback proxy, and UDP sends (connected and not,
IPv4 and IPv6). Only the events of the workload's own process tree are compared: each tracer
also sees the other start.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from analyzer.attribution import ebpf, ebpf_backend
from analyzer.attribution.joiner import SocketAttributor
from tests.lab.netlab import GOROOT
from tests.live.loopback_http import serve_ok

GO = GOROOT / "bin" / "go"
UDP_CODE = """
import socket
v4 = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
v4.sendto(b"x", ("127.0.0.1", 9))
v4.sendmsg([b"y"], [], 0, ("127.0.0.2", 7))
v6 = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
v6.sendto(b"x", ("::1", 9))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.connect(("127.0.0.1", 53))
c.send(b"q")
"""


def _skip_reason() -> str | None:
    if os.geteuid() != 0:
        return "the ebpf tier needs root"
    if not ebpf_backend.loader_built():
        return f"the CO-RE loader is not built ({ebpf_backend.LOADER})"
    if not ebpf_backend.bpftrace_installed():
        return "bpftrace is not installed"
    if not (shutil.which("curl") and GO.exists()):
        return "curl and the lab's go are needed"
    return ebpf.unavailable_reason()


pytestmark = pytest.mark.skipif(_skip_reason() is not None, reason=str(_skip_reason()))


def _workload(port: int, tmp: Path) -> subprocess.Popen[bytes]:
    """A shell running real programs, all talking to loopback only."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": f"{GO.parent}:/usr/bin:/bin", "HOME": str(home), "LANG": "C.UTF-8",
        "GOPROXY": f"http://127.0.0.1:{port}", "GOSUMDB": "off", "GOFLAGS": "-modcacherw",
        "GOTOOLCHAIN": "local", "GOENV": "off", "GOMODCACHE": str(tmp / "modcache"),
        "GOCACHE": str(tmp / "gocache"), "NO_PROXY": "127.0.0.1",
        "HTTPS_PROXY": "http://user:secret@127.0.0.1:9", "URL": f"http://127.0.0.1:{port}/",
        "UDP_CODE": UDP_CODE, "PY": sys.executable,
        # longer than the 199 bytes read of each string: both cut it at the same place
        "GOLONG": "x" * 300, "ARG": "y" * 300,
    }
    script = ('curl -s -o /dev/null "$URL"; bash -c \'curl -s -o /dev/null "$URL"; true\'; '
              # the proxy answers "ok" to everything: go fails, after asking it
              'go mod download -json example.com/m@v1.0.0 >/dev/null 2>&1; '
              '"$PY" -c "$UDP_CODE"; /bin/true $(seq 40) "$ARG"; exec true one two')
    return subprocess.Popen(["bash", "-c", script], env=env, cwd=tmp)  # noqa: S603 - fixed argv


def _marker_port() -> tuple[socket.socket, int]:
    """A UDP socket of ours connected to the discard port (nothing is sent): its line in a
    tracer's output means that tracer has printed every earlier event."""
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.bind(("127.0.0.1", 0))
    return probe, probe.getsockname()[1]


class _Program:
    """One tracer program run directly, its lines read as they come."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # noqa: S603
                                     text=True, errors="replace", env=env)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline()
        assert first == "R\t\n", first + (self.proc.stderr.read() if self.proc.stderr else "")
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def seen_port(self, port: int) -> bool:
        return any(line.startswith("S\t") and f"\t127.0.0.1\t{port}\t" in line
                   for line in list(self.lines))

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=30)
        self._reader.join(timeout=10)


def _wait_for(cond: object, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


def _tree(events: list[ebpf.Event], root: int) -> set[int]:
    pids = {root}
    for ev in sorted(events, key=lambda e: e.ns):
        if isinstance(ev, ebpf.ForkEvent) and ev.ppid in pids:
            pids.add(ev.pid)
    return pids


def test_both_loaders_print_the_same_events(tmp_path: Path) -> None:
    bpftrace = _Program(["bpftrace", "-q", "-B", "line", "-e", ebpf.SCRIPT],
                        {**os.environ, "BPFTRACE_STRLEN": str(ebpf.STRLEN)})
    core = _Program([str(ebpf_backend.LOADER)], dict(os.environ))
    try:
        with serve_ok() as port:
            workload = _workload(port, tmp_path)
            workload.wait(timeout=120)
            root = workload.pid
        probe, marker = _marker_port()
        with probe:
            probe.connect(("127.0.0.1", 9))
            assert _wait_for(lambda: bpftrace.seen_port(marker) and core.seen_port(marker))
    finally:
        bpftrace.stop()
        core.stop()
    outputs = []
    for program in (bpftrace, core):
        events = [e for e in (ebpf.parse_line(line) for line in program.lines) if e is not None]
        outputs.append(events)
    tree = _tree(outputs[0], root) | _tree(outputs[1], root)
    kinds = []
    for events in outputs:
        # the kernel time differs by the nanoseconds between the two programs' probes
        mine = Counter(dataclasses.replace(e, ns=0) for e in events if e.pid in tree)
        kinds.append(mine)
    only_bpftrace, only_core = kinds[0] - kinds[1], kinds[1] - kinds[0]
    assert not only_bpftrace and not only_core, (list(only_bpftrace)[:5], list(only_core)[:5])
    # the workload really was traced: curl's connects, go's exec with its environment, the
    # unconnected UDP sends, the forks and the exec in place
    seen = kinds[1]
    assert any(isinstance(e, ebpf.SockEvent) and e.comm == "curl" and e.remote_port == port
               for e in seen)
    assert any(isinstance(e, ebpf.SockEvent) and e.comm == "go" and e.remote_port == port
               for e in seen)
    assert any(isinstance(e, ebpf.EnvEvent) and e.entry == f"GOPROXY=http://127.0.0.1:{port}"
               for e in seen)
    assert {(e.remote, e.remote_port) for e in seen if isinstance(e, ebpf.SockEvent)
            and e.transport == "udp"} >= {("127.0.0.1", 9), ("127.0.0.2", 7), ("::1", 9),
                                          ("127.0.0.1", 53)}
    assert sum(isinstance(e, ebpf.ForkEvent) for e in seen) >= 4
    assert any(isinstance(e, ebpf.ArgEvent) and e.value == "two" for e in seen)
    # more than 32 arguments: the 33rd is "...", as is the rest of a long string
    assert any(isinstance(e, ebpf.ArgEvent) and e.index == ebpf.MAX_ARGS and e.value == "..."
               for e in seen)
    assert any(isinstance(e, ebpf.EnvEvent) and e.entry == "GOLONG=" + "x" * (ebpf.STRLEN - 8)
               for e in seen)


def _socket_key(s: object) -> tuple[object, ...]:
    return tuple(getattr(s, f) for f in ("pid", "tid", "transport", "local", "local_port",
                                         "remote", "remote_port", "comm"))


def test_both_loaders_give_the_same_records(tmp_path: Path) -> None:
    core = ebpf.EbpfTracer(backend=ebpf_backend.CORE)
    bpftrace = ebpf.EbpfTracer(backend=ebpf_backend.BPFTRACE)
    bpftrace.launch()
    core.start()
    bpftrace.wait_ready()
    assert core.backend == ebpf_backend.CORE and bpftrace.backend == ebpf_backend.BPFTRACE
    try:
        with serve_ok() as port:
            root = _workload(port, tmp_path)
            root.wait(timeout=120)
    finally:
        atts: list[SocketAttributor] = [core.stop(), bpftrace.stop()]
    found = []
    for att in atts:
        socks = sorted((s for s in att.sockets if att.in_tree(s.pid, root.pid)), key=_socket_key)
        found.append(([_socket_key(s) for s in socks],
                      # the process behind each socket as the report shows it: command line,
                      # exec-time environment, the whole parent chain
                      [att.process_info(s.pid, s.comm, at=s.ts) for s in socks]))
    assert found[0][0] == found[1][0]
    assert found[0][1] == found[1][1]
    infos = found[0][1]
    go = [p for p in infos if p.comm == "go"]
    assert go and dict(go[0].env or ())["GOPROXY"] == f"http://127.0.0.1:{port}"
    inner = [p for p in infos if p.comm == "curl" and p.parent_comm == "bash"
             and p.ancestors and p.ancestors[0].cmdline is not None
             and p.ancestors[0].cmdline.startswith("bash -c curl")]
    assert inner, [(p.comm, p.parent_cmdline) for p in infos]
