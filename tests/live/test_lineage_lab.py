"""`capture` while the real go command, node and curl run at once in the lab: every contact has its
ancestor chain and its cause, from that process's own environment, with who set the variable."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from analyzer.attribution import ebpf
from analyzer.causes.chain import parse_env_file
from analyzer.source.capture_file import ReadState, open_capture
from analyzer.source.process_comments import process_from_comments
from tests.lab.netlab import GOROOT
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
    # a GOENV file written as users write it, for the capture to carry (no network: -w only)
    wrote = subprocess.run([str(GOROOT / "bin" / "go"), "env", "-w", "GONOSUMDB=corp.example"],
                           env=lab.client_env(), capture_output=True, text=True, timeout=60,
                           check=False, cwd=work)
    assert wrote.returncode == 0, wrote.stderr
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

    # the Go configuration files the go process read, carried by the pcapng written
    goenv = str(lab.tmp / "home" / ".config" / "go" / "env")
    with out.open("rb") as fh:
        carried = {p.go_files for f in open_capture(fh, ReadState(str(out)))
                   if (p := process_from_comments(f.comments, f.pid)) is not None
                   and p.comm == "go" and p.go_files is not None}
    assert carried, "no GoFiles: line on the go process's packets"
    root_lines = "".join(f"{k}={v}\n" for k, v in
                         parse_env_file((GOROOT / "go.env").read_text()).items())
    for files in carried:
        assert files.goroot == os.path.realpath(GOROOT)
        assert dict(files.files) == {goenv: "GONOSUMDB=corp.example\n",
                                     os.path.join(files.goroot, "go.env"): root_lines}

    for c in by_comm["node"]:
        assert c["process"]["pid"] == pids["node"]
        assert c["cause"], c  # the gopls version check from GOPROXY, the Go release check
    for c in by_comm["curl"]:
        assert c["host"] == "golang.org" and c["process"]["pid"] == pids["curl"]
        # not a Go tool: the configuration does not explain it, and says so
        assert [f["kind"] for f in c["findings"] if f["kind"] == "config-unexplained"], c
