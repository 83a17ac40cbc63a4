"""The editor scenarios: the real gopls and govulncheck, checked against their ground truth.

Offline tests read the bundled captures and manifests (captures/editor-*.json, host-go.json),
whose processes, ancestors and environments come from strace, not from proxytrace. The live test
runs a scenario in the lab and needs root and the lab tools (``make lab-tools``); it skips with
the reason otherwise.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from analyzer.base.watchlist import DEFAULT_HOSTS, WatchList
from analyzer.contacts.operations import operation_for
from analyzer.pipeline import AnalyzeOptions, analyze_files
from tests.conftest import CAPTURES

from .editor import (
    GOPLS_PIN,
    GOVULNCHECK_PIN,
    HOST_GO_BIN,
    HOST_GO_VERSION,
    LAB_TOOLS_BIN,
    tools_missing,
)
from .lsp import descendants, kill_tree
from .netlab import lab_unavailable_reason
from .straced import go_relevant, parse_strace, unquote
from .vulndb import LAB_VULN_ID, database_files

DATA = Path(__file__).resolve().parent / "data"
EXPECT = CAPTURES / "lab-expect.toml"
GO126_JA4 = "t13d1312h2_f57a46bbacb6_ab7e3b40a677"


def _manifest(name: str) -> dict:
    path = CAPTURES / f"{name}.json"
    if not path.exists():
        pytest.skip(f"{path} not recorded (make lab)")
    return json.loads(path.read_text())


def _contacts(name: str, keylog: bool = True) -> list:
    m = _manifest(name)
    watch = WatchList.build([*DEFAULT_HOSTS, *m["watch"]])
    options = AnalyzeOptions(watch=watch, expect_path=EXPECT, engine="tshark",
                             keylog=CAPTURES / f"{name}.keylog") if keylog else AnalyzeOptions(
        watch=watch, expect_path=EXPECT)
    return analyze_files([CAPTURES / f"{name}.pcapng"], options).contacts


def _go_children(m: dict) -> list[dict]:
    return [p for p in m["strace"]["processes"] if p["comm"] == "go"]


# -- pieces ----------------------------------------------------------------------------------------
def test_strace_parser_on_a_real_go_command() -> None:
    """A real trace (the installed go, go mod download in the lab): threads fold into their
    process, the connect of one thread meets the getsockname of another, and the Go
    environment is read from execve."""
    trace = parse_strace((DATA / "go-mod-download.strace").read_text())
    go = trace.processes[25491]
    assert (go.comm, go.ppid, go.argv[1:3]) == ("go", None, ["mod", "download"])
    assert go.env["GOPROXY"] == "https://proxy.golang.org" and "PATH" not in go.env
    assert go.env["HOME"].endswith("/home")
    telemetry = trace.processes[25499]
    assert (telemetry.ppid, telemetry.argv[1:]) == (25491, ["** telemetry **"])
    assert telemetry.env["GO_TELEMETRY_CHILD"] == "1"
    assert {c.pid for c in trace.connections} == {25491}  # threads 25494-25497 are not processes
    assert Counter(c.proto for c in trace.connections) == {"udp": 6, "tcp": 3}
    assert all(c.local_port for c in trace.connections)
    assert trace.by_local_port("tcp", 55294).remote_port == 443  # type: ignore[union-attr]


def test_strace_parser_child_that_execs_before_the_parent_returns() -> None:
    """vfork: the child's execve is printed before the parent's vfork returns."""
    text = "\n".join([
        '10  1.000000 execve("/usr/bin/python3", ["python3", "x.py"], ["GOPROXY=direct", "HOME=/h"]) = 0',
        "10  1.100000 vfork( <unfinished ...>",
        '11  1.200000 execve("/opt/gopls", ["gopls", "-v"], ["GOPROXY=direct", "GOFLAGS=-mod=mod", "HTTPS_PROXY=http://p:1"]) = 0',
        "10  1.300000 <... vfork resumed>) = 11",
        '11  1.400000 connect(3<TCP:[1]>, {sa_family=AF_INET, sin_port=htons(443), sin_addr=inet_addr("10.0.0.1")}, 16) = -1 EINPROGRESS (Operation now in progress)',
        '11  1.500000 getsockname(3<TCP:[10.0.0.2:40000->10.0.0.1:443]>, {sa_family=AF_INET, sin_port=htons(40000), sin_addr=inet_addr("10.0.0.2")}, [112 => 16]) = 0',
    ])
    trace = parse_strace(text)
    gopls = trace.processes[11]
    assert (gopls.comm, gopls.ppid, gopls.argv) == ("gopls", 10, ["gopls", "-v"])
    assert gopls.env == {"GOPROXY": "direct", "GOFLAGS": "-mod=mod", "HTTPS_PROXY": "http://p:1"}
    assert trace.ancestors(11) == [{"pid": 10, "comm": "python3", "argv": ["python3", "x.py"]}]
    conn = trace.by_local_port("tcp", 40000)
    assert conn is not None and (conn.pid, conn.comm) == (11, "gopls")


def test_strace_parser_glibc_resolver_thread() -> None:
    """curl's resolver thread (git-remote-https) connects a UDP socket and sends with sendmmsg,
    never calling getsockname: the local port comes from the socket's decoration."""
    text = "\n".join([
        '20  1.000000 execve("/usr/lib/git-core/git-remote-https", ["git-remote-https", "origin"], ["GIT_SSL_CAINFO=/c"]) = 0',
        "20  1.100000 clone3({flags=CLONE_VM|CLONE_FS|CLONE_FILES|CLONE_SIGHAND|CLONE_THREAD|CLONE_SYSVSEM|CLONE_SETTLS|CLONE_PARENT_SETTID|CLONE_CHILD_CLEARTID, exit_signal=0}, 88 <unfinished ...>",
        "20  1.100100 <... clone3 resumed> => {parent_tid=[21]}, 88) = 21",
        '21  1.200000 connect(7<UDP:[337464]>, {sa_family=AF_INET, sin_port=htons(53), sin_addr=inet_addr("10.0.0.1")}, 16) = 0',
        '21  1.200100 sendmmsg(7<UDP:[10.0.0.2:45127->10.0.0.1:53]>, [{msg_hdr={msg_name=NULL, msg_namelen=0, msg_iov=[{iov_base="WF\\1\\0", iov_len=37}], msg_iovlen=1, msg_controllen=0, msg_flags=0}, msg_len=37}], 2, MSG_NOSIGNAL) = 2',
    ])
    trace = parse_strace(text)
    conn = trace.by_local_port("udp", 45127)
    assert conn is not None and (conn.pid, conn.comm, conn.remote_port) == (20, "git-remote-http", 53)
    assert set(trace.processes) == {20}


