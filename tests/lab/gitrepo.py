"""go.googlesource.com in the lab: a real git repository served by ``git http-backend`` (smart HTTP).

In direct mode the go command resolves golang.org/x/<name> through golang.org's go-import tag
(``git https://go.googlesource.com/<name>``) and runs git, whose ``git-remote-https`` helper makes
the HTTPS contact. The repository holds exactly the files of the lab module, so the zip the go
command builds from it hashes to the record in the lab's checksum database.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from .modules import Module

GIT = shutil.which("git") or "/usr/bin/git"
_GIT_ENV = {
    "GIT_AUTHOR_NAME": "lab", "GIT_AUTHOR_EMAIL": "lab@vanity.example",
    "GIT_COMMITTER_NAME": "lab", "GIT_COMMITTER_EMAIL": "lab@vanity.example",
    "GIT_AUTHOR_DATE": "2026-01-02T03:04:05Z", "GIT_COMMITTER_DATE": "2026-01-02T03:04:05Z",
    "GIT_CONFIG_NOSYSTEM": "1", "HOME": "/nonexistent", "PATH": "/usr/bin:/bin",
}


def _git(args: list[str], cwd: Path) -> None:
    subprocess.run([GIT, *args], cwd=cwd, env=_GIT_ENV, check=True,  # noqa: S603
                   capture_output=True)


def build_repo(module: Module, root: Path) -> Path:
    """A bare repository ``root/<name>`` with one commit tagged ``module.version``."""
    name = module.path.rsplit("/", 1)[1]
    work = root / f"{name}.work"
    work.mkdir(parents=True)
    for rel, data in module.files:
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        (work / rel).write_bytes(data)
    _git(["init", "-q", "-b", "master"], work)
    _git(["add", "-A"], work)
    _git(["commit", "-q", "-m", f"{module.path} {module.version}"], work)
    _git(["tag", module.version], work)
    bare = root / name
    _git(["clone", "-q", "--bare", str(work), str(bare)], root)
    shutil.rmtree(work)
    return bare


def http_backend(root: Path, method: str, path: str, query: str, headers: dict[str, str],
                 body: bytes) -> tuple[int, dict[str, str], bytes]:
    """Run git http-backend as a CGI for one request; returns (status, headers, body)."""
    env = {
        "GIT_PROJECT_ROOT": str(root), "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
        "QUERY_STRING": query, "REQUEST_METHOD": method, "REMOTE_ADDR": "lab",
        "CONTENT_TYPE": headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
        "PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1",
    }
    if headers.get("Git-Protocol"):
        env["GIT_PROTOCOL"] = headers["Git-Protocol"]
    if headers.get("Content-Encoding"):
        env["HTTP_CONTENT_ENCODING"] = headers["Content-Encoding"]
    res = subprocess.run([GIT, "http-backend"], input=body, env=env,  # noqa: S603
                         capture_output=True, timeout=30)
    head, _, out = res.stdout.partition(b"\r\n\r\n")
    if not _:
        head, _, out = res.stdout.partition(b"\n\n")
    status = 200
    out_headers: dict[str, str] = {}
    for line in head.decode("latin-1").splitlines():
        key, _sep, value = line.partition(":")
        if key.lower() == "status":
            status = int(value.strip().split()[0])
        elif key:
            out_headers[key.strip()] = value.strip()
    return status, out_headers, out
