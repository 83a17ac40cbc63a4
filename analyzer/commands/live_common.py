"""Options and the closing summary shared by ``run`` and ``capture``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from ..live.session import LiveResult


def live_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    fn = click.option("--write", "-w", type=click.Path(dir_okay=False, path_type=Path),
                      default=None, metavar="FILE.pcapng",
                      help="Write the annotated capture here (mode 0600; default: "
                           "proxytrace-DATE-TIME.pcapng in the current directory).")(fn)
    fn = click.option("--filter", "bpf", default=None, metavar="BPF",
                      help="Capture filter (default: generated from the watch list).")(fn)
    fn = click.option("--interface", "-i", default="any", show_default=True,
                      help="Interface to capture on.")(fn)
    fn = click.option("--backend", type=click.Choice(["tcpdump", "dumpcap"]), default="tcpdump",
                      show_default=True, help="Capture program.")(fn)
    return fn


def print_summary(result: LiveResult) -> None:
    """One stderr paragraph: the file, capture counts, attribution per tier."""
    from ..live.session import unattributed_by_tier

    for note in result.notes:
        sys.stderr.write(f"proxytrace: {note}\n")
    c = result.counts
    drops = "unknown" if c.dropped is None else str(c.dropped)
    sys.stderr.write(f"proxytrace: wrote {result.pcapng} ({result.annotated.packets} packets, "
                     f"{result.annotated.attributed} with their process); kernel drops: {drops}\n")
    tiers = unattributed_by_tier(result.report.contacts, result.tier)
    if tiers:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(tiers.items()))
        sys.stderr.write(f"proxytrace: contacts by attribution ({result.tier} tier): {parts}\n")
    else:
        sys.stderr.write(f"proxytrace: no watched contacts ({result.tier} tier)\n")
    click.get_current_context().meta["live_result"] = result
