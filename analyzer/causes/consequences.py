"""What a configuration means on the network, in plain words, per consumer and per situation.

Pure: a GoConfig (and what the workspace asks for) in, Consequence records out. The rules are
GO_NETWORK_FACTS.md sections 1 (proxy and checksum database), 3 (toolchain switch), 4
(telemetry), 5 (gopls) and 6 (the VS Code extension).
"""

from __future__ import annotations

from dataclasses import dataclass

from .goconfig import GoConfig
from .proxylist import ProxyList, match_prefix_patterns, parse_goproxy, parse_gosumdb, redact

PUBLIC_EXAMPLE = "golang.org/x/text"
# proxy.golang.org answers 404 to /sumdb/sum.golang.org/supported (facts 1.2).
NO_SUMDB_PROXYING = frozenset({"proxy.golang.org"})
DIRECT_TOOLCHAIN_HOSTS = ("golang.org", "go.dev", "dl.google.com")


@dataclass(frozen=True)
class Consequence:
    consumer: str
    case: str
    hosts: tuple[str, ...]
    detail: str
    stop: str

    def to_dict(self) -> dict[str, object]:
        return {"consumer": self.consumer, "case": self.case, "hosts": list(self.hosts),
                "detail": self.detail, "stop": self.stop}


def _v(cfg: GoConfig, name: str, redacted: bool) -> str:
    val = cfg.value(name)
    return redact(val) if redacted else val


def direct_hosts(module: str) -> tuple[str, ...]:
    if module.startswith("golang.org/x/"):
        return ("golang.org", "go.googlesource.com")
    return (module.split("/", 1)[0],)


def fetch_plan(cfg: GoConfig, module: str, redacted: bool = True) -> tuple[tuple[str, ...], str]:
    """Hosts asked for ``module``'s files, in order, and the reason in words."""
    goproxy = cfg.value("GOPROXY")
    pl = parse_goproxy(goproxy)
    shown = redact(goproxy) if redacted else goproxy
    noproxy = cfg.value("GONOPROXY")
    if noproxy and goproxy != "direct" and match_prefix_patterns(noproxy, module):
        return direct_hosts(module), (f"{module} matches GONOPROXY={noproxy}: fetched directly from its "
                                      "origin (go-get=1 request, then git/hg)")
    if not pl.entries:
        return (), "GOPROXY is empty: module downloads fail (\"GOPROXY list is not the empty string, " \
                    "but contains no entries\" or no proxy at all); nothing is contacted"
    steps: list[str] = []
    hosts: list[str] = []
    for i, e in enumerate(pl.entries):
        lead = "" if i == 0 else (" then, after any error," if pl.entries[i - 1].fall_back_on_error
                                  else " then, if it answers 404/410,")
        if e.url == "off":
            steps.append(f"{lead} fails (GOPROXY entry off)".strip())
        elif e.url == "direct":
            dh = direct_hosts(module)
            hosts.extend(dh)
            steps.append(f"{lead} the origin directly: {', '.join(dh)} (go-get=1 request, then git)".strip())
        else:
            if e.host:
                hosts.append(e.host)
            steps.append(f"{lead} {redact(e.url) if redacted else e.url}".strip())
    return tuple(dict.fromkeys(hosts)), f"GOPROXY={shown}: " + "; ".join(steps)


def sumdb_plan(cfg: GoConfig, module: str) -> tuple[tuple[str, ...], str]:
    """Hosts contacted to verify ``module`` against the checksum database (go.sum lacking it)."""
    db = parse_gosumdb(cfg.value("GOSUMDB"))
    nosum = cfg.value("GONOSUMDB")
    toolchain = module == "golang.org/toolchain"
    if not toolchain and db.off:
        return (), "GOSUMDB=off: no checksum database is consulted"
    if not toolchain and nosum and match_prefix_patterns(nosum, module):
        return (), f"{module} matches GONOSUMDB={nosum}: not checked against a checksum database"
    if db.off:
        return (), "golang.org/toolchain must be verified but GOSUMDB=off: the switch fails"
    if not db.name:
        return (), "GOSUMDB is empty: verification fails (\"missing GOSUMDB\")"
    if db.url:
        return ((db.direct_host or "?"),), (f"GOSUMDB names {db.url} explicitly: asked directly, "
                                            "bypassing GOPROXY")
    pl = parse_goproxy(cfg.value("GOPROXY"))
    hosts: list[str] = []
    words: list[str] = []
    for e in pl.proxies:
        host = e.host or e.url
        hosts.append(host)
        if host in NO_SUMDB_PROXYING:
            words.append(f"probes {host}/sumdb/{db.name}/supported (it answers 404)")
        else:
            words.append(f"probes {host}/sumdb/{db.name}/supported and, if it answers 200, sends "
                         "every lookup through it")
            hosts.append(db.direct_host or db.name)
            words.append(f"otherwise {db.direct_host} directly")
            return tuple(dict.fromkeys(hosts)), "; ".join(words)
    hosts.append(db.direct_host or db.name)
    reason = "GOPROXY has no proxy entry, so the go command asks" if not pl.proxies else "then"
    words.append(f"{reason} {db.direct_host} directly (/lookup and /tile)")
    return tuple(dict.fromkeys(hosts)), "; ".join(words)


