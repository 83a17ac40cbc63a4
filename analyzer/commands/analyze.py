"""``proxytrace analyze CAPTURE...``: offline analysis of pcap/pcapng files."""

from __future__ import annotations

import gc
from pathlib import Path

import click

from ..base import exitcodes
from ..pipeline import analyze_files
from ..pipeline.parallel import default_workers
from ..report.contacts import CONTACT_FORMATS, render_report
from ..report.output import contact_line, emit_lines, output_options
from .common import analyze_options, skip_teardown, source_options, watch_options
from .progress import Progress


@click.command("analyze")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@watch_options
@source_options
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--workers", "-j", type=click.IntRange(min=1), default=None,
              help="Worker processes when several captures (or a directory) are given "
                   "[default: the number of CPUs].")
@output_options(CONTACT_FORMATS)
def command(captures: tuple[str, ...], watch: tuple[str, ...], watch_file: Path | None,
            all_hosts: bool, expect_path: Path | None, no_redact: bool, engine: str,
            keylog: Path | None, config_from: Path | None, quiet: bool, workers: int | None,
            fmt: str, output: str | None) -> int:
    """Analyse pcap/pcapng CAPTURE files or directories of them ("-" reads stdin) and report
    every contact with a watched host: layer, process, Go operation, findings. Several captures
    are read in parallel worker processes (--workers) into one report.

    \b
    Exit status: 0 when every capture was read whole; 3 when a capture could not be read or
    ended in damage (the report still holds everything before it, with a warning).
    """
    # An offline run ends when its captures do, and what it builds (events, contacts) is acyclic
    # and freed by reference counting: the cyclic collector would only re-walk the growing heap
    # (7 of 18 s of CPU on 20 million packets; 64 cyclic objects left to collect on 1 million).
    gc.disable()
    opts = analyze_options(watch, watch_file, all_hosts, expect_path, no_redact, engine, keylog,
                           config_from, quiet=quiet,
                           workers=workers if workers is not None else default_workers(),
                           keep_evidence=False,  # the report needs contacts and stats only
                           render=contact_line if fmt == "jsonl" else None)
    progress = Progress.for_terminal(quiet)
    report = analyze_files(captures, opts, progress=progress)  # type: ignore[arg-type]
    if report.rendered is not None and fmt == "jsonl":
        emit_lines(report.rendered, output)  # lines the workers rendered, in report order
    else:
        render_report(report, fmt, output)
    if fmt != "table" or output:  # the table itself lists the warnings
        for warning in report.warnings:
            click.echo(f"proxytrace: warning: {warning}", err=True)
    damaged = any(st.damaged for st in report.stats)
    skip_teardown()  # everything is written: no need to free the report object by object
    return exitcodes.BAD_INPUT if damaged else exitcodes.OK
