"""The ``proxytrace`` command line: a thin layer over the library.

Each subcommand lives in ``analyzer/commands/<name>.py`` and exposes a click command named
``command``. Library errors become one line on stderr and an exit status from ``exitcodes``.
"""

from __future__ import annotations

import gc
import importlib
import sys

import click

from . import __version__
from .base import exitcodes
from .base.errors import CaptureError, ProxytraceError, UsageError

COMMAND_MODULES = ("analyze", "run", "capture", "filters", "probe", "explain", "report")


class LazyGroup(click.Group):
    """Imports a subcommand's module only when that subcommand runs (or help lists it), so
    ``proxytrace analyze`` does not pay for probe, explain or live-capture imports."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*COMMAND_MODULES, *self.commands])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if cmd_name not in COMMAND_MODULES:
            return None
        module = importlib.import_module(f"analyzer.commands.{cmd_name}")
        command: click.Command = module.command
        return command


@click.group(cls=LazyGroup,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="proxytrace")
def cli() -> None:
    """Find which process contacts the Go module proxy, checksum database and other watched hosts,
    through which layer (DNS, TLS, HTTP), doing which Go operation, and which setting caused it.

    \b
    Exit statuses: 0 ok; 1 a gate failed (--deny host contacted, hijack found); 2 usage error;
    3 unreadable input; 4 a required tool is missing; 5 not enough privileges;
    `run` otherwise exits with the command's own status (127 if it was not found).
    """


# The analyzer allocates hundreds of thousands of small objects that live until the report is
# written (events, contacts) and almost never form reference cycles; at the default gen-0
# threshold of 700 the cyclic collector re-walks them hundreds of times per large capture (about
# 0.15 s in 2.3 s on 2 million packets). Refcounting still frees everything acyclic at once.
GC_THRESHOLD = (50_000, 20, 20)


def main() -> None:
    from .commands.common import TEARDOWN

    TEARDOWN.skippable = False  # set again by the command that allows it (commands.common)
    gc.freeze()  # the imported modules: never garbage, never walked again
    gc.set_threshold(*GC_THRESHOLD)
    try:
        # Commands set their status with ctx.exit(N); in non-standalone mode click returns it.
        status = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("proxytrace: interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except UsageError as exc:
        click.echo(f"proxytrace: {exc}", err=True)
        sys.exit(exitcodes.USAGE)
    except CaptureError as exc:
        click.echo(f"proxytrace: {exc}", err=True)
        sys.exit(exitcodes.BAD_INPUT)
    except ProxytraceError as exc:
        code = getattr(exc, "exit_code", exitcodes.BAD_INPUT)
        click.echo(f"proxytrace: {exc}", err=True)
        sys.exit(code)
    except BrokenPipeError:
        sys.stderr.close()
        sys.exit(exitcodes.OK)
    except OSError as exc:
        # an output file that cannot be written, a directory that cannot be created...
        where = f"{exc.filename}: " if exc.filename else ""
        click.echo(f"proxytrace: {where}{exc.strerror or exc}", err=True)
        sys.exit(exitcodes.USAGE)
    except KeyboardInterrupt:
        click.echo("proxytrace: interrupted", err=True)
        sys.exit(exitcodes.INTERRUPTED)
    else:
        code = status if isinstance(status, int) else exitcodes.OK
        if TEARDOWN.skippable:
            _exit_at_once(code)
        sys.exit(code)


def _exit_at_once(code: int) -> None:
    import os

    try:
        sys.stdout.flush()
    except BrokenPipeError:
        code = exitcodes.OK  # as a closed pipe is answered above
    try:
        sys.stderr.flush()
    except OSError:
        pass
    os._exit(code)


if __name__ == "__main__":
    main()