def _private_example(cfg: GoConfig) -> str | None:
    for name in ("GOPRIVATE", "GONOPROXY", "GONOSUMDB"):
        for pat in cfg.value(name).split(","):
            pat = pat.strip().rstrip("/")
            if pat:
                return pat.replace("*", "x") + ("/repo" if "/" not in pat else "")
    return None


def go_consequences(consumer: str, cfg: GoConfig, wanted_toolchain: str | None = None,
                    redacted: bool = True) -> list[Consequence]:
    out: list[Consequence] = []
    hosts, words = fetch_plan(cfg, PUBLIC_EXAMPLE, redacted)
    out.append(Consequence(consumer, "public module", hosts,
                           f"Downloading a public module (e.g. {PUBLIC_EXAMPLE}) with {words}.",
                           "GOPROXY=direct keeps proxy hosts out (origins are contacted instead); "
                           "GOPROXY=off or -mod=vendor stops module downloads; a complete go.sum "
                           "and module cache avoid them."))
    s_hosts, s_words = sumdb_plan(cfg, PUBLIC_EXAMPLE)
    out.append(Consequence(consumer, "checksum verification", s_hosts,
                           f"For each module@version missing from go.sum: {s_words}. GOPROXY=direct "
                           "or off does not change this.",
                           "GOSUMDB=off, or GONOSUMDB/GOPRIVATE patterns for the paths; keep go.sum "
                           "complete (toolchain downloads are always verified)."))
    private = _private_example(cfg)
    if private is None:
        example = "corp.example/team/repo"
        f_hosts, f_words = fetch_plan(cfg, example, redacted)
        s2_hosts, s2_words = sumdb_plan(cfg, example)
        out.append(Consequence(consumer, "private module", tuple(dict.fromkeys(f_hosts + s2_hosts)),
                               f"No GOPRIVATE/GONOPROXY/GONOSUMDB, so a private module such as "
                               f"{example} is treated like a public one: {f_words}. Checksums: "
                               f"{s2_words}. Every host named here learns the private path.",
                               "GOPRIVATE=corp.example/* (or GONOPROXY plus GONOSUMDB)."))
    else:
        f_hosts, f_words = fetch_plan(cfg, private, redacted)
        s2_hosts, s2_words = sumdb_plan(cfg, private)
        out.append(Consequence(consumer, "private module", tuple(dict.fromkeys(f_hosts + s2_hosts)),
                               f"A private module such as {private}: {f_words}. Checksums: {s2_words}.",
                               "GOPRIVATE covers both the proxy and the checksum database; "
                               "GOINSECURE only relaxes TLS for direct fetches."))
    insecure = cfg.value("GOINSECURE")
    if insecure:
        out.append(Consequence(consumer, "insecure fetch", (),
                               f"GOINSECURE={insecure}: direct fetches of matching paths try HTTPS "
                               "without certificate checks (5 s timeout, no ALPN) and then plain "
                               "http://, so they show up as http contacts; checksum verification "
                               "still applies.", "unset GOINSECURE."))
    out.append(_toolchain(consumer, cfg, wanted_toolchain))
    mode = cfg.value("GOTELEMETRY")
    if consumer in ("go", "gopls"):
        if mode == "on":
            c_hosts, _ = fetch_plan(cfg, "golang.org/x/telemetry/config", redacted)
            out.append(Consequence(consumer, "telemetry", ("telemetry.go.dev", *c_hosts),
                                   "Telemetry mode is on: at most once a day a `** telemetry **` child "
                                   "uploads reports to telemetry.go.dev and downloads "
                                   "golang.org/x/telemetry/config through GOPROXY.",
                                   "go telemetry off (or local); the GOTELEMETRY environment "
                                   "variable is not read."))
        else:
            out.append(Consequence(consumer, "telemetry", (),
                                   f"Telemetry mode is {mode or 'local'}: no uploads (Go 1.23.0 and "
                                   "gopls v0.15-v0.16.1 still fetched the config daily).",
                                   "nothing to do; `go telemetry off` also stops local counting."))
    if consumer == "gopls":
        vulndb = cfg.value("GOVULNDB") or "https://vuln.go.dev"
        out.append(Consequence(consumer, "vulnerability database", ("vuln.go.dev",)
                               if "vuln.go.dev" in vulndb else (),
                               "gopls asks to run vulncheck when go.mod requirements change (Prompt, "
                               "the default since v0.21); after Yes/Always, or with "
                               "\"vulncheck\": \"Imports\", it queries the vulnerability database.",
                               "\"gopls\": {\"vulncheck\": \"Off\"} and answer Never; or GOVULNDB "
                               "in gopls env pointing at a local copy."))
    return out


