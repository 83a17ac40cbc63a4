"""Settings that do not do what people think, each with the go command's own behaviour as evidence.

Pure over what the caller read (files, environments, the go command's messages through ``GoProbe``);
GO_NETWORK_FACTS.md sections 1.4, 8 and 10 are the rules.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from .consumers import Consumer
from .gomod import ModFile
from .proxylist import parse_goproxy, parse_gosumdb, redact
from .vscode import EditorSettings


@dataclass(frozen=True)
class LintFinding:
    code: str
    severity: str  # "error" (breaks the go command), "warning" (does not do what it seems), "info"
    location: str
    detail: str
    evidence: str
    consumer: str | None = None

    def to_dict(self) -> dict[str, object]:
        return {"code": self.code, "severity": self.severity, "consumer": self.consumer,
                "location": self.location, "detail": self.detail, "evidence": self.evidence}


@dataclass(frozen=True)
class GoProbe:
    """Evidence from a real go binary; each callable returns the go command's own message."""

    unknown_variable: Callable[[str], str | None]
    telemetry_mode: Callable[[], str | None]


# go.* keys that look like they configure the network but are not vscode-go settings.
REAL_GO_KEYS = frozenset({
    "go.toolsEnvVars", "go.testEnvVars", "go.testEnvFile", "go.toolsManagement.checkForUpdates",
    "go.toolsManagement.autoUpdate", "go.toolsManagement.go", "go.toolsGopath", "go.alternateTools",
    "go.goroot", "go.gopath", "go.inferGopath", "go.useLanguageServer", "go.languageServerFlags",
    "go.diagnostic.vulncheck", "go.survey.prompt",
})
_SUSPICIOUS = re.compile(r"proxy|sumdb|private|insecure|env|toolchain|telemetry|goflags", re.I)
_ENV_NAME = re.compile(r"^(GO[A-Z0-9_]*|HTTPS?_PROXY|NO_PROXY|https?_proxy|no_proxy)$")
GOPLS_NEAR_MISSES = frozenset({"goproxy", "proxy", "environment", "envVars", "toolsEnvVars"})

FETCH_FLAGS = {
    "-mod=mod": ("warning", "go commands may update go.mod and download missing modules instead of "
                 "failing on an incomplete go.mod"),
    "-mod=vendor": ("info", "module lookups are disabled: no module network traffic"),
    "-insecure": ("warning", "removed in Go 1.17: `go get` fails with \"go: -insecure flag is no longer "
                  "supported; use GOINSECURE instead\", other commands ignore it; it never "
                  "disabled checksum verification"),
    "-x": ("info", "go commands print every module fetch (`# get https://...`), which helps "
           "attribution; toolchain-switch downloads are still not printed"),
    "-modcacherw": ("info", "does not change fetching"),
}


def _fmt(value: str, redacted: bool) -> str:
    return redact(value) if redacted else value


def lint_modfiles(files: Sequence[tuple[ModFile, str | None]]) -> list[LintFinding]:
    out: list[LintFinding] = []
    for mf, go_error in files:
        for line, verb in mf.unknown:
            rel = f"{mf.path.name}:{line}"
            evidence = go_error or (f"{rel}: unknown directive: {verb} (what the go command reports; "
                                    "no go binary was available to run)")
            hint = (" The go command has no proxy directive: set GOPROXY (environment, `go env -w`, "
                    "or go.toolsEnvVars) instead." if verb == "proxy" else "")
            out.append(LintFinding(f"{mf.path.name.replace('.', '')}-unknown-directive", "error",
                                   f"{mf.path}:{line}",
                                   f"`{verb}` is not a {mf.path.name} directive: every go command in "
                                   f"this module fails to parse it.{hint}", evidence))
    return out


