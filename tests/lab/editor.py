"""Editor scenarios: the real gopls (and govulncheck) in the client namespace, driven over LSP.

The editor is ``python -m tests.lab.lsp`` (pygls's LanguageClient) started under strace
(straced.py), so every go command gopls starts is seen with its argv and environment, and every
socket with its process: the ground truth for which process made each contact, its ancestors and
its Go environment, independent of proxytrace. gopls writes its own ``-rpc.trace -logfile``.

The tools are the lab tools (``make lab-tools``: gopls v0.23.0 and govulncheck v1.9.0 built with
the installed Go 1.26.8), and the go command they run is that Go 1.26.8 (first in PATH): gopls's
type checker is Go 1.26's and cannot load a newer Go's standard library. Every environment is
explicit (Lab.client_env plus the editor's PATH, GOTOOLCHAIN and TMPDIR).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .netlab import REPO, Lab
from .straced import Trace, parse_strace, strace_argv

if TYPE_CHECKING:
    from .scenarios import Run

LAB_TOOLS_BIN = REPO / ".lab-tools/bin"
HOST_GO_BIN = Path("/usr/local/go/bin")
GOPLS_PIN = "v0.23.0"
GOVULNCHECK_PIN = "v1.9.0"
HOST_GO_VERSION = "go1.26.8"

EDITOR_GOMOD = "module lab.test/editor\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"
EDITOR_MAIN = ('package main\n\nimport (\n\t"fmt"\n\n\t"vanity.example/m"\n)\n\n'
               "func main() { fmt.Println(m.Hello()) }\n")


def tools_missing() -> str | None:
    """Why the editor scenarios cannot run here, or None."""
    if not (HOST_GO_BIN / "go").exists():
        return f"the installed Go ({HOST_GO_BIN}/go) is missing"
    for tool in ("gopls", "govulncheck"):
        if not (LAB_TOOLS_BIN / tool).exists():
            return f"{LAB_TOOLS_BIN / tool} is not built (make lab-tools)"
    return None


def editor_env(lab: Lab, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The shell the editor was started from: the lab's clean environment with the installed Go
    and the lab tools in PATH. GOTOOLCHAIN is explicit (the installed Go's go.env must not decide)."""
    tmp = lab.tmp / "tmp"
    tmp.mkdir(exist_ok=True)
    env = {"PATH": f"{HOST_GO_BIN}:{LAB_TOOLS_BIN}:/usr/bin:/bin", "GOTOOLCHAIN": "local",
           "TMPDIR": str(tmp), "PYTHONPATH": str(REPO)}
    return lab.client_env({**env, **(extra or {})})


def workspace(lab: Lab) -> Path:
    """The editor's module: go.mod requires vanity.example/m v1.0.0, main.go calls m.Hello; no go.sum."""
    ws = lab.tmp / "work" / "editor"
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "go.mod").write_text(EDITOR_GOMOD)
    (ws / "main.go").write_text(EDITOR_MAIN)
    return ws


