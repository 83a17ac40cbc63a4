"""What a tracer reports: which process owned which socket, and what each process was."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..base.model import AttributionSource, Env, Transport


@dataclass(frozen=True, slots=True)
class SocketRecord:
    """A socket seen with its owner. ``local_port`` is None when the tracer saw only the peer
    (an unconnected UDP send before the kernel bound a port)."""

    ts: float
    pid: int
    transport: Transport
    local: str | None
    local_port: int | None
    remote: str
    remote_port: int
    source: AttributionSource
    comm: str | None = None
    tid: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessRecord:
    """One process image: what ``pid`` ran from ``ts`` on (an exec, a fork, or a first sight).

    ``forked`` marks a fork: the child runs its parent's program, with its parent's command
    line and environment as they were at ``ts``, until it execs. ``env`` holds the recorded
    variables (``model.RECORDED_ENV_NAMES``) as they were at exec; None when not seen.
    """

    pid: int
    ppid: int | None = None
    comm: str | None = None
    cmdline: str | None = None
    exe: str | None = None
    uid: int | None = None
    ts: float | None = None
    env: Env | None = None
    forked: bool = False
    exited: bool = False  # not an image: the process ended at ``ts``

    @property
    def is_image(self) -> bool:
        """True when the record says what program the pid ran (not only its parent or uid)."""
        return bool(self.exe or self.cmdline or self.forked) and not self.exited


def comm_of(path: str) -> str:
    """The kernel's comm for an exec'd file: its base name cut to 15 bytes (TASK_COMM_LEN - 1)."""
    return os.path.basename(path).encode()[:15].decode(errors="replace")


def normalize_address(addr: str) -> str:
    """Addresses compare as text: drop IPv6 brackets and show v4-mapped v6 as plain IPv4."""
    a = addr.strip("[]").lower()
    if a.startswith("::ffff:") and a.count(".") == 3:
        return a[7:]
    return a
