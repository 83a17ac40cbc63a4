"""The exceptions the library raises on bad input; the CLI turns them into one line and an exit code."""


class ProxytraceError(Exception):
    """Base for errors a user should see as one clear line."""


class ParseError(ValueError):
    """Malformed protocol bytes. Parsers raise only this; the pipeline counts it per protocol."""


class CaptureError(ProxytraceError):
    """A capture file cannot be read at all (the message names the file and what is wrong)."""


class UsageError(ProxytraceError):
    """Invalid user input (a hostname, a port, a filter argument...)."""