def test_strace_strings_and_env_names() -> None:
    assert unquote(r"a\"b\\c\n\x41\101") == 'a"b\\c\nAA'
    assert [n for n in ("GOPROXY", "GONOSUMDB", "https_proxy", "NO_PROXY", "SSL_CERT_FILE",
                        "PATH", "HOME", "SSL_CERT_DIR", "Http_Proxy", "LANG") if go_relevant(n)] == [
        "GOPROXY", "GONOSUMDB", "https_proxy", "NO_PROXY", "SSL_CERT_FILE", "HOME", "SSL_CERT_DIR"]


def test_vulndb_layout() -> None:
    """The files x/vuln's client reads: gzip indexes and entries, the entry's module listed."""
    import gzip

    files = database_files()
    assert {"index/db.json.gz", "index/modules.json.gz", f"ID/{LAB_VULN_ID}.json.gz"} <= set(files)
    modules = json.loads(gzip.decompress(files["index/modules.json.gz"]))
    assert modules == [{"path": "vanity.example/m", "vulns": [
        {"id": LAB_VULN_ID, "modified": "2026-01-02T03:04:05Z", "fixed": "1.1.0"}]}]
    entry = json.loads(gzip.decompress(files[f"ID/{LAB_VULN_ID}.json.gz"]))
    assert entry["affected"][0]["ecosystem_specific"]["imports"][0]["symbols"] == ["Hello"]


