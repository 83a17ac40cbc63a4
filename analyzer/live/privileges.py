"""Can this process capture packets or trace the kernel? Say what would work when it cannot."""

from __future__ import annotations

import os
import shutil
import subprocess

CAP_NET_ADMIN, CAP_NET_RAW = 12, 13


def effective_capabilities() -> int:
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError):
        pass
    return 0


def _file_has_capture_caps(path: str) -> bool:
    getcap = shutil.which("getcap")
    if getcap is None:
        return False
    out = subprocess.run(  # noqa: S603 - argument list
        [getcap, path], capture_output=True, text=True, check=False).stdout
    return "cap_net_raw" in out and "cap_net_admin" in out


def capture_problem(tool: str) -> str | None:
    """None when ``tool`` (a path) can capture; otherwise one line saying what would work."""
    if os.geteuid() == 0:
        return None
    caps = effective_capabilities()
    if caps & (1 << CAP_NET_RAW) and caps & (1 << CAP_NET_ADMIN):
        return None
    if _file_has_capture_caps(tool):
        return None
    return (f"capturing needs root or the capture capabilities: run through sudo, or grant them "
            f"once with `sudo setcap cap_net_raw,cap_net_admin=eip {tool}`")


def invoking_user() -> tuple[int, int] | None:
    """(uid, gid) of the user who ran ``sudo proxytrace``, when we are root through sudo."""
    if os.geteuid() != 0:
        return None
    uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
    if not uid or not gid or not uid.isdigit() or not gid.isdigit() or uid == "0":
        return None
    return int(uid), int(gid)
