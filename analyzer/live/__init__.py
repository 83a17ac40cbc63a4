"""Live capture: capture backends (tcpdump, dumpcap), privilege checks, and the annotated pcapng.

Packets never pass through Python while a capture runs: tcpdump or dumpcap write a file in the
kernel's pace, and proxytrace reads it once the capture has stopped.
"""
