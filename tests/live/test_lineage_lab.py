"""`capture` while the real go command, node and curl run at once in the lab: every contact has its
ancestor chain and its cause, from that process's own environment, with who set the variable."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.attribution import ebpf
from tests.lab.scenarios import _node_argv

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PROXYTRACE = [sys.executable, "-c", "from analyzer.cli import main; main()"]
GO_MOD = "module example.test/app\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"
# an "editor" that starts the go command with a GOPROXY of its own, as gopls adds GOPROXY=off
EDITOR = ("import os, subprocess, sys; sys.exit(subprocess.call(['go', 'mod', 'download'], "
          "env={**os.environ, 'GOPROXY': 'https://proxy.golang.org'}))")


def test_capture_gives_every_contact_its_chain_and_cause(lab: Any) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    work = lab.tmp / "work"
    work.mkdir(exist_ok=True)
    (work / "go.mod").write_text(GO_MOD)
    out = lab.tmp / "capture.pcapng"
    capture = lab.spawn_client([*PROXYTRACE, "capture", "--attribution", "ebpf", "-f", "jsonl",
                                "-w", str(out)], env=lab.client_env({"PYTHONPATH": str(REPO)}))
    banner = ""
    while "capturing on" not in banner:
        line = capture.stderr.readline()
        assert line, banner + capture.stderr.read()
        banner += line
    clients = [
        ("go", lab.spawn_client([sys.executable, "-c", EDITOR], env=lab.client_env(), cwd=work)),
        ("node", lab.spawn_client(_node_argv(lab), env=lab.client_env(
            {"GOPROXY": "https://proxy.golang.org,direct"}))),
        ("curl", lab.spawn_client(["curl", "-sS", "-o", "/dev/null", "https://golang.org/"])),
    ]
    pids = {}
    for name, proc in clients:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (name, err[-2000:])
        pids[name] = proc.pid  # `ip netns exec` execs the client: the client's own pid
    capture.send_signal(signal.SIGINT)
    stdout, stderr = capture.communicate(timeout=120)
    assert capture.returncode == 0, stderr[-2000:]
    contacts = [json.loads(line) for line in stdout.splitlines()]

    by_comm: dict[str, list[dict[str, Any]]] = {}
    for c in contacts:
        p = c["process"]
        assert p is not None and p["source"] == "ebpf" and p["ancestors"], c
        by_comm.setdefault(p["comm"], []).append(c)
    assert {"go", "node", "curl"} <= set(by_comm), set(by_comm)

    for c in by_comm["go"]:
        p = c["process"]
        editor = p["ancestors"][0]
        assert (editor["pid"], editor["comm"]) == (pids["go"], "python3"), p["ancestors"]
        assert editor["cmdline"].endswith(EDITOR)
        assert p["env"]["GOPROXY"] == "https://proxy.golang.org" and "GOPROXY" not in editor["env"]
        assert p["exe"].endswith("/bin/go")
        assert c["cause"], c
        assert "ran `go mod download`" in c["cause"]
    go_hosts = {c["host"] for c in by_comm["go"]}
    assert {"proxy.golang.org", "sum.golang.org"} <= go_hosts, go_hosts
    proxy = [c for c in by_comm["go"] if c["host"] == "proxy.golang.org" and c["layer"] == "tls"]
    assert proxy and all(c["cause"].startswith(
        f"GOPROXY=https://proxy.golang.org from environment, set by python3 (pid {pids['go']}) ->")
        for c in proxy), proxy[0]["cause"]
    # the checksum database named by the lab's GOSUMDB, from the go command's environment
    sumdb = [c for c in by_comm["go"] if c["host"] == "sum.golang.org" and c["layer"] == "tls"]
    assert sumdb and all(c["cause"].startswith("GOSUMDB=sum.golang.org+") for c in sumdb)

    for c in by_comm["node"]:
        assert c["process"]["pid"] == pids["node"]
        assert c["cause"], c  # the gopls version check from GOPROXY, the Go release check
    for c in by_comm["curl"]:
        assert c["host"] == "golang.org" and c["process"]["pid"] == pids["curl"]
        # not a Go tool: the configuration does not explain it, and says so
        assert [f["kind"] for f in c["findings"] if f["kind"] == "config-unexplained"], c
