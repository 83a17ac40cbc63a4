"""``proxytrace report CAPTURE... [--output report.html]``: the HTML report in one step.

The same analysis as ``analyze --format html``, with the output file defaulting to
``report.html`` because an HTML page on a terminal helps nobody (``--output -`` still prints it).
"""

from __future__ import annotations

from pathlib import Path

import click

from .. import exitcodes
from ..errors import UsageError
from ..pipeline import AnalyzeOptions, analyze_files
from ..report.contacts import render_report
from .common import build_watch, watch_options


@click.command("report")
@click.argument("captures", nargs=-1, required=True, metavar="CAPTURE...")
@watch_options
@click.option("--engine", type=click.Choice(["builtin", "tshark"]), default="builtin",
              show_default=True, help="builtin (dpkt, fast) or tshark (Wireshark's dissectors).")
@click.option("--keylog", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="NSS key log to decrypt TLS (implies --engine tshark).")
@click.option("--config-from", type=click.Path(exists=True, path_type=Path),
              help="Directory or env file describing the Go configuration, to give each contact "
                   "its cause.")
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
    config = None
    if config_from is not None:
        from ..config import load_config_from

        config = load_config_from(config_from)
    opts = AnalyzeOptions(watch=build_watch(watch, watch_file, all_hosts), expect_path=expect_path,
                          config=config, redact=not no_redact,
                          engine="tshark" if keylog else engine, keylog=keylog, quiet=True)
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
