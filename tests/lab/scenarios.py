"""The lab's scenarios: real clients doing what the issue lists, inside a running Lab.

Each scenario runs its commands and returns what happened (argv, the environment it changed,
exit code, and the go command's -x output). Which contacts to expect is not written here: it is
derived afterwards from the logs (derive.py). A scenario only says which finding kinds it is meant
to show, per contact.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from . import editor
from .modules import GOPLS_VERSION, TOOLCHAIN_GO
from .netlab import Lab

LAB_MODULE = "vanity.example/m"
NODE_UA = "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)"
# Names the lab watches beyond the default Go hosts: the private mirror and the vanity host.
LAB_WATCH = ["goproxy.example", "vanity.example"]

# What the VS Code Go extension does from its Node extension host (GO_NETWORK_FACTS.md, section
# 6): node-fetch v2 (Node's https module, no ALPN) asks the first non-direct GOPROXY entry for
# gopls's .info, and asks go.dev for the release list.
NODE_EDITOR_CHECKS = """
const https = require('https');
const UA = @UA@;
function get(url) {
  return new Promise((resolve, reject) => {
    https.get(url, {headers: {'User-Agent': UA, 'Accept': '*/*',
                              'Accept-Encoding': 'gzip,deflate', 'Connection': 'close'}}, (res) => {
      let body = '';
      res.on('data', (d) => { body += d; });
      res.on('end', () => resolve(res.statusCode + ' ' + url + ' ' + body.length));
    }).on('error', reject);
  });
}
(async () => {
  const proxies = (process.env.GOPROXY || '').trim().split(/,|\\|/);
  const proxy = proxies.find((p) => p && p !== 'direct');
  if (proxy) console.log(await get(`${proxy}/golang.org/x/tools/gopls/@v/@GOPLS@.info`));
  console.log(await get('https://go.dev/dl/?mode=json'));
})().catch((e) => { console.error(String(e)); process.exit(1); });
""".replace("@UA@", repr(NODE_UA)).replace("@GOPLS@", GOPLS_VERSION)


@dataclass
class Step:
    argv: list[str]
    env: dict[str, str]  # what the scenario set on top of Lab.client_env()
    returncode: int
    stdout: str
    stderr: str
    process: str

    def to_dict(self) -> dict[str, Any]:
        return {"command": shlex.join(self.argv), "env": self.env, "returncode": self.returncode,
                "process": self.process, "stdout_tail": self.stdout[-2000:],
                "stderr_tail": self.stderr[-4000:]}


@dataclass
class Run:
    steps: list[Step] = field(default_factory=list)
    keylog: Path | None = None
    proxy_url: str | None = None
    traces: list[Path] = field(default_factory=list)  # strace files (editor scenarios)
    editor: dict[str, Any] = field(default_factory=dict)  # LSP transcripts and gopls logs
    # curl's own record of each SOCKS request: its local port and the URL's host
    socks_clients: list[dict[str, Any]] = field(default_factory=list)


def _workdir(lab: Lab, gomod: str) -> Path:
    work = lab.tmp / "work" / "app"
    work.mkdir(parents=True, exist_ok=True)
    (work / "go.mod").write_text(gomod)
    return work


APP_GOMOD = "module lab.test/app\n\ngo 1.21\n"


def _go(lab: Lab, run: Run, args: Sequence[str], env: Mapping[str, str] | None = None,
        gomod: str = APP_GOMOD, timeout: float = 90) -> Step:
    work = _workdir(lab, gomod)
    extra = dict(env or {})
    res = lab.run_client(["go", *args], env=lab.client_env(extra), cwd=work, timeout=timeout)
    step = Step(["go", *args], extra, res.returncode, res.stdout, res.stderr, "go")
    run.steps.append(step)
    return step


def _client(lab: Lab, run: Run, argv: Sequence[str], process: str,
            env: Mapping[str, str] | None = None, timeout: float = 60) -> Step:
    extra = dict(env or {})
    res = lab.run_client(list(argv), env=lab.client_env(extra), timeout=timeout)
    step = Step(list(argv), extra, res.returncode, res.stdout, res.stderr, process)
    run.steps.append(step)
    return step


def _node_argv(lab: Lab) -> list[str]:
    script = lab.tmp / "work" / "editor-checks.js"
    script.write_text(NODE_EDITOR_CHECKS)
    return ["node", f"--tls-keylog={lab.tmp / 'keylog.txt'}", str(script)]


# -- scenarios ------------------------------------------------------------------------------------
def default(lab: Lab, run: Run) -> None:
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"])


def direct_sumdb(lab: Lab, run: Run) -> None:
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"], {"GOPROXY": "direct"})


def direct_nosumdb(lab: Lab, run: Run) -> None:
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"],
        {"GOPROXY": "direct", "GOPRIVATE": "vanity.example"})


def direct_golang_x(lab: Lab, run: Run) -> None:
    _go(lab, run, ["get", "-x", "golang.org/x/lab@latest"], {"GOPROXY": "direct"})


def mirror(lab: Lab, run: Run) -> None:
    # A plaintext private mirror that proxies the checksum database; it lacks vanity.example/extra
    # and, with no ",direct", the go command gives up on it.
    env = {"GOPROXY": "http://goproxy.example"}
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@v1.0.0"], env)
    _go(lab, run, ["get", "-x", "vanity.example/extra@v1.0.0"], env)


def mirror_direct(lab: Lab, run: Run) -> None:
    env = {"GOPROXY": "https://goproxy.example,direct"}
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@v1.0.0"], env)
    _go(lab, run, ["get", "-x", "vanity.example/extra@v1.0.0"], env)


TOOLCHAIN_GOMOD = f"module lab.test/app\n\ngo 1.21\n\ntoolchain {TOOLCHAIN_GO}\n"


def toolchain(lab: Lab, run: Run) -> None:
    _go(lab, run, ["version"], {"GOTOOLCHAIN": "auto"}, gomod=TOOLCHAIN_GOMOD)


def toolchain_direct(lab: Lab, run: Run) -> None:
    _go(lab, run, ["version"], {"GOTOOLCHAIN": "auto", "GOPROXY": "direct"}, gomod=TOOLCHAIN_GOMOD)


def editor_node(lab: Lab, run: Run) -> None:
    _client(lab, run, _node_argv(lab), "node", {"GOPROXY": "https://proxy.golang.org,direct"})
    run.keylog = lab.tmp / "keylog.txt"


def dns_rewrite(lab: Lab, run: Run) -> None:
    lab.set_answer("proxy.golang.org", lab.other_ip)
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"])


def interception(lab: Lab, run: Run) -> None:
    lab.restart_server(intercept=True)
    bundle = lab.trust_bundle(intercept=True)
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"], {"SSL_CERT_FILE": bundle})


def downgrade_redirect(lab: Lab, run: Run) -> None:
    keylog = lab.tmp / "keylog.txt"
    _client(lab, run, ["curl", "-sS", "-L", "-o", "/dev/null", "-w", "%{url_effective} %{http_code}\n",
                       "https://vanity.example/download"], "curl", {"SSLKEYLOGFILE": str(keylog)})
    # The go command refuses to follow an https -> http redirect: one TLS contact, no plaintext.
    _go(lab, run, ["mod", "download", "-x", f"{LAB_MODULE}@v1.0.0"],
        {"GOPROXY": "https://goproxy.example/redirect"})
    run.keylog = keylog


def forward_proxy(lab: Lab, run: Run) -> None:
    url = lab.start_forward_proxy()
    run.proxy_url = url
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"], {"HTTPS_PROXY": url})


def socks_go(lab: Lab, run: Run) -> None:
    """The go command through dante, as HTTPS_PROXY=socks5:// and socks5h:// (Go sends the name
    to the proxy with both); the second run gets a fresh module cache so it fetches the same."""
    proxy = lab.start_socks_proxy()
    run.proxy_url = f"socks5://{proxy}"
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"], {"HTTPS_PROXY": f"socks5://{proxy}"})
    (lab.tmp / "work" / "app" / "go.sum").unlink(missing_ok=True)  # so sum.golang.org is asked again
    fresh = lab.tmp / "gopath-socks5h"
    _go(lab, run, ["get", "-x", f"{LAB_MODULE}@latest"],
        {"HTTPS_PROXY": f"socks5h://{proxy}", "GOPATH": str(fresh),
         "GOMODCACHE": str(fresh / "pkg/mod")})


def _curl_socks(lab: Lab, run: Run, flag: str, proxy: str, url: str) -> Step:
    step = _client(lab, run, ["curl", "-sS", "-o", "/dev/null", "-w", "%{local_port}\n", flag,
                              proxy, url], "curl")
    port = (step.stdout.strip().splitlines() or [""])[-1]
    if port.isdigit() and port != "0":
        run.socks_clients.append({"client_port": int(port), "host": urlsplit(url).hostname,
                                  "process": "curl", "flag": flag, "proxy": proxy})
    return step


def socks_curl(lab: Lab, run: Run) -> None:
    """curl through dante with each SOCKS flavour (plain HTTP too), two requests dante refuses
    (SOCKS4a, which dante does not implement, and a port nothing listens on), and SOCKS4a
    through OpenSSH's ``ssh -D``, which implements it."""
    dante = lab.start_socks_proxy()
    ssh = lab.start_ssh_socks_proxy()
    run.proxy_url = f"socks5://{dante}"
    _curl_socks(lab, run, "--socks4", dante, "https://proxy.golang.org/vanity.example/m/@v/list")
    _curl_socks(lab, run, "--socks5", dante, "https://sum.golang.org/latest")
    _curl_socks(lab, run, "--socks5-hostname", dante, "https://go.dev/dl/?mode=json")
    _curl_socks(lab, run, "--socks5-hostname", dante,
                "http://goproxy.example/vanity.example/m/@v/list")
    _curl_socks(lab, run, "--socks4a", dante, "https://golang.org/")
    _curl_socks(lab, run, "--socks5-hostname", dante, "https://vanity.example:8443/")
    _curl_socks(lab, run, "--socks4a", ssh, "https://golang.org/")


