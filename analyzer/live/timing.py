"""Where a live session's seconds go: ``PROXYTRACE_TIMING=1`` prints a stamp at every step.

Each stamp is one stderr line, ``proxytrace: timing +1.234s step``, counted from the moment the
kernel started this process (so the interpreter's own start-up and the imports show in the
first stamp). Off by default: the lines are for measuring, not for users.
"""

from __future__ import annotations

import os
import sys
import time

ENV = "PROXYTRACE_TIMING"


def _process_start() -> float:
    """CLOCK_MONOTONIC-compatible seconds at which the kernel started this process."""
    try:
        with open("/proc/self/stat", encoding="ascii") as fh:
            # the command name (field 2) may hold spaces: fields after the last ')'
            fields = fh.read().rsplit(")", 1)[1].split()
        start_ticks = int(fields[19])  # field 22 of the whole line: starttime
        with open("/proc/uptime", encoding="ascii") as fh:
            uptime = float(fh.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        return time.monotonic() - max(0.0, age)
    except (OSError, ValueError, IndexError):
        return time.monotonic()


_ON = os.environ.get(ENV, "") not in ("", "0")
_T0 = _process_start() if _ON else 0.0


def enabled() -> bool:
    return _ON


def stamp(step: str) -> None:
    if _ON:
        sys.stderr.write(f"proxytrace: timing +{time.monotonic() - _T0:.3f}s {step}\n")
        sys.stderr.flush()
