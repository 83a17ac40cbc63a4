"""Give bpftrace a private, short list of the kernel's tracepoints: a third less start-up work.

bpftrace 0.17 resolves each tracepoint of a script by reading and regex-matching the kernel's
whole ``available_events`` (about 2000 lines, 60 KB) again and again: over 500 times for our
script, measured with strace, and a third of its CPU time before tracing starts (perf: the
kernel generating the file, std::regex matching it). Run in a private mount namespace
(``unshare --mount``) where that file is a bind mount of the lines the script uses, bpftrace
builds the same programs (``--emit-elf`` gives byte-identical output) with about 0.25 s less
CPU. Nothing outside that namespace sees the change; when the view cannot be set up the
caller runs bpftrace as usual.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

EVENT_LISTS = (Path("/sys/kernel/tracing/available_events"),
               Path("/sys/kernel/debug/tracing/available_events"))
MOUNT_FAILED = 97  # the wrapper's exit status when the bind mount is refused

# ``tracepoint:CATEGORY:NAME`` (or bpftrace's short ``t:``), wildcards allowed
_TRACEPOINT = re.compile(r"(?<![\w:])(?:tracepoint|t):([\w*?\[\]]+):([\w*?\[\]]+)")
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')  # printf formats may hold anything

# Binds $1 over each target up to "--", then runs the command: fixed text, arguments apart.
_WRAPPER = ('ev=$1; shift; while [ "$1" != "--" ]; do mount --bind "$ev" "$1" || exit 97; '
            'shift; done; shift; exec "$@"')


def tracepoints_in(script: str) -> list[str]:
    """The ``category:name`` patterns of every tracepoint a bpftrace script attaches to."""
    code = _STRING.sub('""', script)
    return sorted({f"{m[1]}:{m[2]}" for m in _TRACEPOINT.finditer(code)})


def narrowed(available: str, patterns: Sequence[str]) -> str:
    """The lines of ``available_events`` that some pattern matches, in their order."""
    keep = [line for line in available.splitlines()
            if any(fnmatch.fnmatchcase(line, p) for p in patterns)]
    return "".join(f"{line}\n" for line in keep)


def prepare(script: str) -> Path | None:
    """A private file holding the tracepoints ``script`` uses, or None when no view can be
    made here (not root, no unshare/mount, no event list, a tracepoint the kernel lacks)."""
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("mount")):
        return None
    lists = [p for p in EVENT_LISTS if p.exists()]
    patterns = tracepoints_in(script)
    if not lists or not patterns:
        return None
    try:
        available = lists[0].read_text(errors="replace")
    except OSError:
        return None
    text = narrowed(available, patterns)
    found = text.splitlines()
    if any(not any(fnmatch.fnmatchcase(line, p) for line in found) for p in patterns):
        return None  # let bpftrace itself say which tracepoint is missing
    fd, name = tempfile.mkstemp(prefix="proxytrace-events-")  # mode 0600
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    return Path(name)


def wrap(argv: Sequence[str], events: Path) -> list[str]:
    """``argv`` run in a private mount namespace that sees ``events`` as the event list."""
    targets = [str(p) for p in EVENT_LISTS if p.exists()]
    unshare = shutil.which("unshare") or "unshare"
    return [unshare, "--mount", "--propagation", "private", "sh", "-c", _WRAPPER, "sh",
            str(events), *targets, "--", *argv]
