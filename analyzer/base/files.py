"""Files the tool writes hold captured secrets: they are created readable by their owner only."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any


def open_private(path: str | os.PathLike[str], mode: str = "w", **kwargs: Any) -> IO[Any]:
    """Open ``path`` for writing with permissions 0600 (also tightening an existing file)."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if "a" in mode else os.O_TRUNC)
    fd = os.open(os.fspath(path), flags, 0o600)
    os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode, **kwargs)


def write_private(path: str | os.PathLike[str], data: str | bytes) -> Path:
    mode = "wb" if isinstance(data, bytes) else "w"
    kwargs = {} if isinstance(data, bytes) else {"encoding": "utf-8"}
    with open_private(path, mode, **kwargs) as fh:
        fh.write(data)
    return Path(path)


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, 0o700)
    return p
