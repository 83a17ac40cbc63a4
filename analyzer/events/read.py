"""The one interface both engines sit behind: a capture in, its ``Evidence`` out.

``builtin`` is the project's own engine (the fast path's record loop, dpkt-backed decoding, our
reassembly and parsers); ``tshark`` runs the same stage on Wireshark's dissectors (a cross-check,
and TLS decryption with a key log). Either gives the same evidence for the same capture.
"""

from __future__ import annotations

from pathlib import Path

from .records import Evidence, ProgressFn

ENGINES = ("builtin", "tshark")


def read_evidence(path: str | Path, engine: str = "builtin", keylog: Path | None = None,
                  progress: ProgressFn | None = None) -> Evidence:
    """One capture through the chosen engine."""
    if engine == "tshark":
        from .tshark.engine import read_evidence_tshark

        return read_evidence_tshark(path, keylog)
    from .builtin.read import read_evidence_builtin

    return read_evidence_builtin(path, progress)
