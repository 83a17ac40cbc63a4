"""``proxytrace report CAPTURE... [--output report.html]``: the HTML report in one step.

The same analysis as ``analyze --format html``, with the output file defaulting to
``report.html`` because an HTML page on a terminal helps nobody (``--output -`` still prints it).
"""

from __future__ import annotations

from pathlib import Path

import click

from ..base import exitcodes
from ..base.errors import UsageError
from ..pipeline import analyze_files
from ..report.contacts import render_report
from .common import analyze_options, source_options, watch_options


@click.command("report")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@watch_options
@source_options
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False, allow_dash=True),
              default="report.html", show_default=True,
              help="Write the page to FILE (mode 0600); '-' writes it to stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Do not print where the report was written.")
def command(captures: tuple[str, ...], watch: tuple[str, ...], watch_file: Path | None,
            all_hosts: bool, expect_path: Path | None, no_redact: bool, engine: str,
            keylog: Path | None, config_from: Path | None, output: str, quiet: bool) -> int:
    """Write a self-contained HTML report of CAPTURE files ("-" reads stdin): the answer first,
    a timeline per process, and tables per host, process, operation, finding and cause.
    The page opens offline (nothing is fetched when it is viewed).

    \b
    Exit status: 0 when every capture was read whole; 3 when a capture could not be read or
    ended in damage (the report still holds everything before it, with a warning).
    """
    opts = analyze_options(watch, watch_file, all_hosts, expect_path, no_redact, engine, keylog,
                           config_from, quiet=True)
    report = analyze_files(list(captures), opts)
    to_stdout = output == "-"
    try:
        render_report(report, "html", None if to_stdout else output)
    except OSError as exc:
        raise UsageError(f"{output}: cannot write: {exc.strerror or exc}") from None
    for warning in report.warnings:
        click.echo(f"proxytrace: warning: {warning}", err=True)
    if not quiet and not to_stdout:
        n = len(report.contacts)
        click.echo(f"proxytrace: wrote {output} ({n} contact{'s' if n != 1 else ''})", err=True)
    damaged = any(st.damaged for st in report.stats)
    return exitcodes.BAD_INPUT if damaged else exitcodes.OK
