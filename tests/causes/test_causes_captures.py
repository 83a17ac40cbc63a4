"""Causes on real lab captures (captures/*.pcapng, recorded by tests/lab with the real go command
and node): the configuration each scenario ran with explains every contact, and a wrong
configuration leaves the contacts it cannot explain flagged."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.causes import config_from_env
from analyzer.causes.goconfig import GoConfig
from analyzer.pipeline import AnalyzeOptions, analyze_files

CAPTURES = Path(__file__).resolve().parents[2] / "captures"
GOOGLE = {"proxy.golang.org", "sum.golang.org", "golang.org", "go.googlesource.com", "go.dev",
          "dl.google.com", "telemetry.go.dev", "vuln.go.dev"}

# scenario -> {host: expected cause prefix}
EXPECTED = {
    "default": {
        "proxy.golang.org": "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default) -> ",
        "sum.golang.org": "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup",
    },
    "direct-sumdb": {
        "vanity.example": "GOPROXY=direct from environment -> direct fetch from the module's origin",
        "sum.golang.org": "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup "
                          "(GOPROXY=direct from environment does not cover the checksum database)",
    },
    "direct-nosumdb": {
        "vanity.example": "GOPROXY=direct from environment -> direct fetch from the module's origin",
    },
    "direct-golang-x": {
        "golang.org": "GOPROXY=direct from environment -> direct go-get meta lookup",
        "go.googlesource.com": "GOPROXY=direct from environment -> direct git fetch",
        "sum.golang.org": "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup",
    },
    "mirror": {"goproxy.example": "GOPROXY=http://goproxy.example from environment"},
    "mirror-direct": {
        "goproxy.example": "GOPROXY=https://goproxy.example,direct from environment",
        "vanity.example": "GOPROXY=https://goproxy.example,direct from environment -> direct (after",
    },
    "toolchain": {
        "proxy.golang.org": "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default)",
        "sum.golang.org": "GOSUMDB=sum.golang.org from $GOROOT/go.env (default)",
    },
    "toolchain-direct": {
        "go.dev": "GOTOOLCHAIN=auto from environment and GOPROXY=direct from environment -> direct "
                  "toolchain download",
        "dl.google.com": "GOTOOLCHAIN=auto from environment and GOPROXY=direct",
        "golang.org": "GOPROXY=direct from environment -> direct go-get meta lookup",
        "sum.golang.org": "GOSUMDB=sum.golang.org from $GOROOT/go.env (default)",
    },
    "forward-proxy": {
        "proxy.golang.org": "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default)",
        "sum.golang.org": "GOSUMDB=sum.golang.org",
    },
    "editor-node": {
        "proxy.golang.org": "GOPROXY=https://proxy.golang.org,direct from environment -> gopls "
                            "version check",
        "go.dev": "go.toolsManagement.checkForUpdates=proxy (vscode-go default) -> Go release check",
    },
}


def _manifest(name: str) -> dict:
    path = CAPTURES / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"lab capture {path} not recorded (make lab)")
    return json.loads(path.read_text())


def _config(manifest: dict, home: Path, go_bin: str, go_binary: str | None = None) -> GoConfig:
    goroot = str(Path(go_bin).parent.parent)
    return config_from_env({"HOME": str(home), "GOROOT": goroot, **manifest["env"]}, go_binary,
                           platform="linux")


def _analyze(name: str, manifest: dict, cfg: GoConfig) -> list:
    keylog = CAPTURES / f"{name}.keylog"
    opts = AnalyzeOptions(watch=WatchList.build([*DEFAULT_HOSTS, *manifest["watch"]]), config=cfg,
                          keylog=keylog if keylog.is_file() else None)
    return analyze_files([CAPTURES / f"{name}.pcapng"], opts).contacts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_contact_gets_the_scenarios_cause(name: str, home: Path, go_bin: str) -> None:
    manifest = _manifest(name)
    contacts = _analyze(name, manifest, _config(manifest, home, go_bin))
    assert contacts, name
    for c in contacts:
        unexplained = [f.detail for f in c.findings if f.kind == "config-unexplained"]
        assert unexplained == [], (c.host, c.layer, unexplained)
        assert c.cause is not None, (c.host, c.layer, c.operation)
        prefix = EXPECTED[name].get(c.host)
        if prefix is not None:
            assert c.cause.startswith(prefix), (c.host, c.cause)
        if name == "forward-proxy" and c.layer != "dns":
            proxy = manifest["env"]["HTTPS_PROXY"]
            assert c.cause.endswith(f"through HTTPS_PROXY={proxy} from environment"), c.cause
    seen = {c.host for c in contacts}
    assert set(EXPECTED[name]) <= seen
    if name == "direct-nosumdb":
        assert not seen & GOOGLE


def test_the_go_command_gives_the_same_causes(home: Path, go_bin: str) -> None:
    manifest = _manifest("direct-sumdb")
    by_files = _analyze("direct-sumdb", manifest, _config(manifest, home, go_bin))
    by_go = _analyze("direct-sumdb", manifest, _config(manifest, home, go_bin, go_bin))
    assert [c.cause for c in by_files] == [c.cause for c in by_go]


@pytest.mark.parametrize(("name", "env", "flagged"), [
    ("default", {"GOPROXY": "direct"}, {"proxy.golang.org"}),
    ("direct-sumdb", {"GOPROXY": "direct", "GONOSUMDB": "vanity.example"}, set()),
    ("direct-sumdb", {"GOPROXY": "direct", "GOSUMDB": "off"}, {"sum.golang.org"}),
    ("toolchain-direct", {"GOPROXY": "direct", "GOTOOLCHAIN": "local"}, {"go.dev", "dl.google.com"}),
])
def test_a_configuration_that_cannot_explain_the_capture_is_a_finding(
        name: str, env: dict[str, str], flagged: set[str], home: Path, go_bin: str) -> None:
    manifest = _manifest(name)
    contacts = _analyze(name, manifest, _config({**manifest, "env": env}, home, go_bin))
    hosts = {c.host for c in contacts if any(f.kind == "config-unexplained" for f in c.findings)}
    assert flagged <= hosts
    for c in contacts:
        for f in c.findings:
            if f.kind == "config-unexplained":
                assert f.layer == c.layer and c.host in f.detail


def test_a_program_that_is_not_a_go_tool_is_flagged(home: Path, go_bin: str) -> None:
    """The mixed capture: go, node and curl at once; curl's visit to golang.org is not Go's doing."""
    manifest = _manifest("mixed")
    contacts = _analyze("mixed", manifest, _config({**manifest, "env": {}}, home, go_bin))
    assert {"curl", "go"} <= {c.process.comm for c in contacts if c.process}
    for c in contacts:
        flagged = [f.detail for f in c.findings if f.kind == "config-unexplained"]
        comm = c.process.comm if c.process else None
        if comm == "curl":
            assert flagged and "not a Go tool" in flagged[0] and c.cause is None
        elif comm == "go":
            assert flagged == [] and c.cause is not None, (c.host, flagged)
