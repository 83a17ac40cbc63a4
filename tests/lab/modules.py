"""The lab's Go modules: tiny zips in the module proxy format, and their go.sum hashes.

Zips are built in memory with the ``module@version/`` prefix the go command checks, kept to a few
hundred bytes so captures stay small. Hashes follow golang.org/x/mod/sumdb/dirhash.Hash1, the
algorithm behind go.sum's ``h1:`` lines.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from functools import cached_property

GO_LINE = "go 1.21"
MODULE_TIME = "2026-01-02T03:04:05Z"
TOOLCHAIN_MODULE = "golang.org/toolchain"
TOOLCHAIN_GO = "go1.99.0"
TOOLCHAIN_VERSION = f"v0.0.1-{TOOLCHAIN_GO}.linux-amd64"
GOPLS_VERSION = "v0.20.0"

# The fake toolchain's bin/go: prints a version so the go command's exec of it visibly succeeds.
_FAKE_GO = f"""#!/bin/sh
echo "go version {TOOLCHAIN_GO} linux/amd64 (proxytrace lab toolchain)"
"""


def hash1(files: dict[str, bytes]) -> str:
    """dirhash.Hash1: sha256 over sorted "<sha256 hex>  <name>" lines, base64 with an h1: prefix."""
    summary = hashlib.sha256()
    for name in sorted(files):
        summary.update(f"{hashlib.sha256(files[name]).hexdigest()}  {name}\n".encode())
    return "h1:" + base64.b64encode(summary.digest()).decode()


def escape_path(path: str) -> str:
    """module.EscapePath: upper-case letters become '!' + lower case (lab paths are lower case)."""
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


@dataclass(frozen=True)
class Module:
    path: str
    version: str
    files: tuple[tuple[str, bytes], ...]  # relative name -> content, go.mod included
    mode_exec: tuple[str, ...] = ()

    @property
    def gomod(self) -> bytes:
        return dict(self.files).get("go.mod", f"module {self.path}\n".encode())

    @cached_property
    def zip_bytes(self) -> bytes:
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name, data in self.files:
                info = zipfile.ZipInfo(f"{self.path}@{self.version}/{name}", (2026, 1, 2, 3, 4, 6))
                info.external_attr = (0o755 if name in self.mode_exec else 0o644) << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        return buf.getvalue()

    @property
    def info_json(self) -> bytes:
        return json.dumps({"Version": self.version, "Time": MODULE_TIME}).encode()

    def zip_hash(self) -> str:
        prefix = f"{self.path}@{self.version}/"
        return hash1({prefix + name: data for name, data in self.files})

    def mod_hash(self) -> str:
        return hash1({"go.mod": self.gomod})

    def sumdb_record(self) -> bytes:
        return (f"{self.path} {self.version} {self.zip_hash()}\n"
                f"{self.path} {self.version}/go.mod {self.mod_hash()}\n").encode()


def _package(path: str, version: str, name: str, text: str) -> Module:
    gomod = f"module {path}\n\n{GO_LINE}\n".encode()
    src = f'package {name}\n\n// Hello says where it came from.\nfunc Hello() string {{ return "{text} {version}" }}\n'
    return Module(path, version, (("go.mod", gomod), (f"{name}.go", src.encode())))


def lab_modules() -> list[Module]:
    toolchain = Module(
        TOOLCHAIN_MODULE, TOOLCHAIN_VERSION,
        # The go command sets exec bits under pkg/tool, lib and bin/gofmt before running bin/go,
        # and fails when they are missing (toolchain/select.go), so the fake has all of them.
        (("VERSION", f"{TOOLCHAIN_GO}\ntime 2026-01-02T03:04:05Z\n".encode()),
         ("bin/go", _FAKE_GO.encode()),
         ("bin/gofmt", b"#!/bin/sh\nexit 0\n"),
         ("lib/README", b"lab toolchain\n"),
         ("pkg/tool/linux_amd64/README", b"lab toolchain\n")),
        mode_exec=("bin/go", "bin/gofmt"),
    )
    return [
        _package("vanity.example/m", "v1.0.0", "m", "lab module m"),
        _package("vanity.example/m", "v1.1.0", "m", "lab module m"),
        _package("vanity.example/extra", "v1.0.0", "extra", "lab module extra"),
        # Served as a git repository by go.googlesource.com (direct mode); see gitrepo.py.
        _package("golang.org/x/lab", "v0.1.0", "lab", "lab module x/lab"),
        # Only its .info is asked for (the editor extension's version check).
        _package("golang.org/x/tools/gopls", GOPLS_VERSION, "main", "lab gopls"),
        toolchain,
    ]


class ModuleStore:
    """Lookup by (path, version); what a module proxy serves."""

    def __init__(self, modules: list[Module]) -> None:
        self.modules = modules
        self._by_key = {(m.path, m.version): m for m in modules}

    def get(self, path: str, version: str) -> Module | None:
        return self._by_key.get((path, version))

    def versions(self, path: str) -> list[str]:
        return [m.version for m in self.modules if m.path == path]

    def paths(self) -> set[str]:
        return {m.path for m in self.modules}
