"""GOPROXY/GOSUMDB parsing, consequences and lint rules on hand-built configurations."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.causes.consequences import fetch_plan, go_consequences, sumdb_plan
from analyzer.causes.consumers import Consumer
from analyzer.causes.goconfig import ENVIRONMENT, GOROOT_ENV, GoConfig, Setting
from analyzer.causes.gomod import needs_switch, scan
from analyzer.causes.lint import lint_consumer, lint_editor, lint_modfiles
from analyzer.causes.proxylist import match_prefix_patterns, parse_goproxy, parse_gosumdb, redact
from analyzer.causes.vscode import merge, parse_settings_text


def cfg(**values: str) -> GoConfig:
    base = {"GOPROXY": "https://proxy.golang.org,direct", "GOSUMDB": "sum.golang.org",
            "GOTOOLCHAIN": "auto", "GOTELEMETRY": "local"}
    base.update(values)
    return GoConfig(settings={k: Setting(k, v, ENVIRONMENT if k in values else GOROOT_ENV)
                              for k, v in base.items()}, go_version="go1.27.3")


@pytest.mark.parametrize(("value", "urls", "ignored"), [
    ("https://proxy.golang.org,direct", ["https://proxy.golang.org", "direct"], []),
    ("goproxy.cn|direct", ["https://goproxy.cn", "direct"], []),
    ("direct,https://proxy.golang.org", ["direct"], ["https://proxy.golang.org"]),
    ("off,direct", ["off"], ["direct"]),
    (" , ,", [], []),
    ("file:///srv/mods,https://a.example", ["file:///srv/mods", "https://a.example"], []),
])
def test_parse_goproxy(value: str, urls: list[str], ignored: list[str]) -> None:
    pl = parse_goproxy(value)
    assert [e.url for e in pl.entries] == urls and list(pl.ignored) == ignored


def test_parse_gosumdb() -> None:
    assert parse_gosumdb("sum.golang.google.cn").direct_host == "sum.golang.google.cn"
    assert parse_gosumdb("sum.golang.org").direct_host == "sum.golang.org"
    assert parse_gosumdb("sum.golang.org https://sumproxy.corp").direct_host == "sumproxy.corp"
    assert parse_gosumdb("off").off


@pytest.mark.parametrize(("patterns", "path", "match"), [
    ("corp.example/*", "corp.example/team/repo", True),
    ("corp.example", "corp.example/team/repo", True),
    ("*.corp.example", "git.corp.example/x", True),
    ("corp.example/*/private", "corp.example/team", False),
    ("golang.org", "golang.org/toolchain", True),
    ("other.example,corp.example", "corp.example/a", True),
    ("corp.example", "corp.example.evil/a", False),
])
def test_match_prefix_patterns(patterns: str, path: str, match: bool) -> None:
    assert match_prefix_patterns(patterns, path) is match


def test_redact() -> None:
    assert redact("https://u:p@a.example,https://b.example|direct") == \
        "https://xxxxx@a.example,https://b.example|direct"
    assert redact("http://token@127.0.0.1:3128") == "http://xxxxx@127.0.0.1:3128"


def test_plans_for_the_three_lab_scenarios() -> None:
    hosts, _ = fetch_plan(cfg(), "golang.org/x/text")
    assert hosts == ("proxy.golang.org", "golang.org", "go.googlesource.com")
    assert sumdb_plan(cfg(), "golang.org/x/text")[0] == ("proxy.golang.org", "sum.golang.org")
    direct = cfg(GOPROXY="direct")
    assert fetch_plan(direct, "vanity.lab/m")[0] == ("vanity.lab",)
    assert sumdb_plan(direct, "vanity.lab/m")[0] == ("sum.golang.org",)
    private = cfg(GOPROXY="direct", GONOSUMDB="vanity.lab")
    assert sumdb_plan(private, "vanity.lab/m")[0] == ()
    assert sumdb_plan(private, "golang.org/toolchain")[0] == ("sum.golang.org",)
    mirror = cfg(GOPROXY="https://goproxy.cn,direct")
    assert sumdb_plan(mirror, "x.example/m")[0] == ("goproxy.cn", "sum.golang.org")


def test_toolchain_consequence_follows_gotoolchain_and_goproxy() -> None:
    def switch(c: GoConfig) -> tuple[str, ...]:
        return next(q for q in go_consequences("go", c, "go1.99.0") if q.case == "toolchain switch").hosts

    assert switch(cfg()) == ("proxy.golang.org", "sum.golang.org")
    assert switch(cfg(GOPROXY="direct")) == ("golang.org", "go.dev", "dl.google.com", "sum.golang.org")
    assert switch(cfg(GOTOOLCHAIN="local")) == ()
    assert switch(cfg(GOTOOLCHAIN="go1.30.0+path")) == ()


def test_lint_rules() -> None:
    def codes(c: GoConfig) -> list[str]:
        return [f.code for f in lint_consumer(Consumer("go", "", c))]

    assert codes(cfg()) == []
    assert codes(cfg(GOPROXY="direct")) == ["direct-with-default-sumdb"]
    assert codes(cfg(GOPROXY="direct", GOSUMDB="off", GOTOOLCHAIN="local")) == []
    assert codes(cfg(GOPROXY="off,https://proxy.golang.org")) == ["goproxy-unreachable-entries"]
    assert codes(cfg(GOPROXY=",")) == ["goproxy-empty"]
    assert codes(cfg(GOSUMDB="off")) == ["gosumdb-off-toolchain"]
    flags = lint_consumer(Consumer("go", "", cfg(GOFLAGS="-mod=mod -insecure -x -v")))
    assert [f.detail.split(":")[0] for f in flags] == [
        "GOFLAGS contains -mod=mod", "GOFLAGS contains -insecure", "GOFLAGS contains -x"]


def test_modfile_scan_and_versions() -> None:
    mf = scan(Path("go.mod"), "module m\n\ngo 1.22\n\nrequire (\n\tproxy v1.0.0\n)\n"
              "// proxy in a comment\nproxy goproxy.cn,direct\ntoolchain go1.99.0\n")
    assert (mf.go, mf.toolchain, mf.unknown) == ("1.22", "go1.99.0", ((9, "proxy"),))
    (f,) = lint_modfiles([(mf, None)])
    assert f.location == "go.mod:9" and "unknown directive: proxy" in f.evidence
    assert needs_switch("go1.27.3", "go1.99.0") and not needs_switch("go1.27.3", "1.22")
    assert needs_switch("go1.27.3", "go1.28rc1") and not needs_switch("go1.28.0", "go1.28rc1")


def test_editor_lint() -> None:
    f = parse_settings_text("/s.json", '{"GOPROXY": "direct", "go.toolsEnvironment": {}, '
                            '"go.toolsEnvVars": {"GOPROXY": 1}, "go.formatTool": "gofmt", '
                            '"gopls": {"GOFLAGS": "-x", "env": {}, "ui.semanticTokens": true}}')
    found = {(x.code, x.location) for x in lint_editor(merge([f]))}
    assert found == {("vscode-unknown-setting", "/s.json: GOPROXY"),
                     ("vscode-unknown-setting", "/s.json: go.toolsEnvironment"),
                     ("vscode-unknown-setting", "/s.json: gopls.GOFLAGS"),
                     ("vscode-bad-value", "/s.json: go.toolsEnvVars.GOPROXY")}


def test_goinsecure_and_godebug() -> None:
    cases = {q.case: q for q in go_consequences("go", cfg(GOINSECURE="insecure.example"))}
    assert "plain http://" in cases["insecure fetch"].detail
    assert "insecure fetch" not in {q.case for q in go_consequences("go", cfg())}
    (f,) = lint_consumer(Consumer("go", "", cfg(GODEBUG="netdns=cgo+1")))
    assert f.code == "godebug-netdns-cgo" and f.severity == "info"


def test_goproxy_off_still_reaches_the_checksum_database() -> None:
    """Facts 1.2, reproduced there: GOPROXY=off stops downloads, not sum.golang.org lookups."""
    off = cfg(GOPROXY="off")
    assert fetch_plan(off, "golang.org/x/text")[0] == ()
    assert sumdb_plan(off, "golang.org/x/text")[0] == ("sum.golang.org",)


def test_forward_proxy_consequence_names_the_tunnel() -> None:
    from analyzer.causes.consequences import forward_proxy

    socks = forward_proxy("go", cfg(HTTPS_PROXY="socks5h://u:secret@10.0.0.9:1080"))
    assert socks is not None and "SOCKS5 tunnels through" in socks.detail
    assert "the proxy resolves them" in socks.detail and "secret" not in socks.detail
    http = forward_proxy("go", cfg(HTTPS_PROXY="http://10.0.0.9:3128"))
    assert http is not None and "CONNECT tunnels through" in http.detail
