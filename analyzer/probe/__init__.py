"""Active hijack checks (``proxytrace probe``): DNS, TLS and HTTP toward the watched hosts."""

from __future__ import annotations

from .records import NOT_HIJACK, ProbeResult
from .runner import ProbeOptions, run_probe

__all__ = ["NOT_HIJACK", "ProbeOptions", "ProbeResult", "run_probe"]
