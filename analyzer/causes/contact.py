"""Which setting made each contact happen (``Contact.cause``), and contacts no setting explains.

Pure: contacts and a GoConfig in, new contacts out (``process_config`` reads the files a
traced process's go would read, or takes the copies the capture carries). A cause reads
``GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup``; a contact the
configuration cannot explain (proxy.golang.org while GOPROXY excludes it...) gets a
``config-unexplained`` finding, since something else (another environment, a hard-coded client,
an interception) must have caused it. Rules: GO_NETWORK_FACTS.md sections 1, 3-6 and 11.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

from ..base.model import Ancestor, Contact, Finding, ProcessInfo
from ..base.watchlist import DEFAULT_HOSTS
from .goconfig import ENVIRONMENT, GoConfig, Setting
from .proxylist import match_prefix_patterns, parse_goproxy, parse_gosumdb, redact
from .sources import config_from_env

KNOWN_MIRRORS = frozenset({"proxy.golang.org", "goproxy.cn", "goproxy.io"})
KNOWN_SUMDBS = frozenset({"sum.golang.org", "sum.golang.google.cn"})
TOOLCHAIN_HOSTS = frozenset({"go.dev", "dl.google.com"})
DIRECT_GOOGLE = frozenset({"golang.org", "go.googlesource.com"})
# Programs the Go configuration does not drive. Only these are called unexplained: a process
# name can also be a truncated comm, or the image a go process exec'd (a switched toolchain).
NOT_GO_TOOLS = frozenset({"curl", "wget", "chrome", "chromium", "firefox", "java", "ruby", "perl",
                          "nc", "ncat", "openssl", "dig", "nslookup", "host", "getent"})

_OPERATION_WORDS = {
    "module-list": "module version list", "module-info": "module version info",
    "module-mod": "go.mod download", "module-zip": "module zip download",
    "module-latest": "latest version query",
}


def _path_of(c: Contact) -> str | None:
    if c.http is not None and c.http.path:
        return c.http.path
    if c.url:
        m = re.match(r"^[a-z]+://[^/]+(/.*)$", c.url)
        return m.group(1) if m else None
    return None


def _unescape(p: str) -> str:
    return re.sub(r"!([a-z])", lambda m: m.group(1).upper(), p)


def module_of(c: Contact) -> str | None:
    """The module path a proxy or checksum-database request was about, when the URL is visible."""
    path = _path_of(c)
    if not path:
        return None
    path = path.split("?", 1)[0]
    m = re.search(r"/lookup/(.+)@[^@/]+$", path)
    if m:
        return _unescape(m.group(1))
    m = re.match(r"^/(?:.*?/)??(.+?)/(?:@v/|@latest)", path)
    if m and not path.startswith("/sumdb/"):
        return _unescape(m.group(1).lstrip("/"))
    return None


class _Explainer:
    def __init__(self, config: GoConfig, redacted: bool) -> None:
        self.cfg = config
        self.redacted = redacted
        self.goproxy = self._setting("GOPROXY")
        self.pl = parse_goproxy(self.goproxy.value)
        self.gosumdb = self._setting("GOSUMDB")
        self.db = parse_gosumdb(self.gosumdb.value)

    def _setting(self, name: str) -> Setting:
        return self.cfg.get(name) or Setting(name, "", "not set")

    def says(self, name: str) -> str:
        s = self._setting(name)
        value = redact(s.value) if self.redacted else s.value
        return f"{name}={value} from {s.source}"

    def _go_infrastructure(self, host: str) -> bool:
        """A Go host, a known mirror or checksum database, or a proxy this configuration names."""
        return (host in DEFAULT_HOSTS or host in KNOWN_MIRRORS or host in KNOWN_SUMDBS
                or host in self.pl.hosts)

    def explain(self, c: Contact) -> tuple[str | None, str | None]:
        """(cause, unexplained detail); at most one is set."""
        host = c.host.lower().rstrip(".")
        op = c.operation
        module = module_of(c)
        node = (c.client or "").startswith("node") or bool(
            c.process and c.process.comm and c.process.comm.lower() in ("node", "code", "electron"))

        comm = ((c.process.comm or "") if c.process else "").split("/")[-1]
        if comm in NOT_GO_TOOLS or comm.startswith("python") or c.client == "curl":
            if not self._go_infrastructure(host):
                return None, None  # a non-Go program talking to a non-Go host: nothing to explain
            who = f"{comm} (pid {c.process.pid})" if c.process else (c.client or "?")
            return None, (f"{host} contacted by {who}, which is not a Go tool: the Go "
                          "configuration does not explain it")
        # The extension's only Node fetch to a module proxy is the gopls version check (facts 6).
        if op == "gopls-version-check" or (node and op is None and
                                           (host in self.pl.hosts or host in KNOWN_MIRRORS)):
            if host in self.pl.hosts:
                return (f"{self.says('GOPROXY')} -> gopls version check by the VS Code Go extension "
                        "(first non-direct GOPROXY entry)", None)
            return None, f"{host} was asked for a gopls version but {self.says('GOPROXY')} does not list it"
        if op == "go-release-check" or (host == "go.dev" and node and op != "toolchain-download"):
            check = self.cfg.get("go.toolsManagement.checkForUpdates")
            if check is not None and check.value in ("local", "off"):
                return None, (f"go.dev release check while go.toolsManagement.checkForUpdates="
                              f"{check.value} ({check.source})")
            src = f"{check.value} from {check.source}" if check else "proxy (vscode-go default)"
            return f"go.toolsManagement.checkForUpdates={src} -> Go release check (go.dev/dl/?mode=json)", None
        if op == "telemetry" or host == "telemetry.go.dev":
            mode = self._setting("GOTELEMETRY")
            if mode.value == "on":
                return f"{self.says('GOTELEMETRY')} -> telemetry upload", None
            return None, (f"telemetry.go.dev contacted but the telemetry mode is {mode.value or 'local'} "
                          f"({mode.source}); uploads happen only in mode on")
        if op == "vuln-db" or host == "vuln.go.dev":
            db = self.cfg.get("GOVULNDB")
            if db is not None and "vuln.go.dev" not in db.value:
                return None, f"vuln.go.dev contacted but {self.says('GOVULNDB')}"
            src = self.says("GOVULNDB") if db else \
                "GOVULNDB unset, so the default vulnerability database https://vuln.go.dev"
            return f"{src} -> vulnerability check (gopls vulncheck / govulncheck)", None

        toolchain = op == "toolchain-download" or module == "golang.org/toolchain" or \
            (host in TOOLCHAIN_HOSTS and not node)
        if toolchain:
            return self._toolchain(host)
        if host == self.db.direct_host or host in KNOWN_SUMDBS:
            return self._sumdb(host, op, module)
        if host in self.pl.hosts:
            return self._proxy(host, op, module)
        if host in DIRECT_GOOGLE:
            return self._direct(host, module)
        if host in KNOWN_MIRRORS:
            return None, f"{host} contacted but {self.says('GOPROXY')} does not list it"
        return self._origin(host, module)

    def _origin(self, host: str, module: str | None) -> tuple[str | None, str | None]:
        """Any other watched host: a module origin, fetched directly (go-get meta, then mod/zip or git)."""
        noproxy = self._setting("GONOPROXY")
        probe = module or f"{host}/m"
        if noproxy.value and self.goproxy.value != "direct" and match_prefix_patterns(noproxy.value, probe):
            return f"{self.says('GONOPROXY')} -> direct fetch from the module's origin", None
        if self.pl.has_direct:
            how = "direct" if not self.pl.proxies else "direct (after the proxy answered 404/410)"
            return f"{self.says('GOPROXY')} -> {how} fetch from the module's origin", None
        return None, None

    def _toolchain(self, host: str) -> tuple[str | None, str | None]:
        tc = self._setting("GOTOOLCHAIN")
        if tc.value in ("", "local", "path") or tc.value.endswith("+path"):
            return None, f"toolchain download from {host} but {self.says('GOTOOLCHAIN')} never downloads"
        base = f"{self.says('GOTOOLCHAIN')}"
        if host in self.pl.hosts:
            return f"{base} and {self.says('GOPROXY')} -> toolchain download", None
        if host == self.db.direct_host or host in KNOWN_SUMDBS:
            return f"{base} -> toolchain checksum lookup (always verified)", None
        if self.pl.has_direct:
            return (f"{base} and {self.says('GOPROXY')} -> direct toolchain download "
                    "(golang.org meta, go.dev/dl/mod, dl.google.com)"), None
        return None, f"direct toolchain download from {host} but {self.says('GOPROXY')} has no direct entry"

    def _sumdb(self, host: str, op: str | None, module: str | None) -> tuple[str | None, str | None]:
        if host != self.db.direct_host:
            return None, f"{host} contacted but {self.says('GOSUMDB')} names another checksum database"
        if self.db.off:
            return None, f"{host} contacted but {self.says('GOSUMDB')}"
        nosum = self._setting("GONOSUMDB")
        if module and module != "golang.org/toolchain" and nosum.value and \
                match_prefix_patterns(nosum.value, module):
            return None, f"checksum lookup for {module}, which matches {self.says('GONOSUMDB')}"
        what = "checksum database tile" if op == "sumdb-tile" else "checksum lookup"
        tail = ""
        if not self.pl.proxies:
            tail = f" ({self.says('GOPROXY')} does not cover the checksum database)"
        elif op is None or op.startswith("sumdb"):
            tail = " (the proxy does not serve the checksum database)" \
                if all(e.host == "proxy.golang.org" for e in self.pl.proxies) else ""
        return f"{self.says('GOSUMDB')} -> {what}{tail}", None

    def _proxy(self, host: str, op: str | None, module: str | None) -> tuple[str | None, str | None]:
        noproxy = self._setting("GONOPROXY")
        if module and noproxy.value and self.goproxy.value != "direct" and \
                match_prefix_patterns(noproxy.value, module):
            return None, f"{host} asked for {module}, which matches {self.says('GONOPROXY')}"
        if op and op.startswith("sumdb"):
            if self.db.off:
                return None, f"checksum request to {host} but {self.says('GOSUMDB')}"
            word = "checksum database probe (/sumdb/.../supported)" if op == "sumdb-supported" \
                else "checksum lookup through the proxy"
            return f"{self.says('GOPROXY')} and {self.says('GOSUMDB')} -> {word}", None
        word = _OPERATION_WORDS.get(op or "", "module download")
        return f"{self.says('GOPROXY')} -> {word}", None

    def _direct(self, host: str, module: str | None) -> tuple[str | None, str | None]:
        noproxy = self._setting("GONOPROXY")
        if host == "golang.org":
            what = f"go-get meta lookup for {module}" if module else \
                "go-get meta lookup (golang.org/x/... modules, or golang.org/toolchain in a switch)"
        else:
            what = f"git fetch for {module or 'golang.org/x/...'} (git, a child of go)"
        if noproxy.value and match_prefix_patterns(noproxy.value, module or "golang.org/x/text"):
            return f"{self.says('GONOPROXY')} -> direct {what}", None
        if self.pl.has_direct:
            how = "direct" if not self.pl.proxies else "direct fallback after the proxy answered 404/410:"
            return f"{self.says('GOPROXY')} -> {how} {what}", None
        return None, f"{host} contacted but {self.says('GOPROXY')} never fetches directly"


def _follow_up(dns: Contact, contacts: list[Contact]) -> Contact | None:
    """The connection a DNS lookup was made for: the next non-DNS contact with that name (from the
    same process when both are known). A lookup alone cannot show which client asked, so it takes
    the cause of what followed."""
    best: Contact | None = None
    for c in contacts:
        if c.layer == "dns" or c.host.lower() != dns.host.lower() or c.ts < dns.ts:
            continue
        if dns.process and c.process and dns.process.pid != c.process.pid:
            continue
        if best is None or c.ts < best.ts:
            best = c
    return best


def apply_causes(contacts: list[Contact], config: GoConfig, redact_values: bool = True,
                 trail: str = "") -> list[Contact]:
    """Set ``cause`` on each contact (keeping every other field), and flag unexplained ones.

    Applying it again replaces what an earlier pass said (``run`` names operations after the
    capture's analysis, then explains again). ``trail`` ends every cause (who ran what).
    """
    contacts = [_without_verdict(c) for c in contacts]
    ex = _Explainer(config, redact_values)
    verdicts: dict[int, tuple[str | None, str | None]] = {}
    for i, c in enumerate(contacts):
        if c.layer != "dns":
            verdicts[i] = ex.explain(c)
    index = {id(c): i for i, c in enumerate(contacts)}
    out: list[Contact] = []
    for i, c in enumerate(contacts):
        if c.layer == "dns":
            nxt = _follow_up(c, contacts)
            cause, unexplained = verdicts[index[id(nxt)]] if nxt is not None else ex.explain(c)
        else:
            cause, unexplained = verdicts[i]
        if cause and (c.via_proxy is not None or (c.http is not None and c.http.method == "CONNECT")):
            proxy = config.get("HTTPS_PROXY")
            if proxy is not None and proxy.value:
                cause += f", through {ex.says('HTTPS_PROXY')}"
        if unexplained:
            finding = Finding(layer=c.layer, kind="config-unexplained", detail=unexplained,
                              frames=c.frames)
            out.append(replace(c, findings=(*c.findings, finding)))
        else:
            out.append(replace(c, cause=cause + trail) if cause else c)
    return out


def _without_verdict(c: Contact) -> Contact:
    if c.cause is None and not any(f.kind == "config-unexplained" for f in c.findings):
        return c
    return replace(c, cause=None,
                   findings=tuple(f for f in c.findings if f.kind != "config-unexplained"))


# -- causes from each process's own environment --------------------------------------------------

def who_set(name: str, proc: ProcessInfo) -> str:
    """Where ``proc``'s value of ``name`` came from, by comparing environments up its chain:
    a parent that lacked it set it (gopls adding GOPROXY=off for its go children); one that
    had the same value passed it down, from as high up as the value goes."""
    env = dict(proc.env or ())
    value = env.get(name)
    holder: Ancestor | None = None
    for a in proc.ancestors:
        if a.env is None:
            break  # that tier did not see this ancestor's environment: say no more than known
        if dict(a.env).get(name) != value:
            if holder is None:
                return f"{ENVIRONMENT}, set by {_name(a)}{_why_set(a, name, value)}"
            return f"{ENVIRONMENT}, inherited from {_name(holder)}, which {_name(a)} started with it"
        holder = a
    if holder is not None:
        return f"{ENVIRONMENT}, inherited from {_name(holder)}"
    return ENVIRONMENT


def _why_set(setter: Ancestor, name: str, value: str | None) -> str:
    """What a known setter means by it: gopls adds only GOPROXY=off itself (its no-network go
    commands); any other variable it adds comes from its ``env`` setting, i.e. the editor's gopls
    settings (GO_NETWORK_FACTS.md section 5)."""
    if setter.comm != "gopls" or name == "GO111MODULE":
        return ""
    if name == "GOPROXY" and value == "off":
        return " for a go command it runs without network"
    return " from its env setting (the editor's gopls settings)"


def _name(a: Ancestor) -> str:
    return f"{a.comm or '?'} (pid {a.pid})"


def process_config(proc: ProcessInfo) -> GoConfig | None:
    """What ``proc`` itself ran with: its recorded environment, the GOENV file that environment
    names, and the go.env of the GOROOT its go binary belongs to: the copies the capture
    carries (``GoFiles:``) when it has them, else the files as they are now on this machine (no
    go command is run). None when the tier did not record the environment, or when the go
    binary's GOROOT cannot be found (recorded or here)."""
    if proc.env is None:
        return None
    env = dict(proc.env)
    labels = {name: who_set(name, proc) for name in env}
    go = proc.exe if proc.exe and os.path.basename(proc.exe) == "go" else None
    # GOROOT: the environment's, the GOENV file's, or the exec'd go binary's; never a go found
    # on the machine making the report
    cfg = config_from_env(env, None, env_sources=labels, allow_go=False, executable=go,
                          look_for_go=False, recorded=proc.go_files)
    if go is not None and cfg.goroot is None:
        # a go whose GOROOT is not on this machine (a capture from elsewhere): its go.env
        # defaults are unknown, and guessing them would explain, or flag, contacts wrongly
        return None
    return cfg


def _trail(proc: ProcessInfo) -> str:
    """``; gopls (pid 7) ran `go list -m all``` for a process whose parent is known (after the
    setting, so a cause still starts with the setting that made the contact)."""
    if not proc.ancestors or not proc.cmdline:
        return ""
    cmd = proc.cmdline if len(proc.cmdline) <= 80 else proc.cmdline[:77] + "..."
    return f"; {_name(proc.ancestors[0])} ran `{cmd}`"


def apply_process_causes(contacts: list[Contact], fallback: GoConfig | None = None,
                         redact_values: bool = True) -> list[Contact]:
    """Causes from each contact's own process: its environment at exec and the files its go
    reads, with who set each variable. Contacts whose process environment is unknown get
    ``fallback`` (a configuration given by the user, or ``run``'s child), or nothing."""
    groups: dict[object, list[int]] = {}
    configs: dict[object, tuple[GoConfig | None, str]] = {}
    for i, c in enumerate(contacts):
        proc = c.process
        key: object = None
        if proc is not None and proc.env is not None:
            key = (proc.pid, proc.exe, proc.env, proc.cmdline, proc.go_files,
                   tuple((a.pid, a.comm, a.env) for a in proc.ancestors))
            if key not in configs:
                configs[key] = (process_config(proc), _trail(proc))
        groups.setdefault(key, []).append(i)
    out = list(contacts)
    for key, idx in groups.items():
        config, trail = configs.get(key, (fallback, ""))
        if config is None:
            continue
        explained = apply_causes([contacts[i] for i in idx], config, redact_values, trail=trail)
        for i, c in zip(idx, explained, strict=True):
            out[i] = c
    return out
