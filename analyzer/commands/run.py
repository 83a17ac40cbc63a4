"""``proxytrace run [options] -- CMD ARGS...``: run a command under capture and attribution."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from ..base import exitcodes
from ..report.contacts import CONTACT_FORMATS
from ..report.output import output_options
from .common import watch_options
from .live_common import live_options


@click.command("run", context_settings={"ignore_unknown_options": True})
@click.option("--attribution", "tier", type=click.Choice(["auto", "ebpf", "strace", "procfs"]),
              default="auto", show_default=True,
              help="How to find each contact's process (auto: the strongest available).")
@click.option("--system", is_flag=True,
              help="Also report contacts made by other processes during the run.")
@click.option("--deny", multiple=True, metavar="NAME",
              help="Exit 1 when NAME (or '*.domain') is contacted (repeatable): a CI gate.")
@click.option("--go-trace", is_flag=True,
              help="Add -x to GOFLAGS and fold each '# get URL' line into the report.")
@live_options
@watch_options
@output_options(CONTACT_FORMATS)
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED, metavar="-- CMD ARGS...")
def command(tier: str, system: bool, deny: tuple[str, ...], go_trace: bool, backend: str,
            interface: str, bpf: str | None, write: Path | None, watch: tuple[str, ...],
            watch_file: Path | None, all_hosts: bool, expect_path: Path | None, no_redact: bool,
            fmt: str, output: str | None, command: tuple[str, ...]) -> int:
    """Run CMD, capture while it runs, and report every watched contact its process tree made.

    \b
    Exit status: the command's own (127 when it is not found), or 1 when a --deny host was
    contacted; 4 a capture or tracing tool is missing; 5 not enough privileges.
    """
    from ..live import early
    from ..live.timing import stamp

    stamp("command line parsed")
    if shutil.which(command[0]) is not None:  # else the session says so, with no tracer
        early.launch(tier)  # bpftrace compiles while the rest is imported and set up
    try:
        return _run(tier, system, deny, go_trace, backend, interface, bpf, write, watch,
                    watch_file, all_hosts, expect_path, no_redact, fmt, output, command)
    finally:
        early.discard()


def _run(tier: str, system: bool, deny: tuple[str, ...], go_trace: bool, backend: str,
         interface: str, bpf: str | None, write: Path | None, watch: tuple[str, ...],
         watch_file: Path | None, all_hosts: bool, expect_path: Path | None, no_redact: bool,
         fmt: str, output: str | None, command: tuple[str, ...]) -> int:
    from ..base.watchlist import normalize_hostname
    from ..live.session import LiveOptions, run_command
    from ..live.timing import stamp
    from ..pipeline import AnalyzeOptions
    from ..report.contacts import render_report
    from .common import build_watch
    from .gate import check_denied
    from .live_common import print_summary


    deny_names = [normalize_hostname(d) for d in deny]
    analyze = AnalyzeOptions(watch=build_watch([*watch, *deny_names], watch_file, all_hosts),
                             expect_path=expect_path, redact=not no_redact)
    if all_hosts and bpf is None:
        bpf = ""  # every host is of interest: the watch list's ports would hide most of them
    opts = LiveOptions(analyze=analyze, tier=tier, backend=backend, interface=interface, bpf=bpf,
                       write=write, system=system, go_trace=go_trace)
    result = run_command(list(command), opts)
    render_report(result.report, fmt, output)
    print_summary(result)
    stamp("report written")
    violations = check_denied(result.report.contacts, deny_names)
    if violations:
        github = os.environ.get("GITHUB_ACTIONS") == "true"
        for v in violations:
            sys.stderr.write(f"proxytrace: {v.reason()}\n")
            if github:
                sys.stdout.write(v.github_annotation() + "\n")
        return exitcodes.GATE_FAILED
    return result.exit_status