def mixed(lab: Lab, run: Run) -> None:
    """go, node and curl at once, plus unrelated traffic (plain HTTP, TLS, DNS for other names)."""
    work = _workdir(lab, APP_GOMOD)
    jobs: list[tuple[list[str], dict[str, str], str, Any]] = []

    def start(argv: list[str], extra: dict[str, str], process: str, cwd: Path | None = None) -> None:
        proc = lab.spawn_client(argv, env=lab.client_env(extra), cwd=cwd)
        jobs.append((argv, extra, process, proc))

    keylog = lab.tmp / "keylog.txt"
    start(["go", "get", "-x", f"{LAB_MODULE}@latest"], {}, "go", work)
    # The editor's checks follow the user's GOPROXY: here a private mirror.
    start(_node_argv(lab), {"GOPROXY": "https://goproxy.example,direct"}, "node")
    start(["curl", "-sS", "-o", "/dev/null", "https://golang.org/"], {"SSLKEYLOGFILE": str(keylog)}, "curl")
    start(["curl", "-sS", "-o", "/dev/null", "http://unrelated.example/", "https://www.unrelated.example/"],
          {}, "curl")
    start(["getent", "ahosts", "unrelated.example"], {}, "getent")
    for argv, extra, process, proc in jobs:
        out, err = proc.communicate(timeout=90)
        run.steps.append(Step(argv, extra, proc.returncode, out, err, process))
    run.keylog = keylog