def lint_consumer(c: Consumer, redacted: bool = True) -> list[LintFinding]:
    cfg = c.config
    out: list[LintFinding] = []
    gp = cfg.get("GOPROXY")
    if gp is None:
        return out
    pl = parse_goproxy(gp.value)
    where = gp.source
    if pl.ignored:
        out.append(LintFinding("goproxy-unreachable-entries", "warning", where,
                               f"GOPROXY={_fmt(gp.value, redacted)}: entries after "
                               f"'{pl.terminal}' are never used: {', '.join(_fmt(x, redacted) for x in pl.ignored)}",
                               "cmd/go stops reading the list at direct or off (modfetch/proxy.go: "
                               "\"direct\" is the end of the line)", c.name))
    if gp.value.strip() and not pl.entries:
        out.append(LintFinding("goproxy-empty", "error", where,
                               f"GOPROXY={gp.value!r} has no entries",
                               "go: GOPROXY list is not the empty string, but contains no entries",
                               c.name))
    sumdb = cfg.get("GOSUMDB")
    nosum = cfg.value("GONOSUMDB")
    if not pl.proxies and pl.terminal == "direct" and sumdb and parse_gosumdb(sumdb.value).name \
            and c.name != "vscode-extension":
        db = parse_gosumdb(sumdb.value)
        exempt = f" (GONOSUMDB={nosum} exempts only the paths it matches)" if nosum else ""
        out.append(LintFinding("direct-with-default-sumdb", "warning", f"{where}; GOSUMDB from {sumdb.source}",
                               f"GOPROXY=direct but GOSUMDB={sumdb.value}: {db.direct_host} is still "
                               "contacted directly for every module@version missing from go.sum"
                               f"{exempt}.",
                               "modfetch/sumdb.go initBase maps direct/off to the database's own URL; "
                               "reproduced: `# get https://sum.golang.org/lookup/...` with GOPROXY=direct",
                               c.name))
    tc = cfg.value("GOTOOLCHAIN")
    if sumdb and parse_gosumdb(sumdb.value).off and tc not in ("", "local", "path") \
            and not tc.endswith("+path") and c.name != "vscode-extension":
        out.append(LintFinding("gosumdb-off-toolchain", "warning", sumdb.source,
                               f"GOSUMDB=off with GOTOOLCHAIN={tc}: a toolchain switch fails.",
                               "verifying module: checksum database disabled by GOSUMDB=off "
                               "(golang.org/toolchain is always verified)", c.name))
    godebug = cfg.get("GODEBUG")
    if godebug and "netdns=cgo" in godebug.value and c.name != "vscode-extension":
        out.append(LintFinding("godebug-netdns-cgo", "info", godebug.source,
                               "GODEBUG=netdns=cgo is ignored by the go command: release builds have "
                               "no cgo, so it always resolves names itself (UDP/53 from the go "
                               "process); tools built with cgo, such as gopls, may honour it.",
                               "go package net: ignoring GODEBUG=netdns=cgo as the binary was "
                               "compiled without support for the cgo resolver", c.name))
    flags = cfg.get("GOFLAGS")
    if flags and flags.value:
        for tok in flags.value.split():
            name = tok[1:] if tok.startswith("--") else tok
            if name.startswith("-insecure") or name.startswith("-x="):
                name = name.split("=", 1)[0]
            if name in FETCH_FLAGS:
                sev, words = FETCH_FLAGS[name]
                out.append(LintFinding("goflags-fetch", sev, flags.source,
                                       f"GOFLAGS contains {tok}: {words}.",
                                       "GOFLAGS entries apply to every go command that knows the flag "
                                       "(`go help environment`)", c.name))
    return out


def lint_variables(places: Sequence[tuple[str, Mapping[str, object]]],
                   probe: GoProbe | None) -> list[LintFinding]:
    """Variables that the go command does not read, wherever they were written."""
    out: list[LintFinding] = []
    for where, values in places:
        if "GONOSUMCHECK" in values:
            ev = probe.unknown_variable("GONOSUMCHECK") if probe else None
            out.append(LintFinding("gonosumcheck", "warning", where,
                                   "GONOSUMCHECK does not exist; nothing reads it. Use GONOSUMDB "
                                   "(or GOPRIVATE) patterns, or GOSUMDB=off.",
                                   ev or "`go env -w GONOSUMCHECK=1` fails with: go: unknown go "
                                   "command variable GONOSUMCHECK"))
        if "GOTELEMETRY" in values:
            seen = probe.telemetry_mode() if probe else None
            shown = f"; with it set, `go env GOTELEMETRY` still prints {seen}" if seen else ""
            out.append(LintFinding("gotelemetry-env", "warning", where,
                                   f"GOTELEMETRY={values['GOTELEMETRY']} is not read from the "
                                   "environment; the telemetry mode comes from the mode file.",
                                   f"`go help environment` lists GOTELEMETRY as not read from the "
                                   f"environment{shown}; use `go telemetry off`."))
    return out


def lint_editor(editor: EditorSettings) -> list[LintFinding]:
    out: list[LintFinding] = []
    for f in editor.files:
        if f.error:
            out.append(LintFinding("settings-unreadable", "error", f.path, f.error,
                                   "VS Code ignores the settings it cannot parse"))
            continue
        for key, value in f.data.items():
            if _ENV_NAME.match(key):
                out.append(LintFinding("vscode-unknown-setting", "warning", f"{f.path}: {key}",
                                       f"\"{key}\" is an environment variable, not a VS Code setting: "
                                       "nothing reads it.",
                                       "put it in \"go.toolsEnvVars\" (tools and gopls) or "
                                       "\"gopls\": {\"env\": ...}"))
            elif key.startswith("go.") and key not in REAL_GO_KEYS and _SUSPICIOUS.search(key):
                out.append(LintFinding("vscode-unknown-setting", "warning", f"{f.path}: {key}",
                                       f"\"{key}\" is not a setting of the VS Code Go extension: it "
                                       "changes nothing.",
                                       "the extension's settings are listed in its package.json; "
                                       "environment goes in \"go.toolsEnvVars\""))
            elif key == "go.toolsEnvVars" and not isinstance(value, dict):
                out.append(LintFinding("vscode-bad-value", "warning", f"{f.path}: {key}",
                                       "\"go.toolsEnvVars\" must be an object of strings.", repr(value)))
            elif key == "gopls" and isinstance(value, dict):
                for inner in value:
                    if _ENV_NAME.match(inner) or inner in GOPLS_NEAR_MISSES:
                        out.append(LintFinding("vscode-unknown-setting", "warning",
                                               f"{f.path}: gopls.{inner}",
                                               f"\"{inner}\" is not a gopls setting (gopls reports "
                                               "it as unknown and ignores it).",
                                               "environment for gopls goes in \"gopls\": {\"env\": {...}}"))
        for name, sourced in (*editor.tools_env.items(), *editor.gopls_env.items()):
            if sourced.file == f.path and not isinstance(sourced.value, str):
                out.append(LintFinding("vscode-bad-value", "warning", f"{f.path}: {sourced.key}.{name}",
                                       f"{name} must be a string to reach the environment.",
                                       repr(sourced.value)))
    return out