def _running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def test_kill_tree_stops_a_process_and_its_children() -> None:
    proc = subprocess.Popen(["bash", "-c", "sleep 60 & sleep 60 & wait"])  # noqa: S603
    try:
        deadline = time.monotonic() + 10
        while len(descendants(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = descendants(proc.pid)
        assert len(children) == 2
        assert set(kill_tree(proc.pid)) == {proc.pid, *children}
        proc.wait(timeout=10)
        deadline = time.monotonic() + 10  # SIGKILL is delivered asynchronously
        while any(_running(pid) for pid in children) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not any(_running(pid) for pid in children)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


# -- the recorded scenarios -------------------------------------------------------------------------
def test_gosum_missing_gopls_tidy_with_goproxy_off_asks_sum_golang_org() -> None:
    """a: the shell says GOPROXY=direct; gopls's diagnostics tidy runs with GOPROXY=off, and that
    go command asks sum.golang.org for the module missing from go.sum (facts 1.2)."""
    m = _manifest("editor-gosum-missing")
    assert m["expected"] and {e["host"] for e in m["expected"]} == {"sum.golang.org"}
    for e in m["expected"]:
        assert e["process"] == "go" and e["ancestors"][:2] == ["gopls", "python"]
        assert e["process_argv"][1:3] == ["mod", "tidy"]
        assert e["process_env"]["GOPROXY"] == "off"  # gopls's NoNetwork: only GOPROXY=off
    gopls = [p for p in m["strace"]["processes"] if p["comm"] == "gopls" and p["ancestors"] == ["python"]]
    assert len(gopls) == 1 and gopls[0]["env"]["GOPROXY"] == "direct"
    proxies = Counter(p["env"].get("GOPROXY") for p in _go_children(m) if "gopls" in p["ancestors"])
    assert set(proxies) == {"direct", "off"}
    lookups = [r["path"] for r in m["server_log"] if r.get("event") == "request"]
    assert "/lookup/vanity.example/m@v1.0.0" in lookups


def test_settings_env_reaches_gopls_go_commands() -> None:
    """b: "gopls": {"env": {"GOPROXY": ...}} answered through workspace/configuration: every go
    command gopls starts has the editor's GOPROXY (or GOPROXY=off), and the contacts go to the
    mirror only."""
    m = _manifest("editor-settings-mirror")
    config = [e for e in m["editor"]["gopls"]["events"] if e["kind"] == "workspace/configuration"]
    assert config and config[0]["payload"]["answer"] == [{"env": {"GOPROXY": "https://goproxy.example"}}]
    assert {e["host"] for e in m["expected"]} == {"goproxy.example"}
    assert {e["process_env"]["GOPROXY"] for e in m["expected"]} == {"https://goproxy.example"}
    assert all(e["ancestors"][:1] == ["gopls"] for e in m["expected"])
    children = {p["env"].get("GOPROXY") for p in _go_children(m) if p["ancestors"][:1] == ["gopls"]}
    assert children == {"https://goproxy.example", "off"}
    ops = [op for e in m["expected"] for op in e.get("operations", [])]
    assert {"sumdb-supported", "sumdb-lookup", "module-zip"} <= set(ops)


def test_vulncheck_contacts_are_vuln_db_by_gopls_and_govulncheck() -> None:
    """c: vuln.go.dev is contacted by gopls itself (vulncheck "Imports"), by its `gopls vulncheck`
    child (run_govulncheck) and by govulncheck; every request is a vuln-db operation, and the
    analyzer's URL rules say so for each path govulncheck v1.9.0 and gopls really asked."""
    m, cli = _manifest("editor-vulncheck"), _manifest("govulncheck")
    vuln = [e for x in (m, cli) for e in x["expected"] if e["host"] == "vuln.go.dev"]
    kinds = {(e["process"], e["process_argv"][1] if len(e["process_argv"]) > 1 else "",
              tuple(e["ancestors"][:2])) for e in vuln}
    assert kinds == {("gopls", "-rpc.trace", ("python",)), ("gopls", "vulncheck", ("gopls", "python")),
                     ("govulncheck", "./...", ())}
    assert all("GOVULNDB" not in e["process_env"] for e in vuln)
    for x in (m, cli):
        paths = {r["path"] for r in x["server_log"] if r.get("host") == "vuln.go.dev" and "path" in r}
        assert paths == {"/index/db.json.gz", "/index/modules.json.gz", f"/ID/{LAB_VULN_ID}.json.gz"}
        for path in paths:
            assert operation_for("vuln.go.dev", path, "GET", "Go-http-client/1.1") == "vuln-db"
            # The same paths under a GOVULNDB mirror.
            assert operation_for("mirror.example", "/vuln" + path, "GET") == "vuln-db"
    # x/vuln probes a database other than https://vuln.go.dev with a HEAD first.
    assert operation_for("mirror.example", "/vuln/index/modules.json.gz", "HEAD") == "vuln-db"
    tls_ops = [set(e["operations"]) for e in vuln if e["layer"] == "tls"]
    # gopls's HTTP client may open a connection it then leaves unused: no operation at all.
    assert tls_ops and all(ops <= {"vuln-db"} for ops in tls_ops) and any(tls_ops)
    said = [e["payload"] for e in m["editor"]["gopls"]["events"]
            if e["kind"] in ("diagnostics", "showMessage")]
    assert any(LAB_VULN_ID in json.dumps(p) for p in said)
    actions = [e["payload"]["titles"] for e in m["editor"]["gopls"]["events"] if e["kind"] == "codeActions"]
    assert actions and "Upgrade to v1.1.0" in actions[-1]
    step = cli["steps"][0]
    assert LAB_VULN_ID in step["stdout_tail"] and step["returncode"] == 3  # 3: vulnerabilities found


def test_default_vulncheck_prompt_on_save_then_vuln_db() -> None:
    """c, default settings: saving go.mod makes gopls ask "Dependencies changed ... Run govulncheck
    ...?"; after Yes, a `gopls vulncheck` child reads vuln.go.dev. Nothing reached vuln.go.dev
    before the answer."""
    m = _manifest("editor-vulncheck-prompt")
    events = m["editor"]["gopls"]["events"]
    prompts = [e for e in events if e["kind"] == "showMessageRequest"]
    assert prompts and prompts[0]["payload"]["message"].startswith("Dependencies changed in")
    assert prompts[0]["payload"]["actions"] == ["Yes", "No", "Always", "Never"]
    assert prompts[0]["payload"]["answer"] == "Yes"
    assert m["editor"]["gopls"]["settings"] == {}
    vuln = [e for e in m["expected"] if e["host"] == "vuln.go.dev"]
    assert vuln and {(e["process"], e["process_argv"][1], tuple(e["ancestors"][:2])) for e in vuln} == {
        ("gopls", "vulncheck", ("gopls", "python"))}
    answered = m["editor"]["gopls"]["started"] + prompts[0]["t"]
    # dnsmasq logs whole seconds; the server's log is precise.
    assert all(e["ts"] >= (answered if e["layer"] == "tls" else int(answered)) for e in vuln)


def test_telemetry_on_downloads_the_config_through_the_go_command() -> None:
    """d: with telemetry mode "on" and the day's upload token free, gopls starts
    `gopls ** telemetry **`, which runs `go mod download -json golang.org/x/telemetry/config@latest`
    (GO_TELEMETRY_CHILD=2) with the environment's GOPROXY (the go.env default here): proxy.golang.org
    says 404, so the go command goes direct, golang.org's go-import tag and git on
    go.googlesource.com. The telemetry child connects to nothing itself; nothing is uploaded."""
    m = _manifest("editor-telemetry-on")
    procs = {p["pid"]: p for p in m["strace"]["processes"]}
    children = [p for p in procs.values() if p["argv"][1:] == ["** telemetry **"]]
    assert len(children) == 1 and children[0]["comm"] == "gopls"
    assert children[0]["env"].get("GO_TELEMETRY_CHILD") == "1"
    assert children[0]["env"].get("GO_TELEMETRY_CHILD_UPLOAD") == "1"  # the token was free
    assert not {e["pid"] for e in m["expected"]} & {children[0]["pid"]}
    config = [e for e in m["expected"] if "golang.org/x/telemetry/config@latest" in e["process_argv"]]
    assert config and {e["process"] for e in config} == {"go"}
    assert {tuple(e["ancestors"][:2]) for e in config} == {("gopls", "gopls")}
    assert config[0]["ancestor_pids"][0] == children[0]["pid"]
    assert {e["process_env"]["GO_TELEMETRY_CHILD"] for e in config} == {"2"}
    assert {e["host"] for e in config} == {"proxy.golang.org", "golang.org"}
    git = [e for e in m["expected"] if e["host"] == "go.googlesource.com"]
    assert git and {e["process"] for e in git} == {"git-remote-http"}
    assert children[0]["pid"] in {a for e in git for a in e["ancestor_pids"]}
    requests = {(r["host"], r["path"]) for r in m["server_log"] if r.get("event") == "request"}
    assert ("proxy.golang.org", "/golang.org/x/telemetry/config/@v/list") in requests
    assert "telemetry.go.dev" not in {h for h, _ in requests}


def test_telemetry_local_child_contacts_nothing() -> None:
    """In the default mode ("local", no mode file) the telemetry children of gopls and of the go
    commands start and connect to nothing (every editor scenario but d)."""
    for name in ("editor-gosum-missing", "editor-settings-mirror", "editor-vulncheck",
                 "govulncheck", "host-go"):
        m = _manifest(name)
        children = {p["pid"] for p in m["strace"]["processes"] if p["argv"][1:] == ["** telemetry **"]}
        assert children, name
        assert not any(set(e["ancestor_pids"]) & children or e["pid"] in children for e in m["expected"]), name
        assert "telemetry.go.dev" not in {e["host"] for e in m["expected"]}


def test_host_go_is_a_go_command_with_a_go_http_client_user_agent() -> None:
    m = _manifest("host-go")
    uas = {r["user_agent"] for r in m["server_log"] if r.get("event") == "request"}
    assert uas == {"Go-http-client/1.1"}
    assert {e["process"] for e in m["expected"]} == {"go"}
    assert {e["process_argv"][0] for e in m["expected"]} == {"/usr/local/go/bin/go"}


def test_analyzer_names_go126_contacts_by_what_they_ask() -> None:
    """Go 1.26.8's go command and gopls/govulncheck built with it share one JA4 and User-Agent
    (measured); the analyzer names module proxy and checksum database contacts the go command and
    vulnerability database contacts another Go program."""
    for name in ("host-go", "editor-vulncheck", "govulncheck"):
        contacts = [c for c in _contacts(name) if c.layer == "tls"]
        assert contacts and {c.tls.ja4 for c in contacts} == {GO126_JA4}
        for c in contacts:
            want = "go-net-http" if c.host == "vuln.go.dev" else "go-command"
            assert c.client == want, (name, c.host, c.client_evidence)
    # Without the key log the host alone still keeps vuln.go.dev from the go command.
    plain = [c for c in _contacts("editor-vulncheck", keylog=False) if c.layer == "tls"]
    assert {c.client for c in plain if c.host == "vuln.go.dev"} == {"go-net-http"}


EDITOR_SCENARIOS = ["editor-gosum-missing", "editor-settings-mirror", "editor-vulncheck",
                    "editor-vulncheck-prompt", "govulncheck", "editor-telemetry-on", "host-go"]


@pytest.mark.parametrize("name", EDITOR_SCENARIOS)
def test_processes_and_operations_equal_ground_truth(name: str) -> None:
    """Per contact: the process proxytrace's capture comments name is the one strace saw, and
    the operations inside each TLS connection are the server log's."""
    m = _manifest(name)
    if not (m.get("annotation") or {}).get("tier"):
        pytest.skip(f"{name} was recorded without process comments")
    contacts = _contacts(name)
    got = Counter((c.host, c.layer, c.process.comm if c.process else None,
                   c.process.pid if c.process else None) for c in contacts)
    want = Counter((e["host"], e["layer"], e["process"], e["pid"]) for e in m["expected"])
    assert got == want, f"missing {dict(want - got)}, extra {dict(got - want)}"
    got_ops = Counter((c.host, c.tls.ja4 is not None, tuple(c.operations)) for c in contacts if c.layer == "tls")
    want_ops = Counter((e["host"], True, tuple(e["operations"])) for e in m["expected"] if e["layer"] == "tls")
    assert got_ops == want_ops


def test_lab_tools_are_the_pinned_versions() -> None:
    """make lab-tools built the pinned versions with the installed Go (read from the binaries'
    build information, without running them)."""
    reason = tools_missing()
    if reason:
        pytest.skip(reason)
    env = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GOTOOLCHAIN": "local", "GOENV": "off",
           "GOFLAGS": ""}
    for tool, module, pin in (("gopls", "golang.org/x/tools/gopls", GOPLS_PIN),
                              ("govulncheck", "golang.org/x/vuln", GOVULNCHECK_PIN)):
        out = subprocess.run([str(HOST_GO_BIN / "go"), "version", "-m", str(LAB_TOOLS_BIN / tool)],  # noqa: S603
                             capture_output=True, text=True, timeout=30, env=env, check=True).stdout
        assert out.splitlines()[0].endswith(f": {HOST_GO_VERSION}")
        assert any(line.split()[:3] == ["mod", module, pin] for line in out.splitlines())
        assert "CGO_ENABLED=0" in out


# -- live ------------------------------------------------------------------------------------------
@pytest.mark.lab
def test_live_gopls_scenario_equals_ground_truth(tmp_path: Path) -> None:
    """Record scenario a afresh: the real gopls under the LSP client, its go children, and the
    analyzer's contacts (processes from the capture comments) equal to the strace ground truth."""
    reason = lab_unavailable_reason() or tools_missing()
    if reason:
        pytest.skip(reason)
    from .record import record

    m = record("editor-gosum-missing", tmp_path)
    session = m["editor"]["gopls"]
    assert session["ok"], session["error"]
    assert session["stop"]["clean"]
    assert m["expected"] and {e["host"] for e in m["expected"]} == {"sum.golang.org"}
    assert {e["process_env"]["GOPROXY"] for e in m["expected"]} == {"off"}
    assert (tmp_path / "editor-gosum-missing.gopls.log").read_text().count("workspace/configuration")
    watch = WatchList.build([*DEFAULT_HOSTS, *m["watch"]])
    contacts = analyze_files([tmp_path / "editor-gosum-missing.pcapng"],
                             AnalyzeOptions(watch=watch, expect_path=EXPECT)).contacts
    assert Counter((c.host, c.layer) for c in contacts) == Counter(
        (e["host"], e["layer"]) for e in m["expected"])
    if (m.get("annotation") or {}).get("tier"):
        assert Counter((c.host, c.layer, c.process.comm if c.process else None) for c in contacts) == \
            Counter((e["host"], e["layer"], e["process"]) for e in m["expected"])
    # Nothing of the session is left running.
    assert not [p["pid"] for p in m["strace"]["processes"] if _running(p["pid"])]


# -- ancestors, environment and causes (recorded by proxytrace's tracer, checked against strace) --
_SET_BY = re.compile(r"(?P<name>\w+)=(?P<value>\S+) from environment, set by (?P<comm>\S+) \(pid (?P<pid>\d+)\)")
_INHERITED = re.compile(r"(?P<name>\w+)=(?P<value>\S+) from environment, inherited from \S+ \(pid \d+\)"
                        r"(?:, which (?P<comm>\S+) \(pid (?P<pid>\d+)\) started with it)?")
_GO_ENV = re.compile(r"(?P<name>\w+)=(?P<value>\S+) from \$GOROOT/go\.env")
_RAN = re.compile(r"; (?P<comm>\S+) \(pid (?P<pid>\d+)\) ran `(?P<argv>[^`]*?)(?:\.\.\.)?`")


def _go_env_defaults(m: dict) -> dict[str, str]:
    out = {}
    for text in m["goroot_go_env"].values():
        for line in text.splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                name, value = line.split("=", 1)
                out[name.strip()] = value.strip()
    return out


def _cause_claims(cause: str, e: dict, defaults: dict[str, str], traced: set[int]) -> list[str]:
    """Check each claim of a cause against the strace ground truth; returns what was checked."""
    checked = []
    for c in _SET_BY.finditer(cause):
        assert e["process_env"].get(c["name"]) == c["value"], (c.group(0), e["process_env"])
        assert e["env_set_by"][c["name"]] == {"pid": int(c["pid"]), "comm": c["comm"]}, c.group(0)
        checked.append(f"{c['name']} set by {c['comm']}")
    for c in _INHERITED.finditer(cause):
        assert e["process_env"].get(c["name"]) == c["value"], c.group(0)
        setter = e["env_set_by"][c["name"]]
        if c["pid"] is not None and int(c["pid"]) in traced:
            # A traced process started a child with the value: strace saw the same one.
            assert setter == {"pid": int(c["pid"]), "comm": c["comm"]}, (c.group(0), setter)
            checked.append(f"{c['name']} inherited, set by {c['comm']}")
        else:
            # Set above the traced editor: no traced process changed it.
            assert setter is None, (c.group(0), setter)
            checked.append(f"{c['name']} inherited")
    for c in _GO_ENV.finditer(cause):
        assert c["name"] not in e["process_env"] and defaults.get(c["name"]) == c["value"], c.group(0)
        checked.append(f"{c['name']} from go.env")
    if "the default vulnerability database" in cause:
        assert "GOVULNDB" not in e["process_env"]
        checked.append("GOVULNDB unset")
    ran = _RAN.search(cause)
    if ran and e["ancestors"]:
        assert (int(ran["pid"]), ran["comm"]) == (e["ancestor_pids"][0], e["ancestors"][0]), ran.group(0)
        assert " ".join(e["process_argv"]).startswith(ran["argv"]), ran.group(0)
        checked.append("parent ran")
    return checked


@pytest.mark.parametrize("name", EDITOR_SCENARIOS)
def test_ancestors_env_and_causes_equal_ground_truth(name: str) -> None:
    """Each contact's ancestor chain, Go environment and cause, as proxytrace's capture comments
    carry them, equal what strace saw: the chain up to the traced LSP client (then strace, the
    tracer around it), the environment at exec, and who set each variable the cause names."""
    m = _manifest(name)
    if not (m.get("annotation") or {}).get("tier"):
        pytest.skip(f"{name} was recorded without process comments")
    defaults = _go_env_defaults(m)
    traced = {p["pid"] for p in m["strace"]["processes"]}
    by_port = {(e["layer"], e["host"], e["client_port"]): e for e in m["expected"]}
    checked: Counter[str] = Counter()
    for c in _contacts(name):
        e = by_port[(c.layer, c.host, c.sport)]
        assert c.process is not None and c.process.pid == e["pid"]
        chain = [(a.pid, a.comm) for a in c.process.ancestors]
        want = list(zip(e["ancestor_pids"], e["ancestors"], strict=True))
        assert chain[:len(want)] == want, (c.host, chain, want)
        assert chain[len(want)][1] == "strace"  # the traced root's parent: the tracer
        assert c.process.env is not None
        assert {k: v for k, v in c.process.env if go_relevant(k)} == e["process_env"]
        assert c.cause, (c.host, c.layer)
        checked.update(_cause_claims(c.cause, e, defaults, traced))
    if name == "editor-gosum-missing":
        assert checked["GOPROXY set by gopls"] == len(m["expected"])      # gopls's GOPROXY=off
    if name == "editor-settings-mirror":
        assert checked["GOPROXY set by gopls"] == len(m["expected"])      # the editor's setting
    if name in ("editor-vulncheck", "editor-vulncheck-prompt", "govulncheck"):
        assert checked["GOVULNDB unset"] == len([e for e in m["expected"] if e["host"] == "vuln.go.dev"])
    assert checked


@pytest.mark.lab
def test_live_host_go_is_named_the_go_command(tmp_path: Path) -> None:
    """The installed go1.26.8, recorded afresh: its JA4 is the one measured, its User-Agent
    Go-http-client/1.1, and the analyzer (with the key log) names every contact the go command."""
    reason = lab_unavailable_reason() or tools_missing()
    if reason:
        pytest.skip(reason)
    from .record import record

    m = record("host-go", tmp_path, annotate=False)
    assert [s["returncode"] for s in m["steps"]] == [0]
    assert {r["user_agent"] for r in m["server_log"] if r.get("event") == "request"} == {
        "Go-http-client/1.1"}
    watch = WatchList.build([*DEFAULT_HOSTS, *m["watch"]])
    options = AnalyzeOptions(watch=watch, expect_path=EXPECT, engine="tshark",
                             keylog=tmp_path / "host-go.keylog")
    tls = [c for c in analyze_files([tmp_path / "host-go.pcapng"], options).contacts if c.layer == "tls"]
    assert len(tls) == len([e for e in m["expected"] if e["layer"] == "tls"])
    assert {c.tls.ja4 for c in tls} == {GO126_JA4}
    assert {c.client for c in tls} == {"go-command"}
