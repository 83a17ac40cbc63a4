"""Start the ebpf tracer before the rest of a live session is even imported.

With bpftrace, compiling the ebpf tier's script is the longest step of a live session's start
(about 0.7 s on an idle machine, more under load); importing the analysis takes another tenth
of a second. The loader built at install starts in tens of milliseconds, but starting it here
costs nothing either. The ``run`` and ``capture`` commands call ``launch`` first thing, so both
happen at once; the session then ``take``s the running tracer instead of starting its own, and
``discard`` stops one that no session took (an error before the session started).
"""

from __future__ import annotations

from ..attribution import ebpf
from .timing import stamp

_launched: ebpf.EbpfTracer | None = None


def launch(requested_tier: str) -> None:
    """Start the tracer now when the session will use the ebpf tier."""
    global _launched
    if requested_tier not in ("auto", "ebpf") or _launched is not None:
        return
    if ebpf.unavailable_reason() is not None:
        return  # the session says why (or falls back) when it chooses its tier
    tracer = ebpf.EbpfTracer()
    try:
        tracer.launch()
    except OSError:
        return  # the session reports it when it starts its own
    _launched = tracer
    stamp(f"ebpf tracer launched ({tracer.program})")


def take() -> ebpf.EbpfTracer | None:
    global _launched
    tracer, _launched = _launched, None
    return tracer


def discard() -> None:
    tracer = take()
    if tracer is not None:
        tracer.abort()
