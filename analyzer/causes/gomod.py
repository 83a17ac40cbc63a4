"""The few go.mod / go.work lines that decide network behaviour: ``go``, ``toolchain`` and the
folklore ``proxy`` line.

A line scan, not a modfile parser: no maintained Python parser for the go.mod grammar exists, and
only single-line directives matter here. The go command's own parse error is the evidence shown to
users whenever a go binary is available (gocmd.parse_error).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

GOMOD_VERBS = frozenset({"module", "go", "toolchain", "godebug", "require", "exclude", "replace",
                         "retract", "tool", "ignore"})
GOWORK_VERBS = frozenset({"go", "toolchain", "godebug", "use", "replace"})


@dataclass(frozen=True)
class ModFile:
    path: Path
    go: str | None = None
    toolchain: str | None = None
    unknown: tuple[tuple[int, str], ...] = field(default=())  # (line, verb)


def scan(path: Path, text: str) -> ModFile:
    verbs = GOWORK_VERBS if path.name == "go.work" else GOMOD_VERBS
    go = toolchain = None
    unknown: list[tuple[int, str]] = []
    depth = 0
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("//", 1)[0].strip()
        if not line:
            continue
        if depth:
            if line == ")":
                depth = 0
            continue
        tokens = line.split()
        verb = tokens[0]
        if line.endswith("("):
            depth = 1
        if verb not in verbs:
            unknown.append((lineno, verb))
        elif verb == "go" and len(tokens) > 1:
            go = tokens[1]
        elif verb == "toolchain" and len(tokens) > 1:
            toolchain = tokens[1]
    return ModFile(path, go, toolchain, tuple(unknown))


def find_modfiles(workspace: Path) -> list[Path]:
    """go.work and go.mod that the go command would use from ``workspace`` (walking up)."""
    found: list[Path] = []
    for name in ("go.work", "go.mod"):
        for d in (workspace, *workspace.parents):
            if (d / name).is_file():
                found.append(d / name)
                break
    return found


_VERSION = re.compile(r"^(?:go)?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:(rc|beta)(\d+))?")


def version_key(v: str) -> tuple[int, int, int, int, int] | None:
    """Order go versions ("1.22", "go1.22.0", "1.23rc1"); None when not a version."""
    m = _VERSION.match(v.strip())
    if not m:
        return None
    major, minor, patch = (int(x) if x else 0 for x in m.group(1, 2, 3))
    pre = {"beta": 0, "rc": 1}.get(m.group(4) or "", 2)
    return (major, minor, patch, pre, int(m.group(5) or 0))


def needs_switch(local: str | None, wanted: str | None) -> bool:
    if not local or not wanted:
        return False
    lk, wk = version_key(local), version_key(wanted)
    return bool(lk and wk and wk > lk)