@dataclass(frozen=True)
class Scenario:
    name: str
    number: str
    description: str
    run: Callable[[Lab, Run], None]
    findings: Callable[[dict[str, Any]], list[str]] = lambda _c: []
    tools: tuple[str, ...] = ()  # clients beyond the go command (Debian package in brackets)
    watch: tuple[str, ...] = tuple(LAB_WATCH)
    # Runs before the capture starts (its traffic is in neither the capture nor the manifest).
    prepare: Callable[[Lab], None] | None = None
    lab_tools: bool = False  # needs the installed Go and `make lab-tools`

    def missing_tools(self) -> list[str]:
        missing = [t for t in self.tools if shutil.which(t) is None]
        reason = editor.tools_missing() if self.lab_tools else None
        return [*missing, reason] if reason else missing


def _dns_rewrite_findings(c: dict[str, Any]) -> list[str]:
    if c["layer"] == "dns" and c["host"] == "proxy.golang.org" and c.get("qtype") == "A":
        return ["dns-unexpected-answer"]
    return []


def _plaintext(c: dict[str, Any]) -> list[str]:
    return ["http-plaintext"] if c["layer"] == "http" and c.get("method") != "CONNECT" else []


def _interception(c: dict[str, Any]) -> list[str]:
    return ["tls-untrusted-issuer"] if c["layer"] == "tls" else []


