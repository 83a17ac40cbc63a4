"""``proxytrace capture``: system-wide capture with attribution, then the report."""

from __future__ import annotations

from pathlib import Path

import click

from ..report.contacts import CONTACT_FORMATS
from ..report.output import output_options
from .common import watch_options
from .live_common import live_options


@click.command("capture")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), default=None,
              metavar="SECONDS", help="Stop after SECONDS (default: at Ctrl-C or SIGTERM).")
@click.option("--attribution", "tier", type=click.Choice(["auto", "ebpf", "procfs"]),
              default="auto", show_default=True, help="How to find each contact's process.")
@live_options
@watch_options
@output_options(CONTACT_FORMATS)
def command(duration: float | None, tier: str, backend: str, interface: str, bpf: str | None,
            write: Path | None, watch: tuple[str, ...], watch_file: Path | None, all_hosts: bool,
            expect_path: Path | None, no_redact: bool, fmt: str, output: str | None) -> int:
    """Capture system-wide (until Ctrl-C or --duration) and report every watched contact with
    the process that made it; the pcapng keeps the process as packet comments.

    \b
    Exit status: 0; 4 a capture or tracing tool is missing; 5 not enough privileges.
    """
    from ..live import early

    early.launch(tier)  # bpftrace compiles while the rest is imported and set up
    try:
        return _capture(duration, tier, backend, interface, bpf, write, watch, watch_file,
                        all_hosts, expect_path, no_redact, fmt, output)
    finally:
        early.discard()


def _capture(duration: float | None, tier: str, backend: str, interface: str, bpf: str | None,
             write: Path | None, watch: tuple[str, ...], watch_file: Path | None,
             all_hosts: bool, expect_path: Path | None, no_redact: bool, fmt: str,
             output: str | None) -> int:
    from ..live.session import LiveOptions, capture_for
    from ..live.timing import stamp
    from ..pipeline import AnalyzeOptions
    from ..report.contacts import render_report
    from .common import build_watch
    from .live_common import print_summary

    analyze = AnalyzeOptions(watch=build_watch(watch, watch_file, all_hosts),
                             expect_path=expect_path, redact=not no_redact)
    if all_hosts and bpf is None:
        bpf = ""  # every host is of interest: the watch list's ports would hide most of them
    opts = LiveOptions(analyze=analyze, tier=tier, backend=backend, interface=interface, bpf=bpf,
                       write=write, system=True)
    def started(tier: str) -> None:
        until = f"for {duration:g}s" if duration is not None else "until Ctrl-C"
        click.echo(f"proxytrace: capturing on {interface} {until} ({tier} attribution)", err=True)
        stamp("ready line printed")

    result = capture_for(duration, opts, on_started=started)
    render_report(result.report, fmt, output)
    print_summary(result)
    return 0
