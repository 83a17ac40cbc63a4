"""proxytrace: who on this machine talks to the Go module proxy, checksum database and other watched
hosts, at which layer (DNS, TLS, HTTP), doing which Go operation, and why.

The command line (``proxytrace``) is a thin layer over this package; ``analyzer.pipeline.analyze_files``
is the entry point for offline analysis.
"""

__version__ = "0.1.0"