def _downgrade(c: dict[str, Any]) -> list[str]:
    if c["layer"] == "http":
        return ["http-plaintext"]
    if c["layer"] == "tls" and any(loc.startswith("http://") for loc in c.get("redirects", [])):
        # The 302 to http:// is inside TLS: visible with the scenario's key log. The go command's
        # connection gets it too: its mirror sent the redirect, the go command refused to follow.
        return ["http-downgrade-redirect"]
    return []


SCENARIOS: dict[str, Scenario] = {s.name: s for s in (
    Scenario("default", "1", "Default configuration (GOPROXY=https://proxy.golang.org,direct, "
             "GOSUMDB=sum.golang.org): go get through the proxy; the proxy says 404 to "
             "/sumdb/sum.golang.org/supported, so the go command asks sum.golang.org itself.", default),
    Scenario("direct-sumdb", "2", "GOPROXY=direct with the default GOSUMDB: the module comes from "
             "its origin (vanity.example, a go-import 'mod' tag), no proxy.golang.org, but "
             "sum.golang.org is still contacted.", direct_sumdb),
    Scenario("direct-nosumdb", "3", "GOPROXY=direct with GOPRIVATE=vanity.example: no Google host "
             "at all.", direct_nosumdb),
    Scenario("direct-golang-x", "3b", "GOPROXY=direct for a golang.org/x module: golang.org's "
             "go-import tag sends the go command to git, whose git-remote-https helper fetches "
             "from go.googlesource.com; sum.golang.org is checked directly.", direct_golang_x,
             tools=("git",)),
    Scenario("mirror", "4a", "A private mirror over plain HTTP (GOPROXY=http://goproxy.example) "
             "that proxies the checksum database; it answers 404 for vanity.example/extra and, "
             "without ',direct', that go get fails.", mirror, _plaintext),
    Scenario("mirror-direct", "4b", "GOPROXY=https://goproxy.example,direct: the mirror's 404 for "
             "vanity.example/extra makes the go command fall back to direct (vanity.example).",
             mirror_direct),
    Scenario("toolchain", "5a", f"GOTOOLCHAIN=auto and a 'toolchain {TOOLCHAIN_GO}' line: the go "
             "command fetches the toolchain module zip from proxy.golang.org and checks it against "
             "sum.golang.org (not shown by -x).", toolchain),
    Scenario("toolchain-direct", "5b", "The same toolchain switch with GOPROXY=direct: golang.org "
             "go-import tag, go.dev/dl/mod, a 302 to dl.google.com, and sum.golang.org.",
             toolchain_direct),
    Scenario("editor-node", "6", "Editor-style checks from node (node-fetch User-Agent): gopls "
             ".info from the first GOPROXY entry and https://go.dev/dl/?mode=json.", editor_node,
             tools=("node",)),
    Scenario("dns-rewrite", "7", "The resolver answers proxy.golang.org with an address outside "
             "the expected range (the lab still serves there): go get as in 'default'.",
             dns_rewrite, _dns_rewrite_findings),
    Scenario("interception", "8", "An interception certificate: every lab host presents a "
             "certificate from the 'proxytrace interception CA' over TLS 1.2 (so it is on the "
             "wire); the client trusts that CA, so the go command proceeds.", interception,
             _interception),
    Scenario("downgrade-redirect", "9", "An https to http redirect: curl -L follows "
             "https://vanity.example/download to http://vanity.example/download-plain; the go "
             "command, sent to a mirror path that redirects to http://, refuses to follow.",
             downgrade_redirect, _downgrade, tools=("curl",)),
    Scenario("forward-proxy", "10", "HTTPS_PROXY points at tinyproxy in the server namespace: the "
             "go command's contacts are CONNECT requests and TLS inside the tunnels; the client "
             "resolves no watched name itself.", forward_proxy, tools=("tinyproxy",)),
    Scenario("socks-go", "12", "HTTPS_PROXY=socks5://dante and then socks5h://dante: the go "
             "command's TLS contacts travel in SOCKS5 tunnels that name each host, so the "
             "client resolves no watched name itself.", socks_go, tools=("danted",)),
    Scenario("socks-curl", "13", "curl through dante with --socks4 and --socks5 (curl resolves "
             "the name), --socks5-hostname (the proxy does; HTTPS and plain HTTP), two requests "
             "dante refuses (--socks4a, which dante lacks, and a closed port), and --socks4a "
             "through ssh -D.", socks_curl, _plaintext, tools=("danted", "curl", "sshd", "ssh")),
    Scenario("editor-gosum-missing", "14a", "The real gopls (v0.23.0) in a workspace whose go.mod "
             "requires vanity.example/m, in the module cache but missing from go.sum; the shell "
             "has GOPROXY=direct. gopls runs `go mod tidy` with GOPROXY=off for its diagnostics, "
             "which still asks sum.golang.org; then the user runs gopls.tidy (Go: Run go mod tidy).",
             editor.gosum_missing, tools=("strace",), prepare=editor.cache_without_sumdb,
             lab_tools=True),
    Scenario("editor-settings-mirror", "14b", "The same workspace, module not downloaded, with the "
             "editor setting \"gopls\": {\"env\": {\"GOPROXY\": \"https://goproxy.example\"}} "
             "answered through workspace/configuration: gopls.tidy's go command uses the "
             "mirror (which proxies the checksum database).", editor.settings_mirror,
             tools=("strace",), lab_tools=True),
    Scenario("editor-vulncheck", "14c", "gopls with \"vulncheck\": \"Imports\" (in-process "
             "queries), then the gopls.run_govulncheck command (a `gopls vulncheck` child), then "
             "`govulncheck ./...`, all against the lab's vuln.go.dev (GOVULNDB unset).",
             editor.vulncheck, tools=("strace",), prepare=editor.complete_workspace, lab_tools=True),
    Scenario("editor-telemetry-on", "14d", "What gopls contacts on its own with telemetry "
             "uploading on (mode file 'on', the day's upload token free): its `gopls ** "
             "telemetry **` child runs `go mod download golang.org/x/telemetry/config@latest`.",
             editor.telemetry_on, tools=("strace",), prepare=editor.complete_workspace,
             lab_tools=True),
    Scenario("host-go", "15", "The installed Go 1.26.8 (User-Agent Go-http-client/1.1): go get "
             "with the default configuration.", editor.host_go_default, tools=("strace",),
             lab_tools=True),
    Scenario("mixed", "11", "go (default config), node (editor checks against a private mirror), "
             "curl (golang.org) at once, plus unrelated plain HTTP, TLS and DNS.", mixed,
             tools=("node", "curl", "getent")),
)}
