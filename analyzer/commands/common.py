"""Options shared by the commands that report contacts (analyze, run, capture, report)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from ..watchlist import DEFAULT_HOSTS, WatchList, read_watch_file


def watch_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--watch, --watch-file, --all, --expect, --no-redact."""
    fn = click.option("--no-redact", is_flag=True,
                      help="Show credentials (proxy userinfo) instead of redacting them.")(fn)
    fn = click.option("--expect", "expect_path", type=click.Path(exists=True, dir_okay=False,
                                                                  path_type=Path),
                      help="Expectations TOML (addresses and issuers normal for each host), "
                           "merged over the shipped defaults.")(fn)
    fn = click.option("--all", "all_hosts", is_flag=True,
                      help="Report contacts with every host, not only watched ones.")(fn)
    fn = click.option("--watch-file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      help="Read watched names from FILE (one per line, # comments).")(fn)
    fn = click.option("--watch", "watch", multiple=True, metavar="NAME",
                      help="Also watch NAME (repeatable); '*.example.com' matches subdomains.")(fn)
    return fn


def build_watch(watch: Sequence[str], watch_file: Path | None, all_hosts: bool) -> WatchList:
    names = list(DEFAULT_HOSTS) + list(watch)
    if watch_file is not None:
        names += read_watch_file(watch_file)
    return WatchList.build(names, match_all=all_hosts)
