"""Options shared by the commands that report contacts (analyze, run, capture, report)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..base.watchlist import DEFAULT_HOSTS, WatchList, read_watch_file

if TYPE_CHECKING:  # imported when used: `run` starts its tracer before the analysis is loaded
    from ..pipeline import AnalyzeOptions


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


def source_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--engine, --keylog, --config-from: how captures are read and explained."""
    fn = click.option("--config-from", type=click.Path(exists=True, path_type=Path),
                      help="Directory or env file describing the Go configuration, to give each "
                           "contact its cause.")(fn)
    fn = click.option("--keylog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
                      help="NSS key log to decrypt TLS (implies --engine tshark).")(fn)
    fn = click.option("--engine", type=click.Choice(["builtin", "tshark"]), default="builtin",
                      show_default=True,
                      help="builtin (dpkt, fast) or tshark (Wireshark's dissectors).")(fn)
    return fn


def analyze_options(watch: Sequence[str], watch_file: Path | None, all_hosts: bool,
                    expect_path: Path | None, no_redact: bool, engine: str, keylog: Path | None,
                    config_from: Path | None, **extra: Any) -> AnalyzeOptions:
    """AnalyzeOptions from the shared options (a key log implies the tshark engine)."""
    from ..pipeline import AnalyzeOptions

    config = None
    if config_from is not None:
        from ..causes import load_config_from

        config = load_config_from(config_from)
    return AnalyzeOptions(watch=build_watch(watch, watch_file, all_hosts), expect_path=expect_path,
                          config=config, redact=not no_redact,
                          engine="tshark" if keylog else engine, keylog=keylog, **extra)


class _Teardown:
    """Whether the command that ran may end the process without the interpreter's teardown
    (``analyzer.cli.main`` asks once the command has returned)."""

    skippable = False


TEARDOWN = _Teardown()


def skip_teardown() -> None:
    """Called by a command whose output is all written and closed (``analyze``): at the end,
    the process exits at once instead of freeing every object one by one and tearing the
    modules down (0.05-0.09 s after a 2 million packet capture; the kernel frees it all)."""
    TEARDOWN.skippable = True
