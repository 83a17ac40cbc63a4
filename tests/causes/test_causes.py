"""Causes on hand-built contacts for the lab's scenarios 1-3 (default; GOPROXY=direct with the
default checksum database; direct with GONOSUMDB/GOPRIVATE) and the unexplained cases."""

from __future__ import annotations

from dataclasses import replace

import pytest

from analyzer.base.model import Contact, Finding, HttpInfo, ProcessInfo, ProxyHop, TlsInfo
from analyzer.causes.contact import apply_causes, module_of
from analyzer.causes.goconfig import BUILTIN, ENVIRONMENT, GOROOT_ENV, GoConfig, Setting

GO = ProcessInfo(pid=4242, comm="go", cmdline="go mod download", ppid=1, source="strace")


def config(**values: tuple[str, str]) -> GoConfig:
    base = {
        "GOPROXY": ("https://proxy.golang.org,direct", GOROOT_ENV),
        "GOSUMDB": ("sum.golang.org", GOROOT_ENV),
        "GOTOOLCHAIN": ("auto", GOROOT_ENV),
        "GONOPROXY": ("", BUILTIN), "GONOSUMDB": ("", BUILTIN), "GOPRIVATE": ("", BUILTIN),
        "GOTELEMETRY": ("local", "built-in default (no mode file /h/.config/go/telemetry/mode)"),
        "HTTPS_PROXY": ("", "not set"),
    }
    base.update(values)
    return GoConfig(settings={k: Setting(k, v, s) for k, (v, s) in base.items()})


def contact(host: str, layer: str = "tls", op: str | None = None, path: str | None = None,
            **kw: object) -> Contact:
    http = HttpInfo(method="GET", path=path, user_agent="GoCommand/1 (+https://go.dev/cmd/go)",
                    status=200, location=None) if path else None
    tls = TlsInfo(sni=host, alpn=("h2", "http/1.1"), version="TLS 1.3", ja4=None, ja3=None) \
        if layer == "tls" else None
    return Contact(ts=1.0, layer=layer, host=host, transport="udp" if layer == "dns" else "tcp",  # type: ignore[arg-type]
                   src="10.0.0.2", sport=40000, dst="10.0.0.1", dport=53 if layer == "dns" else 443,
                   flow_id="F1", frames=(3, 4), process=GO, operation=op, http=http, tls=tls,
                   **kw)  # type: ignore[arg-type]


DIRECT = ("direct", ENVIRONMENT)

# (scenario, config, contact, expected cause fragment or None, expected finding fragment or None)
TABLE = [
    # Scenario 1: the default configuration.
    ("default", config(), contact("proxy.golang.org"),
     "GOPROXY=https://proxy.golang.org,direct from $GOROOT/go.env (default) -> module download", None),
    ("default", config(), contact("proxy.golang.org", "http", "module-info",
                                  "/golang.org/x/sync/@v/v0.9.0.info"),
     "-> module version info", None),
    ("default", config(), contact("proxy.golang.org", "http", "sumdb-supported",
                                  "/sumdb/sum.golang.org/supported"),
     "-> checksum database probe", None),
    ("default", config(), contact("sum.golang.org", "dns"),
     "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup", None),
    ("default", config(), contact("sum.golang.org", "http", "sumdb-tile", "/tile/8/0/x123/009"),
     "-> checksum database tile", None),
    ("default", config(), contact("golang.org", "dns"),
     "direct fallback after the proxy answered 404/410", None),
    # Scenario 2: GOPROXY=direct, default GOSUMDB.
    ("direct", config(GOPROXY=DIRECT), contact("sum.golang.org", "http", "sumdb-lookup",
                                               "/lookup/golang.org/x/text@v0.3.0"),
     "GOSUMDB=sum.golang.org from $GOROOT/go.env (default) -> checksum lookup (GOPROXY=direct from "
     "environment does not cover the checksum database)", None),
    ("direct", config(GOPROXY=DIRECT), contact("golang.org", "http", "go-get-meta", "/x/text?go-get=1"),
     "GOPROXY=direct from environment -> direct go-get meta lookup", None),
    ("direct", config(GOPROXY=DIRECT), contact("go.googlesource.com"),
     "GOPROXY=direct from environment -> direct git fetch", None),
    ("direct", config(GOPROXY=DIRECT), contact("proxy.golang.org"),
     None, "proxy.golang.org contacted but GOPROXY=direct from environment does not list it"),
    # Scenario 3: direct with GONOSUMDB/GOPRIVATE: no Google host should appear at all.
    ("direct-private", config(GOPROXY=DIRECT, GOPRIVATE=("vanity.lab", ENVIRONMENT),
                              GONOSUMDB=("vanity.lab", "GOPRIVATE from environment")),
     contact("sum.golang.org", "http", "sumdb-lookup", "/lookup/vanity.lab/m@v1.0.0"),
     None, "checksum lookup for vanity.lab/m, which matches GONOSUMDB=vanity.lab"),
    ("direct-private", config(GOPROXY=DIRECT, GOSUMDB=("off", ENVIRONMENT)),
     contact("sum.golang.org", "dns"), None, "sum.golang.org contacted but GOSUMDB=off from environment"),
    ("direct-private", config(GOPROXY=DIRECT, GONOSUMDB=("vanity.lab", ENVIRONMENT)),
     contact("sum.golang.org", "http", "sumdb-lookup", "/lookup/golang.org/toolchain@v0.0.1-go1.99.0.linux-amd64"),
     "GOTOOLCHAIN=auto from $GOROOT/go.env (default) -> toolchain checksum lookup", None),
    # Toolchain switches, telemetry, editor checks.
    ("toolchain", config(GOPROXY=DIRECT), contact("dl.google.com"),
     "GOTOOLCHAIN=auto from $GOROOT/go.env (default) and GOPROXY=direct from environment -> direct "
     "toolchain download", None),
    ("toolchain-local", config(GOTOOLCHAIN=("local", "GOENV file /h/.config/go/env")),
     contact("go.dev", op="toolchain-download"), None, "never downloads"),
    ("telemetry-local", config(), contact("telemetry.go.dev"), None, "telemetry mode is local"),
    ("telemetry-on", config(GOTELEMETRY=("on", "telemetry mode file /h/.config/go/telemetry/mode")),
     contact("telemetry.go.dev"), "GOTELEMETRY=on from telemetry mode file", None),
    ("editor", config(), contact("go.dev", op="go-release-check", client="node"),
     "go.toolsManagement.checkForUpdates=proxy (vscode-go default) -> Go release check", None),
    ("mirror-not-configured", config(), contact("goproxy.cn"), None,
     "goproxy.cn contacted but GOPROXY=https://proxy.golang.org,direct"),
    ("origin", config(GOPROXY=DIRECT), contact("vanity.example"),
     "GOPROXY=direct from environment -> direct fetch from the module's origin", None),
    ("origin-no-direct", config(GOPROXY=("https://goproxy.example", ENVIRONMENT)),
     contact("example.org"), None, None),
    ("not-a-go-tool", config(), replace(contact("golang.org"), process=ProcessInfo(
        pid=7, comm="curl", cmdline="curl https://golang.org/", ppid=1, source="strace")),
     None, "golang.org contacted by curl (pid 7), which is not a Go tool"),
    # With --all every host is reported: curl talking to a host that is not Go infrastructure
    # has nothing the Go configuration should explain, so no finding.
    ("not-a-go-tool-elsewhere", config(), replace(contact("example.org"), process=ProcessInfo(
        pid=7, comm="curl", cmdline="curl https://example.org/", ppid=1, source="strace")),
     None, None),
]


