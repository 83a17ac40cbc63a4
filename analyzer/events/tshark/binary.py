"""Check display filters with the installed tshark before anyone sees them.

This module is an edge (it runs a program); the filters themselves are built by pure functions
in ``display``. Each filter is compiled by ``tshark -Y FILTER -r EMPTY``, with an empty capture
file written here, so the check reads nothing and needs no privileges.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from ...base.errors import ProxytraceError
from ...base.exitcodes import MISSING_TOOL


class TsharkMissing(ProxytraceError):
    exit_code = MISSING_TOOL


class DisplayFilterError(ProxytraceError):
    """tshark rejected a filter we generated: a bug in the generator, never user output."""


# A classic pcap file header (little-endian, version 2.4, snaplen 65535, Ethernet) and no packets.
EMPTY_PCAP = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)


def tshark_path() -> str:
    path = shutil.which("tshark")
    if path is None:
        raise TsharkMissing("tshark is not installed (Debian: apt-get install tshark)")
    return path


def tshark_env(config_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """A quiet environment; ``config_dir`` points tshark at a throw-away configuration."""
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    if config_dir is not None:
        env["WIRESHARK_CONFIG_DIR"] = os.fspath(config_dir)
    return env


def _first_error_line(stderr: str) -> str:
    for line in stderr.splitlines():
        if line.strip() and "Running as user" not in line:
            return line.strip()
    return "unknown error"


def validate_display_filters(filters: Mapping[str, str],
                             profile: tuple[Path, str] | None = None) -> None:
    """Compile every filter with tshark; raise DisplayFilterError naming the first bad one.

    ``profile`` is (configuration directory, profile name) to check filters that use macros.
    """
    tshark = tshark_path()
    with tempfile.TemporaryDirectory(prefix="proxytrace-dfcheck-") as tmp:
        empty = Path(tmp) / "empty.pcap"
        empty.write_bytes(EMPTY_PCAP)
        env = tshark_env(profile[0] if profile else Path(tmp) / "config")
        base: Sequence[str] = [tshark, "-n", "-r", str(empty)]
        if profile:
            base = [*base, "-C", profile[1]]
        # One run for all (the disjunction compiles only if every part does); one run per
        # filter only to name the culprit.
        combined = " || ".join(f"({e})" for e in filters.values())
        if not filters or not _run(base, combined, env):
            return
        procs = {name: _start(base, expression, env) for name, expression in filters.items()}
        failures = []
        for name, proc in procs.items():
            _, stderr = proc.communicate(timeout=60)
            if proc.returncode != 0:
                failures.append(f"{name}: {_first_error_line(stderr)}")
        raise DisplayFilterError("tshark rejected a generated display filter: "
                                 + (failures[0] if failures else "the filters combined"))


def _start(base: Sequence[str], expression: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(  # noqa: S603 - argument list; the filter is one argument
        [*base, "-Y", expression], env=env, stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _run(base: Sequence[str], expression: str, env: dict[str, str]) -> str | None:
    """tshark's first error line for ``expression``, or None when it compiles."""
    proc = _start(base, expression, env)
    _, stderr = proc.communicate(timeout=60)
    return None if proc.returncode == 0 else _first_error_line(stderr)
