"""Process attribution: tracers (edges that watch the kernel or a command) and the joiner.

Each tracer turns what it saw into ``SocketRecord`` and ``ProcessRecord`` values; the joiner
(``SocketAttributor``) answers ``process_for(flow, ts)`` from them. A contact a tier did not see
stays unattributed: nothing here guesses.
"""

from .joiner import SocketAttributor
from .records import ProcessRecord, SocketRecord

__all__ = ["ProcessRecord", "SocketAttributor", "SocketRecord"]
