"""``proxytrace analyze CAPTURE...``: offline analysis of pcap/pcapng files."""

from __future__ import annotations

from pathlib import Path

import click

from .. import exitcodes
from ..parallel import default_workers
from ..pipeline import AnalyzeOptions, analyze_files
from ..progress import Progress
from ..report.contacts import CONTACT_FORMATS, render_report
from ..report.output import output_options
from .common import build_watch, watch_options


@click.command("analyze")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@watch_options
@click.option("--engine", type=click.Choice(["builtin", "tshark"]), default="builtin",
              show_default=True, help="builtin (dpkt, fast) or tshark (Wireshark's dissectors).")
@click.option("--keylog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="NSS key log to decrypt TLS (implies --engine tshark).")
@click.option("--config-from", type=click.Path(exists=True, path_type=Path),
              help="Directory or env file describing the Go configuration, to give each contact "
                   "its cause.")
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
    config = None
    if config_from is not None:
        from ..config import load_config_from

        config = load_config_from(config_from)
    opts = AnalyzeOptions(
        watch=build_watch(watch, watch_file, all_hosts), expect_path=expect_path, config=config,
        redact=not no_redact, engine="tshark" if keylog else engine, keylog=keylog, quiet=quiet,
        workers=workers if workers is not None else default_workers())
    progress = Progress.for_terminal(quiet)
    report = analyze_files(captures, opts, progress=progress)  # type: ignore[arg-type]
    render_report(report, fmt, output)
    if fmt != "table" or output:  # the table itself lists the warnings
        for warning in report.warnings:
            click.echo(f"proxytrace: warning: {warning}", err=True)
    damaged = any(st.damaged for st in report.stats)
    return exitcodes.BAD_INPUT if damaged else exitcodes.OK