def _toolchain(consumer: str, cfg: GoConfig, wanted: str | None) -> Consequence:
    tc = cfg.value("GOTOOLCHAIN")
    if tc in ("", "local") or tc == "path" or tc.endswith("+path"):
        why = {"": "GOTOOLCHAIN is empty", "local": "GOTOOLCHAIN=local"}.get(tc, f"GOTOOLCHAIN={tc}")
        extra = " (it only looks for goX.Y.Z binaries in PATH)" if "path" in tc else ""
        return Consequence(consumer, "toolchain switch", (),
                           f"{why}: the go command never downloads another toolchain{extra}; a "
                           "go.mod asking for a newer Go fails instead.", "already stopped.")
    pl = parse_goproxy(cfg.value("GOPROXY"))
    first = pl.proxies[0].host if pl.proxies else None
    hosts: tuple[str, ...]
    if first:
        hosts = (first,)
        via = f"downloads golang.org/toolchain@v0.0.1-goX.Y.Z.<os>-<arch>.zip from {first}"
    elif pl.has_direct:
        hosts = DIRECT_TOOLCHAIN_HOSTS
        via = ("asks golang.org/toolchain?go-get=1, downloads the zip from go.dev/dl/mod, which "
               "redirects to dl.google.com")
    else:
        hosts = ()
        via = "cannot download (GOPROXY off or empty)"
    s_hosts, _ = sumdb_plan(cfg, "golang.org/toolchain")
    trigger = ""
    if wanted:
        trigger = f" This workspace asks for {wanted}, newer than {cfg.go_version or 'the local go'}: " \
                  "the next go command run there switches."
    return Consequence(consumer, "toolchain switch", tuple(dict.fromkeys(hosts + s_hosts)),
                       f"GOTOOLCHAIN={tc}: when go.mod/go.work needs a newer Go, the go command "
                       f"{via}, then verifies it with the checksum database even with GONOSUMDB "
                       f"(GOSUMDB=off makes it fail).{trigger}",
                       "GOTOOLCHAIN=local (or install the wanted version in PATH as goX.Y.Z).")


def extension_consequences(cfg: GoConfig, redacted: bool = True) -> list[Consequence]:
    out: list[Consequence] = []
    check = cfg.value("go.toolsManagement.checkForUpdates") or "proxy"
    auto = cfg.value("go.toolsManagement.autoUpdate") == "true"
    pl: ProxyList = parse_goproxy(cfg.value("GOPROXY"))
    first = next((e for e in pl.entries if e.url != "direct"), None)
    if check == "off":
        out.append(Consequence("vscode-extension", "gopls version check", (),
                               "go.toolsManagement.checkForUpdates is off: no gopls update check.",
                               "already stopped."))
    else:
        host = first.host if first and first.url != "off" else None
        detail = (f"When gopls is a pseudo-version{' or on an autoUpdate staged rollout' if auto else ''}"
                  f", the extension's Node code fetches {redact(first.url) if first and redacted else (first.url if first else '-')}"
                  "/golang.org/x/tools/gopls/@v/vX.Y.Z.info (node-fetch); other update checks "
                  "run `go list -m --versions` (a go child, see vscode-tools)."
                  if host else "GOPROXY has no proxy entry before direct: the Node fetch is skipped; "
                  "update checks run `go list -m --versions` (a go child, see vscode-tools).")
        out.append(Consequence("vscode-extension", "gopls version check", (host,) if host else (),
                               detail, "GOPROXY=direct in the editor's environment, or "
                               "\"go.toolsManagement.checkForUpdates\": \"off\"."))
    release = check not in ("local", "off")
    out.append(Consequence("vscode-extension", "Go release check", ("go.dev",) if release else (),
                           "At most daily the extension fetches https://go.dev/dl/?mode=json to offer "
                           "a newer Go, whatever GOPROXY says." if release else
                           f"go.toolsManagement.checkForUpdates is {check}: no go.dev release check.",
                           "\"go.toolsManagement.checkForUpdates\": \"local\" or \"off\"."))
    return out


def forward_proxy(consumer: str, cfg: GoConfig, redacted: bool = True) -> Consequence | None:
    https = cfg.value("HTTPS_PROXY")
    if not https:
        return None
    shown = redact(https) if redacted else https
    no = cfg.value("NO_PROXY")
    # net/http takes socks5:// and socks5h:// alike and sends the host name to the proxy
    socks = https.strip().lower().startswith(("socks5://", "socks5h://"))
    tunnel, where = (("SOCKS5 tunnels", "SOCKS5 requests (the proxy resolves them: no DNS here)")
                     if socks else ("CONNECT tunnels", "CONNECT lines"))
    return Consequence(consumer, "forward proxy", (),
                       f"HTTPS requests above travel in {tunnel} through {shown}"
                       + (f" (except NO_PROXY={no})" if no else "")
                       + f"; a capture shows the proxy's address, the names only in {where} "
                       "and SNI.", "unset HTTPS_PROXY/https_proxy (or http.proxy in VS Code).")
