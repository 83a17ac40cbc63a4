"""In the lab: `proxytrace run --go-trace -- go mod download` under scenarios 1-3, then each contact's
cause from the child's configuration (saved as an env file and read by `analyze --config-from`,
and, once `run` applies causes itself, from run's own report).

Needs root and network namespaces; the lab fixture skips with the reason otherwise.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.lab.fixtures import shared_lab  # noqa: F401

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
PROXYTRACE = [sys.executable, "-c", "from analyzer.cli import main; main()"]
GO_MOD = "module example.test/app\n\ngo 1.21\n\nrequire vanity.example/m v1.0.0\n"
GOOGLE = {"proxy.golang.org", "sum.golang.org", "golang.org", "go.googlesource.com", "go.dev",
          "dl.google.com"}

SCENARIOS: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # name: (extra environment, {host: expected cause prefix})
    "1-default": ({}, {
        "proxy.golang.org": "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default) -> ",
        "sum.golang.org": "GOSUMDB=sum.golang.org+",
    }),
    "2-direct-sumdb": ({"GOPROXY": "direct"}, {
        "vanity.example": "GOPROXY=direct from ",
        "sum.golang.org": "GOSUMDB=sum.golang.org+",
    }),
    "3-direct-private": ({"GOPROXY": "direct", "GOPRIVATE": "vanity.example"}, {
        "vanity.example": "GOPROXY=direct from ",
    }),
}


def _jsonl(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_RUNS: dict[str, tuple[list[dict[str, Any]], Path, dict[str, str], Path]] = {}


def _run(lab: Any, scenario: str) -> tuple[list[dict[str, Any]], Path, dict[str, str], Path]:
    """`proxytrace run --go-trace -- go mod download` once per scenario (shared by both tests)."""
    if scenario in _RUNS:
        return _RUNS[scenario]
    if not shutil.which("tcpdump"):
        pytest.skip("tcpdump is not installed")
    extra, _ = SCENARIOS[scenario]
    work = lab.tmp / f"work-{scenario}"
    work.mkdir()
    (work / "go.mod").write_text(GO_MOD)
    state = lab.tmp / f"state-{scenario}"  # a fresh module cache: every fetch happens again
    env = lab.client_env({"PYTHONPATH": str(REPO), "GOPATH": str(state / "gopath"),
                          "GOMODCACHE": str(state / "gopath/pkg/mod"),
                          "GOCACHE": str(state / "gocache"), **extra})
    capture = lab.tmp / f"{scenario}.pcapng"
    proc = lab.run_client([*PROXYTRACE, "run", "--go-trace", "-w", str(capture), "-f", "jsonl",
                           "--watch", "vanity.example", "--", "go", "mod", "download"],
                          env=env, timeout=240, cwd=work)
    assert proc.returncode == 0, proc.stderr[-2000:]
    _RUNS[scenario] = (_jsonl(proc.stdout), capture, env, work)
    return _RUNS[scenario]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_causes_from_the_childs_environment(shared_lab: Any, scenario: str) -> None:  # noqa: F811
    """The child's environment saved as an env file explains every contact of the capture."""
    run_contacts, capture, env, work = _run(shared_lab, scenario)
    assert run_contacts
    _, expected = SCENARIOS[scenario]
    env_file = shared_lab.tmp / f"{scenario}.env"
    env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()))
    analyzed = shared_lab.run_client([*PROXYTRACE, "analyze", "--config-from", str(env_file), "-f",
                                      "jsonl", "--watch", "vanity.example", str(capture)],
                                     env=env, timeout=240, cwd=work)
    assert analyzed.returncode == 0, analyzed.stderr[-2000:]
    contacts = _jsonl(analyzed.stdout)
    hosts = {c["host"] for c in contacts}
    assert set(expected) <= hosts, hosts
    if scenario == "3-direct-private":
        assert not hosts & GOOGLE, hosts
    for c in contacts:
        assert [f for f in c["findings"] if f["kind"] == "config-unexplained"] == [], c
        assert c["cause"], c
        prefix = expected.get(c["host"])
        if prefix:
            assert c["cause"].startswith(prefix), c["cause"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_run_sets_the_same_causes(shared_lab: Any, scenario: str) -> None:  # noqa: F811
    run_contacts, _, _, _ = _run(shared_lab, scenario)
    if all(c.get("cause") is None for c in run_contacts):
        pytest.skip("`run` does not set causes yet: it must call config_from_env(child_env, "
                    "find_go_binary(child_env)) and put the result in AnalyzeOptions.config")
    _, expected = SCENARIOS[scenario]
    for c in run_contacts:
        prefix = expected.get(c["host"])
        assert c["cause"], c
        if prefix is None:
            continue
        # --go-trace names the request behind each connection, so a cause may add what it
        # asked for (e.g. "and GOSUMDB=... -> checksum database probe"); the setting that
        # routed it to this host comes first either way.
        assert c["cause"].startswith(prefix.split(" -> ")[0]), c
