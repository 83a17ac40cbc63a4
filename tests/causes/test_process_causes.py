"""Causes from a contact's own process: its environment at exec, the files its go reads (GOENV
file, the go.env of the exec'd go binary's GOROOT), and who set each variable."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from analyzer.attribution.joiner import SocketAttributor
from analyzer.attribution.records import ProcessRecord, SocketRecord
from analyzer.base.model import Ancestor, Contact, ProcessInfo, TlsInfo
from analyzer.causes.contact import apply_process_causes, process_config, who_set
from analyzer.causes.proxylist import redact_process
from analyzer.live.annotate import annotate_capture
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES

GO_LIST = "go list -m -json example.com/hello@v1.0.0"


@pytest.fixture
def goroot(tmp_path: Path) -> Path:
    """A GOROOT as a go distribution lays it out: bin/go and the go.env defaults."""
    root = tmp_path / "goroot"
    (root / "bin").mkdir(parents=True)
    (root / "bin" / "go").write_text("")
    (root / "go.env").write_text("GOPROXY=https://proxy.golang.org,direct\nGOSUMDB=sum.golang.org\n"
                                 "GOTOOLCHAIN=auto\n")
    return root


def _env(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


def _go(goroot: Path, home: Path, go_env: dict[str, str], gopls_env: dict[str, str],
        code_env: dict[str, str]) -> ProcessInfo:
    """go ← gopls ← code ← bash, each with the environment it was started with."""
    shell = {"HOME": str(home)}
    return ProcessInfo(
        pid=30, comm="go", cmdline=GO_LIST, ppid=20, source="ebpf", exe=str(goroot / "bin" / "go"),
        env=_env(HOME=str(home), **go_env), parent_comm="gopls", parent_cmdline="gopls serve",
        ancestors=(Ancestor(20, "gopls", "gopls serve", "/opt/gopls", _env(HOME=str(home), **gopls_env)),
                   Ancestor(10, "code", "code .", "/usr/bin/code", _env(HOME=str(home), **code_env)),
                   Ancestor(5, "bash", "-bash", "/usr/bin/bash", _env(**shell))))


def _contact(host: str, proc: ProcessInfo | None, flow: str = "F1") -> Contact:
    return Contact(ts=1.0, layer="tls", host=host, transport="tcp", src="10.0.0.2", sport=40000,
                   dst="10.0.0.1", dport=443, flow_id=flow, process=proc,
                   tls=TlsInfo(sni=host, alpn=("h2",), version="TLS 1.3", ja4=None, ja3=None))


def test_gopls_adds_goproxy_off_and_go_still_asks_the_checksum_database(tmp_path: Path,
                                                                        goroot: Path) -> None:
    go = _go(goroot, tmp_path / "home", {"GOPROXY": "off"}, {}, {})
    [c] = apply_process_causes([_contact("sum.golang.org", go)])
    assert c.cause == (
        "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup "
        "(GOPROXY=off from environment, set by gopls (pid 20) for a go command it runs without "
        f"network does not cover the checksum database); gopls (pid 20) ran `{GO_LIST}`")


def test_a_value_from_the_editor_is_inherited_and_its_setter_named(tmp_path: Path,
                                                                   goroot: Path) -> None:
    mirror = {"GOPROXY": "https://goproxy.example"}
    go = _go(goroot, tmp_path / "home", mirror, mirror, mirror)
    assert who_set("GOPROXY", go) == ("environment, inherited from code (pid 10), which bash "
                                      "(pid 5) started with it")
    [c] = apply_process_causes([_contact("goproxy.example", go)])
    assert c.cause is not None and c.cause.startswith(
        "GOPROXY=https://goproxy.example from environment, inherited from code (pid 10), which "
        "bash (pid 5) started with it -> module download")
    # up to the top of the chain: inherited from the highest process that had it
    top = replace(go, ancestors=go.ancestors[:2])
    assert who_set("GOPROXY", top) == "environment, inherited from code (pid 10)"
    # an ancestor whose environment the tier did not see: nothing is claimed beyond it
    blind = replace(go, ancestors=(replace(go.ancestors[0], env=None), *go.ancestors[1:]))
    assert who_set("GOPROXY", blind) == "environment"


def test_the_goenv_file_of_the_process_home_and_the_go_binarys_goroot(tmp_path: Path,
                                                                      goroot: Path) -> None:
    home = tmp_path / "home"
    (home / ".config" / "go").mkdir(parents=True)
    (home / ".config" / "go" / "env").write_text("GOPROXY=https://file-proxy.example\n")
    go = _go(goroot, home, {}, {}, {})
    cfg = process_config(go)
    assert cfg is not None and cfg.goroot == str(goroot)
    assert cfg.get("GOSUMDB").source == "$GOROOT/go.env (default)"  # type: ignore[union-attr]
    [c] = apply_process_causes([_contact("file-proxy.example", go)])
    assert c.cause is not None and c.cause.startswith(
        f"GOPROXY=https://file-proxy.example from GOENV file {home}/.config/go/env -> module download")


def test_without_a_recorded_environment_the_fallback_or_nothing(goroot: Path) -> None:
    bare = ProcessInfo(pid=30, comm="go", cmdline="go mod download", ppid=1, source="pcapng-comment")
    assert process_config(bare) is None
    [c] = apply_process_causes([_contact("sum.golang.org", bare)])
    assert c.cause is None and c.findings == ()


def test_each_process_its_own_configuration(tmp_path: Path, goroot: Path) -> None:
    off = _go(goroot, tmp_path / "home", {"GOPROXY": "off"}, {}, {})
    mirror = replace(_go(goroot, tmp_path / "home", {"GOPROXY": "https://goproxy.example"}, {}, {}),
                     pid=31)
    out = apply_process_causes([_contact("sum.golang.org", off, "F1"),
                                _contact("goproxy.example", mirror, "F2"),
                                _contact("proxy.golang.org", off, "F3")])
    assert "GOPROXY=off" in (out[0].cause or "")
    # gopls adds only GOPROXY=off itself: another value it adds is the editor's gopls env setting
    assert (out[1].cause or "").startswith("GOPROXY=https://goproxy.example from environment, set by "
                                           "gopls (pid 20) from its env setting (the editor's gopls "
                                           "settings) -> module download")
    # GOPROXY=off: a contact with the proxy is not explained by this process's configuration
    assert out[2].cause is None
    assert [f.kind for f in out[2].findings] == ["config-unexplained"]
    # applying again replaces, never doubles, the verdicts
    again = apply_process_causes(out)
    assert again == out


def test_proxy_password_redacted_everywhere_in_the_process(tmp_path: Path, goroot: Path) -> None:
    secret = {"HTTPS_PROXY": "http://user:secret@proxy.example:3128"}
    go = replace(_go(goroot, tmp_path / "home", secret, secret, {}),
                 cmdline="go get -x http://u:pw@corp.example/m")
    hidden = redact_process(go)
    assert "secret" not in repr(hidden) and "pw@" not in repr(hidden)
    assert dict(hidden.env or ())["HTTPS_PROXY"] == "http://xxxxx@proxy.example:3128"
    assert dict(hidden.ancestors[0].env or ())["HTTPS_PROXY"] == "http://xxxxx@proxy.example:3128"


def test_analyze_reads_chain_and_environment_back_and_explains(tmp_path: Path,
                                                               goroot: Path) -> None:
    """A bundled capture annotated as `capture` would write it (gopls's go child, GOPROXY=off
    added by gopls) and analysed again: each contact has the chain, the environment and the
    cause from that process's own environment."""
    source = CAPTURES / "default.pcapng"
    plain = analyze_files([source], AnalyzeOptions())
    go_flows = {(c.src, c.sport, c.dst, c.dport, c.transport) for c in plain.contacts}
    home = tmp_path / "home"
    sockets = [SocketRecord(ts=min(c.ts for c in plain.contacts) - 1, pid=30,
                            transport=t, local=src, local_port=sport, remote=dst,  # type: ignore[arg-type]
                            remote_port=dport, source="ebpf", comm="go")
               for src, sport, dst, dport, t in go_flows]
    secret = "http://user:secret@proxy.example:3128"
    procs = [ProcessRecord(pid=5, ppid=1, comm="bash", cmdline="-bash", exe="/usr/bin/bash", ts=0.0,
                           env=_env(HOME=str(home))),
             ProcessRecord(pid=20, ppid=5, comm="gopls", cmdline="gopls serve", exe="/opt/gopls",
                           ts=1.0, env=_env(HOME=str(home), NO_PROXY=secret)),
             ProcessRecord(pid=30, ppid=20, comm="go", cmdline=GO_LIST,
                           exe=str(goroot / "bin" / "go"), ts=2.0,
                           env=_env(HOME=str(home), GOPROXY="off", NO_PROXY=secret))]
    out = tmp_path / "annotated.pcapng"
    annotate_capture(source, out, SocketAttributor("ebpf", sockets, procs))
    assert b"secret" not in out.read_bytes()
    report = analyze_files([out], AnalyzeOptions())
    assert report.contacts and len(report.contacts) == len(plain.contacts)
    for c in report.contacts:
        p = c.process
        assert p is not None and p.source == "pcapng-comment" and p.chain_text() == "go ← gopls ← bash ← ?"
        assert dict(p.env or ())["GOPROXY"] == "off"
        assert dict(p.env or ())["NO_PROXY"] == "http://xxxxx@proxy.example:3128"
        assert p.exe == str(goroot / "bin" / "go")
    sumdb = [c for c in report.contacts if c.host == "sum.golang.org" and c.layer == "tls"]
    assert sumdb and all("GOPROXY=off from environment, set by gopls (pid 20) for a go command it "
                         "runs without network" in (c.cause or "")
                         for c in sumdb)
    # GOPROXY=off does not explain the proxy contacts this capture really has: flagged
    proxy = [c for c in report.contacts if c.host == "proxy.golang.org" and c.layer == "tls"]
    assert proxy and all(any(f.kind == "config-unexplained" for f in c.findings) for c in proxy)


def test_a_process_that_is_not_go_gets_no_goroot_from_this_machine(tmp_path: Path) -> None:
    node = ProcessInfo(pid=40, comm="node", cmdline="node ext.js", ppid=1, source="ebpf",
                       exe="/usr/bin/node", env=_env(HOME=str(tmp_path), GOPROXY="https://goproxy.example"))
    cfg = process_config(node)
    assert cfg is not None and cfg.goroot is None  # not the go next to this Python, nor on PATH
    assert cfg.get("GOPROXY").value == "https://goproxy.example"  # type: ignore[union-attr]


def test_a_go_whose_goroot_is_not_here_gets_no_guessed_defaults(tmp_path: Path, goroot: Path) -> None:
    go = replace(_go(goroot, tmp_path / "home", {"GOPROXY": "off"}, {}, {}),
                 exe="/elsewhere/go/bin/go")
    assert process_config(go) is None
    [c] = apply_process_causes([_contact("proxy.golang.org", go)])
    assert c.cause is None and c.findings == ()
