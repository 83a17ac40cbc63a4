"""Exit statuses shared by every command (documented in the README)."""

OK = 0
GATE_FAILED = 1      # a --deny host was contacted, or probe found a hijack
USAGE = 2            # bad options or arguments (click's own status for usage errors)
BAD_INPUT = 3        # a capture or configuration file could not be read
MISSING_TOOL = 4     # a required external program (tshark, tcpdump, bpftrace...) is not installed
NO_PERMISSION = 5    # capturing or tracing needs privileges this process does not have
INTERRUPTED = 130    # Ctrl-C before any result could be produced
COMMAND_NOT_FOUND = 127
