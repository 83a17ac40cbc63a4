"""Many captures at once: one worker process per capture (up to ``workers``), results merged in
the order the captures were given, so the report equals the serial one."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..base.errors import CaptureError
from ..events.read import read_evidence
from ..events.records import Evidence, ProgressFn
from .options import AnalyzeOptions

CAPTURE_SUFFIXES = (".pcap", ".pcapng", ".cap")


def expand_paths(paths: Sequence[str | Path]) -> list[str | Path]:
    """Directories become the captures directly inside them (sorted by name); files stay."""
    out: list[str | Path] = []
    for path in paths:
        if str(path) != "-" and Path(path).is_dir():
            found = sorted(p for p in Path(path).iterdir()
                           if p.is_file() and p.name.lower().endswith(CAPTURE_SUFFIXES))
            if not found:
                raise CaptureError(f"{path}: directory holds no .pcap/.pcapng/.cap files")
            out.extend(found)
        else:
            out.append(path)
    return out


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


# What a worker does with a capture's evidence before handing it back (evidence -> result).
PerFile = Callable[[Evidence, AnalyzeOptions], Any]


def _worker_start() -> None:
    """A forked worker inherits the parent's signal handlers. A handler the caller installed for
    SIGTERM (a test harness, a service) would keep ``Pool.terminate`` from ending the worker and
    hang the run; and Ctrl-C belongs to the parent, which stops the workers itself."""
    import signal  # here: a run with one capture starts no worker (and skips the import)

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _read_one(job: tuple[str | Path, AnalyzeOptions, PerFile | None]) -> Any:
    path, opts, per_file = job
    evidence = read_evidence(path, opts.engine, opts.keylog)
    return evidence if per_file is None else per_file(evidence, opts)


def read_all(paths: Sequence[str | Path], opts: AnalyzeOptions,
             progress: ProgressFn | None = None,
             on_file: Callable[[int, int], None] | None = None,
             per_file: PerFile | None = None) -> list[Any]:
    """Evidence of every capture, in the given order; in parallel when it can help. With
    ``per_file``, what it makes of each capture's evidence instead (in the worker that read it:
    only its result is pickled back); its result has the capture's stats as ``.evidence.stats``."""
    workers = min(opts.workers, len(paths))

    def own(path: str | Path) -> Any:
        evidence = read_evidence(path, opts.engine, opts.keylog, progress)
        return evidence if per_file is None else per_file(evidence, opts)

    if workers <= 1 or any(str(p) == "-" for p in paths):
        results = []
        for i, path in enumerate(paths):
            results.append(own(path))
            if on_file is not None:
                on_file(i + 1, len(paths))
        return results
    import multiprocessing  # here: a single capture never starts a worker

    # fork keeps start-up cheap (the parent's imports are shared); elsewhere the default.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    # When every capture has a CPU, the parent reads the first one itself while the workers read
    # the rest: one worker fewer to start, and one capture's evidence not pickled and unpickled
    # (about 0.3 s of 1.0 s for a 1M-packet capture).
    first = 1 if len(paths) <= workers else 0
    results = []
    with ctx.Pool(workers - first, initializer=_worker_start) as pool:
        pending = pool.imap(_read_one, [(p, opts, per_file) for p in paths[first:]])
        if first:
            results.append(own(paths[0]))
            if on_file is not None:
                on_file(1, len(paths))
        for i, result in enumerate(pending, start=first):
            results.append(result)
            ev = result if per_file is None else result.evidence
            if progress is not None:
                st = ev.stats[-1] if ev.stats else None
                if st is not None:
                    if on_file is not None:
                        on_file(i + 1, len(paths))
                    progress(st.capture, st.bytes, st.packets, -1)
        # Every result is in: let the workers finish on their own rather than be killed by the
        # terminate that leaving the block does.
        pool.close()
        pool.join()
    return results
