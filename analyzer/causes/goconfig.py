"""The records `explain`, `run` and `analyze --config-from` share: one setting, and a whole configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

# The variables that decide which hosts Go tooling contacts (../shared/GO_NETWORK_FACTS.md 1.4, 8).
NETWORK_VARS: tuple[str, ...] = (
    "GOPROXY", "GONOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOFLAGS",
    "GOTOOLCHAIN", "GOTELEMETRY", "GODEBUG", "HTTPS_PROXY", "HTTP_PROXY", "NO_PROXY",
)
# Read through the go command's chain (environment, GOENV file, $GOROOT/go.env, built-in default).
CHAIN_VARS: tuple[str, ...] = (
    "GOPROXY", "GONOPROXY", "GOSUMDB", "GONOSUMDB", "GOPRIVATE", "GOINSECURE", "GOFLAGS",
    "GOTOOLCHAIN", "GOVCS", "GOAUTH",
)

ENVIRONMENT = "environment"
BUILTIN = "built-in default"
GOROOT_ENV = "$GOROOT/go.env (default)"
# a file's content carried by the capture (GoFiles: line), not read on the analysing machine
RECORDED = " (recorded with the capture)"
GOROOT_ENV_RECORDED = "$GOROOT/go.env (default, recorded with the capture)"


def goenv_source(path: str) -> str:
    return f"GOENV file {path}"


@dataclass(frozen=True)
class Setting:
    """One effective value and where it comes from (``source`` is what a person reads)."""

    name: str
    value: str
    source: str
    path: str | None = None  # the file the value was read from, when it came from a file


@dataclass(frozen=True)
class GoConfig:
    """What one consumer (a go command, gopls, the editor's tools) would use."""

    settings: Mapping[str, Setting]
    go_binary: str | None = None
    go_version: str | None = None
    goroot: str | None = None
    goenv_file: str | None = None  # None when GOENV=off or no config dir
    notes: tuple[str, ...] = ()
    # Settings of the editor that decide network checks (go.toolsManagement.*), by their own names.
    editor: Mapping[str, Setting] = field(default_factory=dict)

    def get(self, name: str) -> Setting | None:
        return self.settings.get(name) or self.editor.get(name)

    def value(self, name: str) -> str:
        s = self.get(name)
        return s.value if s else ""
