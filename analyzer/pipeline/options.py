"""What an offline analysis is asked to do."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..base.watchlist import WatchList


@dataclass(frozen=True)
class AnalyzeOptions:
    watch: WatchList = field(default_factory=WatchList.build)
    expect_path: Path | None = None      # expectations TOML merged over the shipped defaults
    config: Any = None                   # an analyzer.causes GoConfig, for causes on contacts
    redact: bool = True                  # hide credentials (proxy userinfo, Authorization, Cookie)
    engine: str = "builtin"              # "builtin" (dpkt) or "tshark"
    keylog: Path | None = None
    quiet: bool = True                   # no progress on stderr
    workers: int = 1                     # worker processes for several captures (1: serial)
