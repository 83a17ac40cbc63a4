"""Attribution in the lab: the real go command, node and curl in a client namespace.

proxytrace itself runs inside the client namespace (``ip netns exec``), so its capture sees the
client's interfaces while the tracers, being kernel-wide, see every process.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.attribution import ebpf
from analyzer.packets.decode import Decoder
from analyzer.source.capture_file import ReadState, open_capture
from tests.conftest import tiers_with_loaders, use_ebpf_loader

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PROXYTRACE = [sys.executable, "-c", "from analyzer.cli import main; main()"]
GO_MOD = "module example.test/app\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"


def _env(lab: Any) -> dict[str, str]:
    return lab.client_env({"PYTHONPATH": str(REPO)})


def _workdir(lab: Any) -> Path:
    work = lab.tmp / "work"
    work.mkdir(exist_ok=True)
    (work / "go.mod").write_text(GO_MOD)
    return work


def _tier_skip(tier: str) -> None:
    if tier == "ebpf" and ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if tier == "strace" and not shutil.which("strace"):
        pytest.skip("strace is not installed")
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")


@pytest.mark.parametrize(("tier", "loader"), tiers_with_loaders("ebpf", "strace"))
def test_go_mod_download_every_contact_is_the_go_process(lab: Any, tier: str, loader: str | None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    use_ebpf_loader(monkeypatch, loader)
    _tier_skip(tier)
    _workdir(lab)  # run_client's default cwd
    out = lab.tmp / f"run-{tier}.pcapng"
    proc = lab.run_client([*PROXYTRACE, "run", "--attribution", tier, "--go-trace", "-w", str(out),
                           "-f", "jsonl", "--", "go", "mod", "download"], env=_env(lab), timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    contacts = [json.loads(line) for line in proc.stdout.splitlines()]
    layers = {(c["layer"], c["host"]) for c in contacts}
    assert {("dns", "proxy.golang.org"), ("tls", "proxy.golang.org"), ("dns", "sum.golang.org"),
            ("tls", "sum.golang.org")} <= layers
    procs = {(c["process"]["pid"], c["process"]["comm"], c["process"]["source"])
             for c in contacts if c["process"]}
    assert len(procs) == 1 and all(c["process"] for c in contacts), procs
    (pid, comm, source), = procs
    assert comm == "go" and source == tier
    # --go-trace: every TLS contact names the request that opened its connection, and the
    # server saw each of those requests.
    served = {r.get("path") for r in lab.server_requests()}
    for c in contacts:
        if c["layer"] == "tls":
            assert c["operation"] and c["url"], c
            assert c["url"].split(c["host"], 1)[1] in served
    with out.open("rb") as fh:
        frames = list(open_capture(fh, ReadState(str(out))))
    # Packets carry the process that sent them: the go command's, except the lab resolver's
    # answers, which dnsmasq sends from an unconnected socket that the ebpf tier sees too.
    decoder = Decoder()
    resolver_pids = set()
    for f in frames:
        seg = decoder.decode(f.number, f.ts, f.linktype, f.data)
        assert seg is not None and f.pid is not None, f.number
        if seg.transport == "udp" and seg.sport == 53 and f.pid != pid:
            resolver_pids.add(f.pid)
            continue
        assert f.pid == pid and f.comments[0].startswith(f"PID: {pid}\nCmd: "), f.number
    assert len(resolver_pids) <= 1 and (tier == "ebpf" or not resolver_pids)


def test_capture_attributes_go_node_and_curl_at_once(lab: Any, ebpf_loader: str) -> None:
    _tier_skip("ebpf")
    if not shutil.which("node"):
        pytest.skip("node is not installed")
    work = _workdir(lab)
    out = lab.tmp / "capture.pcapng"
    report = lab.tmp / "capture.jsonl"
    cap = lab.spawn_client([*PROXYTRACE, "capture", "--duration", "12", "-w", str(out), "-f", "jsonl",
                            "-o", str(report)], env=_env(lab), cwd=work)
    assert cap.stderr is not None
    line = cap.stderr.readline()
    assert line.startswith("proxytrace: capturing on any"), line
    node_js = "require('https').get('https://go.dev/dl/?mode=json', r => { r.resume(); r.on('end', () => process.exit(0)); });"
    clients = {
        "go": lab.spawn_client(["go", "mod", "download"], env=_env(lab), cwd=work),
        "node": lab.spawn_client(["node", "-e", node_js], env=_env(lab), cwd=work),
        "curl": lab.spawn_client(["curl", "-s", "-o", "/dev/null", "https://dl.google.com/"],
                                 env=_env(lab), cwd=work),
    }
    pids = {name: p.pid for name, p in clients.items()}
    for name, p in clients.items():
        assert p.wait(timeout=60) == 0, (name, p.stderr.read() if p.stderr else "")
    assert cap.wait(timeout=60) == 0, cap.stderr.read()
    contacts = [json.loads(ln) for ln in report.read_text().splitlines()]
    expected = {"proxy.golang.org": "go", "sum.golang.org": "go", "go.dev": "node",
                "dl.google.com": "curl"}
    seen: dict[str, set[tuple[int, str]]] = {}
    for c in contacts:
        assert c["process"] is not None, c
        seen.setdefault(c["host"], set()).add((c["process"]["pid"], c["process"]["comm"]))
    for host, comm in expected.items():
        # `ip netns exec` execs the client in place, so the pid we spawned is the client's.
        assert seen.get(host) == {(pids[comm], comm)}, (host, seen.get(host))