def _host_go(lab: Lab, args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    res = lab.run_client([str(HOST_GO_BIN / "go"), *args], env=editor_env(lab, env), cwd=cwd, timeout=90)
    if res.returncode != 0:
        raise RuntimeError(f"go {' '.join(args)}: {res.stderr.strip()}")
    return res


# -- preparation (before the capture starts) -----------------------------------------------------
def cache_without_sumdb(lab: Lab, env: dict[str, str] | None = None) -> None:
    """The module cache holds vanity.example/m v1.0.0, but nothing of the checksum database: as a
    module cache filled with GOSUMDB=off, or copied from another machine, leaves it. ``env`` can
    name another module cache (GOMODCACHE) than the lab's."""
    workspace(lab)
    # Outside the workspace: inside it, go mod download would also write go.sum.
    _host_go(lab, ["mod", "download", "vanity.example/m@v1.0.0"], {**(env or {}), "GOSUMDB": "off"},
             lab.tmp / "work")


def complete_workspace(lab: Lab) -> None:
    """go.sum complete and the module cached (go mod tidy in the lab, default GOPROXY)."""
    ws = workspace(lab)
    _host_go(lab, ["mod", "tidy"], {}, ws)


# -- running the editor --------------------------------------------------------------------------
def _lsp_client(lab: Lab, name: str, settings: dict[str, Any], steps: list[dict[str, Any]],
                answers: list[tuple[str, str]] | None = None
                ) -> tuple[dict[str, Any], list[str], Path]:
    """The LSP client's spec (written to the lab's temp dir), its argv and its transcript path."""
    ws = lab.tmp / "work" / "editor"
    out = lab.tmp / f"{name}-lsp.json"
    spec = {"gopls": [str(LAB_TOOLS_BIN / "gopls"), "-rpc.trace", "-logfile",
                      str(lab.tmp / f"{name}-gopls.log")],
            "root": str(ws), "settings": settings, "timeout": 60, "deadline": 240, "steps": steps,
            "answers": [list(a) for a in answers or []]}
    spec_path = lab.tmp / f"{name}-spec.json"
    spec_path.write_text(json.dumps(spec))
    return spec, [str(REPO / ".venv/bin/python"), "-m", "tests.lab.lsp", str(spec_path), str(out)], out


def start_editor(lab: Lab, name: str, *, settings: dict[str, Any], steps: list[dict[str, Any]],
                 env: dict[str, str] | None = None) -> tuple[subprocess.Popen[str], Path]:
    """Start the LSP client with gopls without waiting and without strace (for a run where
    proxytrace's own tier is the one watching); returns the client and its transcript's path.
    The client stops gopls by pid when its steps end; the caller stops the client."""
    _, argv, out = _lsp_client(lab, name, settings, steps)
    return lab.spawn_client(argv, env=editor_env(lab, env), cwd=REPO), out


def run_editor(lab: Lab, run: Run, name: str, *, settings: dict[str, Any], steps: list[dict[str, Any]],
               env: dict[str, str] | None = None,
               answers: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Start the LSP client (under strace) with gopls; returns its transcript."""
    from .scenarios import Step  # here: scenarios.py imports this module

    spec, argv, out = _lsp_client(lab, name, settings, steps, answers)
    trace = lab.tmp / f"{name}.strace"
    extra = dict(env or {})
    res = lab.run_client([*strace_argv(str(trace)), *argv], env=editor_env(lab, extra), cwd=REPO,
                         timeout=300)
    transcript = json.loads(out.read_text()) if out.exists() else {"ok": False, "events": []}
    run.steps.append(Step(["python", "-m", "tests.lab.lsp", f"<{name} spec>"], extra, res.returncode,
                          res.stdout, res.stderr, "python"))
    run.traces.append(trace)
    run.editor[name] = {"spec": spec, "transcript": transcript,
                        "gopls_log": (lab.tmp / f"{name}-gopls.log").read_text()
                        if (lab.tmp / f"{name}-gopls.log").exists() else ""}
    return transcript


def run_traced(lab: Lab, run: Run, name: str, argv: list[str], process: str,
               env: dict[str, str] | None = None, cwd: Path | None = None) -> None:
    """A command of the editor's shell (govulncheck, go), under strace like the editor."""
    from .scenarios import Step  # here: scenarios.py imports this module

    trace = lab.tmp / f"{name}.strace"
    extra = dict(env or {})
    res = lab.run_client([*strace_argv(str(trace)), *argv], env=editor_env(lab, extra),
                         cwd=cwd or lab.tmp / "work" / "editor", timeout=180)
    run.steps.append(Step(argv, extra, res.returncode, res.stdout, res.stderr, process))
    run.traces.append(trace)


def load_traces(paths: list[Path]) -> Trace:
    """One Trace over several strace files (pids never repeat within one lab run)."""
    processes: dict[int, Any] = {}
    connections = []
    for path in paths:
        if path.exists():
            trace = parse_strace(path.read_text())
            processes.update(trace.processes)
            connections.extend(trace.connections)
    return Trace(processes, connections)


# -- the scenarios ---------------------------------------------------------------------------------
_OPEN = [{"open": "main.go"}, {"open": "go.mod"}, {"diagnostics": "go.mod", "timeout": 90},
         {"settle": 3, "timeout": 60}]


_TIDY = [{"command": "gopls.tidy", "arguments": [{"URIs": ["$ROOT_URI/go.mod"]}], "timeout": 90},
         {"settle": 3, "timeout": 60}]


def gosum_missing(lab: Lab, run: Run) -> None:
    """a: go.sum lacks vanity.example/m (in the module cache); shell GOPROXY=direct. gopls loads
    the workspace and runs its tidy diagnostics; then the user runs "go mod tidy" from the editor
    (the gopls.tidy command)."""
    run_editor(lab, run, "gopls", settings={}, env={"GOPROXY": "direct"}, steps=[*_OPEN, *_TIDY])


def settings_mirror(lab: Lab, run: Run) -> None:
    """b: the same workspace and steps, module not downloaded yet, and the editor's settings set
    GOPROXY for gopls's go commands."""
    workspace(lab)
    run_editor(lab, run, "gopls", settings={"env": {"GOPROXY": "https://goproxy.example"}},
               env={"GOPROXY": "direct"}, steps=[*_OPEN, *_TIDY])


def vulncheck(lab: Lab, run: Run) -> None:
    """c: gopls's vulncheck (setting "Imports", then the run_govulncheck command), against the
    lab's vuln.go.dev (GOVULNDB unset)."""
    run_editor(lab, run, "gopls", settings={"vulncheck": "Imports"},
               steps=[*_OPEN, {"settle": 5, "timeout": 90},
                      {"command": "gopls.run_govulncheck",
                       "arguments": [{"URI": "$ROOT_URI/go.mod", "Pattern": "./..."}], "timeout": 120},
                      {"settle": 5, "timeout": 120},
                      # What the editor would offer on the finding (listed, not applied).
                      {"code_actions": "go.mod", "kind": "quickfix", "timeout": 60}])


def vulncheck_prompt(lab: Lab, run: Run) -> None:
    """c, with the default settings ("vulncheck": "Prompt"): saving go.mod makes gopls ask whether
    to run govulncheck; the user answers Yes."""
    run_editor(lab, run, "gopls", settings={},
               answers=[("Dependencies changed in", "Yes")],
               steps=[*_OPEN, {"save": "go.mod"}, {"settle": 5, "timeout": 60},
                      {"settle": 5, "timeout": 120}])


def govulncheck(lab: Lab, run: Run) -> None:
    """c, from the command line: ``govulncheck ./...`` in the same workspace."""
    run_traced(lab, run, "govulncheck", [str(LAB_TOOLS_BIN / "govulncheck"), "./..."], "govulncheck")


def telemetry_on(lab: Lab, run: Run) -> None:
    """d: what gopls contacts on its own, with telemetry uploading on (mode file "on")."""
    telemetry = lab.tmp / "home/.config/go/telemetry"
    telemetry.mkdir(parents=True, exist_ok=True)
    (telemetry / "mode").write_text("on")
    # The preparation's go command took the machine's daily upload token (x/telemetry
    # start.go, local/upload.token, 24 h): give it back, as on the day's first start of gopls.
    (telemetry / "local/upload.token").unlink(missing_ok=True)
    run_editor(lab, run, "gopls", settings={}, steps=[*_OPEN, {"settle": 10, "timeout": 90}])


def host_go_default(lab: Lab, run: Run) -> None:
    """The installed Go 1.26.8 as a client of its own: go get with the default configuration."""
    ws = workspace(lab)
    run_traced(lab, run, "go", [str(HOST_GO_BIN / "go"), "get", "-x", "vanity.example/m@latest"],
               "go", cwd=ws)


def process_table(trace: Trace) -> list[dict[str, Any]]:
    """Every process of a trace, for the manifest (pid, parent, comm, argv, Go env, ancestors).
    Forks that neither exec nor connect are left out (the Go runtime's clone probe for pidfd
    support is one: a child that exits at once)."""
    connecting = {c.pid for c in trace.connections}
    kept = [p for p in trace.processes.values() if p.execs or p.pid in connecting]
    return [p.to_dict() | {"ancestors": [a["comm"] for a in trace.ancestors(p.pid)]}
            for p in sorted(kept, key=lambda p: p.exec_ts or 0.0)]


_KEPT_EVENTS = {"initialized", "workspace/configuration", "didOpen", "diagnostics", "showMessage",
                "showMessageRequest", "codeActions", "command", "applyEdit"}


def summarize(sessions: dict[str, Any]) -> dict[str, Any]:
    """What the manifest keeps of each LSP session: the settings and steps, what gopls said that
    matters (diagnostics, messages, commands; progress and log lines are in gopls's own log)."""
    out = {}
    for name, data in sessions.items():
        t = data["transcript"]
        out[name] = {"settings": data["spec"]["settings"], "steps": data["spec"]["steps"],
                     "ok": t.get("ok"), "error": t.get("error"), "stop": t.get("stop"),
                     "started": t.get("started"),
                     "events": [e for e in t.get("events", []) if e["kind"] in _KEPT_EVENTS]}
    return out


def goroot_go_env(processes: list[dict[str, Any]]) -> dict[str, str]:
    """The go.env file of the GOROOT of every go command in the trace (path -> text): the
    defaults those go commands read, kept as ground truth for causes naming $GOROOT/go.env."""
    out = {}
    for p in processes:
        if p["comm"] != "go":
            continue
        exe = p.get("exe") or (str(HOST_GO_BIN / "go") if p["argv"][:1] == ["go"] else p["argv"][0])
        go_env = Path(exe).resolve().parent.parent / "go.env"
        if go_env.exists():
            out[str(go_env)] = go_env.read_text()
    return out