@pytest.mark.parametrize(("scenario", "cfg", "c", "cause", "unexplained"), TABLE,
                         ids=[f"{t[0]}-{t[2].host}-{t[2].operation or t[2].layer}" for t in TABLE])
def test_cause_table(scenario: str, cfg: GoConfig, c: Contact, cause: str | None,
                     unexplained: str | None) -> None:
    (out,) = apply_causes([c], cfg)
    if cause is None:
        assert out.cause is None
    else:
        assert out.cause is not None and cause in out.cause, out.cause
    kinds = [f for f in out.findings if f.kind == "config-unexplained"]
    if unexplained is None:
        assert kinds == []
    else:
        assert len(kinds) == 1 and unexplained in kinds[0].detail, kinds
        assert kinds[0].layer == c.layer and kinds[0].frames == c.frames


def test_other_fields_and_findings_are_kept() -> None:
    earlier = Finding(layer="tls", kind="tls-untrusted-issuer", detail="lab CA")
    c = replace(contact("proxy.golang.org"), findings=(earlier,), notes=("n",))
    (out,) = apply_causes([c], config(GOPROXY=DIRECT))
    assert out.findings[0] == earlier and out.findings[1].kind == "config-unexplained"
    assert replace(out, findings=c.findings, cause=None) == c


def test_credentials_in_proxy_urls_are_redacted() -> None:
    cfg = config(GOPROXY=("https://alice:s3cret@goproxy.cn,direct", ENVIRONMENT))
    (out,) = apply_causes([contact("goproxy.cn")], cfg)
    assert out.cause is not None and "s3cret" not in out.cause and "xxxxx@goproxy.cn" in out.cause
    (raw,) = apply_causes([contact("goproxy.cn")], cfg, redact_values=False)
    assert raw.cause is not None and "alice:s3cret@" in raw.cause


def test_tunnelled_contact_names_the_forward_proxy() -> None:
    cfg = config(HTTPS_PROXY=("http://bob:pw@127.0.0.1:3128", ENVIRONMENT))
    c = replace(contact("sum.golang.org"), via_proxy=ProxyHop("127.0.0.1", 3128))
    (out,) = apply_causes([c], cfg)
    assert out.cause is not None and out.cause.endswith(
        "through HTTPS_PROXY=http://xxxxx@127.0.0.1:3128 from environment")


@pytest.mark.parametrize(("path", "module"), [
    ("/golang.org/x/sync/@v/v0.9.0.info", "golang.org/x/sync"),
    ("/github.com/!burnt!sushi/toml/@v/list", "github.com/BurntSushi/toml"),
    ("/example.com/m/@latest", "example.com/m"),
    ("/sumdb/sum.golang.org/lookup/example.com/m@v1.0.0", "example.com/m"),
    ("/lookup/golang.org/toolchain@v0.0.1-go1.99.0.linux-amd64", "golang.org/toolchain"),
    ("/sumdb/sum.golang.org/supported", None),
    ("/tile/8/0/x123/009", None),
])
def test_module_of(path: str, module: str | None) -> None:
    assert module_of(contact("proxy.golang.org", "http", None, path)) == module
