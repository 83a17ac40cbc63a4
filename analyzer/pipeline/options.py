"""What an offline analysis is asked to do."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.watchlist import WatchList


@dataclass(frozen=True)
class AnalyzeOptions:
    """How to analyse: watch list, expectations, engine, workers, redaction."""

    watch: WatchList = field(default_factory=WatchList.build)
    expect_path: Path | None = None      # expectations TOML merged over the shipped defaults
    config: Any = None                   # an analyzer.causes GoConfig, for causes on contacts
    redact: bool = True                  # hide credentials (proxy userinfo, Authorization, Cookie)
    engine: str = "builtin"              # "builtin" (dpkt) or "tshark"
    keylog: Path | None = None
    quiet: bool = True                   # no progress on stderr
    workers: int = 1                     # worker processes for several captures (1: serial)
    # False: the report needs only its contacts and the captures' stats, so with several workers
    # each builds its capture's contacts when no other capture can change them (pipeline.perfile)
    # and Report.evidence then holds only the stats and flow processes
    keep_evidence: bool = True
    # with contacts built per capture (above): each contact's output line, made in the worker
    # too (a module-level function, so it reaches the worker); the report keeps them in order
    render: Callable[[Any], str] | None = None
