"""`capture` while the real gopls (driven by an LSP client), the go command, node and curl run at
once in the lab: every contact has its ancestor chain and its cause, from that process's own
environment, with who set the variable."""

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
from tests.lab import editor as lab_editor
from tests.lab.lsp import kill_tree
from tests.lab.netlab import GOROOT
from tests.lab.scenarios import _node_argv

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PROXYTRACE = [sys.executable, "-c", "from analyzer.cli import main; main()"]
GO_MOD = "module example.test/app\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"
# an "editor" that starts the go command with a GOPROXY of its own, as gopls adds GOPROXY=off
EDITOR = ("import os, subprocess, sys; sys.exit(subprocess.call(['go', 'mod', 'download'], "
          "env={**os.environ, 'GOPROXY': 'https://proxy.golang.org'}))")
# gopls loads the workspace and runs its tidy diagnostics (editor-gosum-missing, without the
# user's gopls.tidy, whose go command would have the shell's GOPROXY)
GOPLS_STEPS = [{"open": "main.go"}, {"open": "go.mod"}, {"diagnostics": "go.mod", "timeout": 90},
               {"settle": 3, "timeout": 60}]


def _comm(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return None


def test_capture_gives_every_contact_its_chain_and_cause(lab: Any, ebpf_loader: str) -> None:
    if ebpf.unavailable_reason():
        pytest.skip(str(ebpf.unavailable_reason()))
    if lab_editor.tools_missing():
        pytest.skip(str(lab_editor.tools_missing()))
    # gopls's workspace (editor-gosum-missing): go.mod requires vanity.example/m, cached in a
    # module cache of its own (the go command below must still download it), missing from
    # go.sum; the shell has GOPROXY=direct
    shell = {"GOPROXY": "direct", "GOMODCACHE": str(lab.tmp / "gopls-modcache")}
    lab_editor.cache_without_sumdb(lab, {"GOMODCACHE": shell["GOMODCACHE"]})
    work = lab.tmp / "work"
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
    lsp, transcript_path = lab_editor.start_editor(lab, "gopls", settings={}, steps=GOPLS_STEPS, env=shell)
    transcript: dict[str, Any] = {}
    try:
        clients = [
            ("go", lab.spawn_client([sys.executable, "-c", EDITOR], env=lab.client_env(), cwd=work)),
            ("node", lab.spawn_client(_node_argv(lab), env=lab.client_env(
                {"GOPROXY": "https://proxy.golang.org,direct"}))),
            ("curl", lab.spawn_client(["curl", "-sS", "-o", "/dev/null", "https://golang.org/"])),
            ("lsp", lsp),
        ]
        pids = {}
        for name, proc in clients:
            # the LSP client's own steps and gopls's shutdown are bounded within 240 s
            _, err = proc.communicate(timeout=300 if proc is lsp else 120)
            assert proc.returncode == 0, (name, err[-2000:])
            pids[name] = proc.pid  # `ip netns exec` execs the client: the client's own pid
    finally:
        # the client stops gopls by pid when its steps end; if it did not get that far, stop
        # the client (and gopls under it) here, and a gopls it left behind
        if lsp.poll() is None:
            kill_tree(lsp.pid)
            lsp.wait(timeout=10)
        if transcript_path.exists():
            transcript = json.loads(transcript_path.read_text())
        gopls_pid = transcript.get("gopls_pid")
        if gopls_pid and _comm(gopls_pid) == "gopls":
            kill_tree(gopls_pid)
    assert transcript.get("ok"), transcript.get("error")
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
    by_gopls = [c for c in by_comm["go"] if c["process"]["ancestors"][0]["comm"] == "gopls"]
    by_comm["go"] = [c for c in by_comm["go"] if c not in by_gopls]

    # gopls's go mod tidy (diagnostics) with GOPROXY=off still asks sum.golang.org (facts 1.2)
    assert by_gopls and {c["host"] for c in by_gopls} == {"sum.golang.org"}, by_gopls
    assert [c for c in by_gopls if c["layer"] == "tls"], by_gopls
    for c in by_gopls:
        p = c["process"]
        gopls, client = p["ancestors"][:2]
        assert (gopls["pid"], client["pid"], client["comm"]) == (gopls_pid, pids["lsp"], "python")
        assert p["exe"] == str(lab_editor.HOST_GO_BIN / "go") and p["cmdline"].startswith("go mod tidy")
        assert p["env"]["GOPROXY"] == "off" and gopls["env"]["GOPROXY"] == "direct"
        assert c["cause"].startswith("GOSUMDB=sum.golang.org+"), c["cause"]
        assert (f"-> checksum lookup (GOPROXY=off from environment, set by gopls (pid {gopls_pid}) "
                "for a go command it runs without network does not cover the checksum database); "
                f"gopls (pid {gopls_pid}) ran `go mod tidy") in c["cause"], c["cause"]

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
    # the lab's go (the "editor"'s child) and the installed go that gopls runs
    assert os.path.realpath(GOROOT) in {files.goroot for files in carried}
    for files in carried:
        root_env = os.path.join(files.goroot, "go.env")
        root_lines = "".join(f"{k}={v}\n" for k, v in
                             parse_env_file(Path(root_env).read_text()).items())
        assert dict(files.files) == {goenv: "GONOSUMDB=corp.example\n", root_env: root_lines}

    for c in by_comm["node"]:
        assert c["process"]["pid"] == pids["node"]
        assert c["cause"], c  # the gopls version check from GOPROXY, the Go release check
    for c in by_comm["curl"]:
        assert c["host"] == "golang.org" and c["process"]["pid"] == pids["curl"]
        # not a Go tool: the configuration does not explain it, and says so
        assert [f["kind"] for f in c["findings"] if f["kind"] == "config-unexplained"], c
