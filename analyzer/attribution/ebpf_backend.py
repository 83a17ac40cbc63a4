"""Which program runs the ebpf tier's kernel program: the loader built at install, or bpftrace.

bpftrace compiles its script with LLVM at every start (most of a second, more on a busy
machine) and bpftrace 0.17's ``--aot`` refuses the script. ``make install`` therefore compiles
the same program ahead of time as a CO-RE object (``bpf/tracer.bpf.c``) with a small libbpf
loader (``bpf/loader.c``) that prints the script's lines exactly, so ``ebpf.py`` reads one format.
The tier uses that loader when it is built and loads; otherwise (not built, refused by the
kernel) it runs bpftrace. ``PROXYTRACE_EBPF_LOADER=core`` or ``=bpftrace`` forces one (tests run
both); anything else, or nothing, lets the tier choose.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ENV = "PROXYTRACE_EBPF_LOADER"
CORE = "core"
BPFTRACE = "bpftrace"
LOADER = Path(__file__).resolve().parent / "bpf" / "build" / "proxytrace-ebpf"


def forced() -> str | None:
    """The backend the environment forces, or None to choose (core when built)."""
    value = os.environ.get(ENV, "").strip().lower()
    return value if value in (CORE, BPFTRACE) else None


def loader_built() -> bool:
    return LOADER.is_file() and os.access(LOADER, os.X_OK)


def bpftrace_installed() -> bool:
    return shutil.which("bpftrace") is not None


def first_choice() -> str | None:
    """The backend to try first, or None when neither can run here."""
    want = forced()
    if want == CORE:
        return CORE if loader_built() else None
    if want == BPFTRACE:
        return BPFTRACE if bpftrace_installed() else None
    if loader_built():
        return CORE
    return BPFTRACE if bpftrace_installed() else None


def can_fall_back() -> bool:
    """True when a failed loader may give way to bpftrace (nothing forces the loader)."""
    return forced() is None and bpftrace_installed()


def missing_reason() -> str:
    """Why ``first_choice`` found nothing (it says "not installed": a missing tool)."""
    want = forced()
    if want == CORE:
        return f"the CO-RE loader is not installed ({ENV}=core; `make install` builds {LOADER})"
    if want == BPFTRACE:
        return f"bpftrace is not installed ({ENV}=bpftrace)"
    return "bpftrace is not installed (and the CO-RE loader was not built by `make install`)"
