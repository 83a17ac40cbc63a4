"""Filters for the tools users already live in: BPF for tcpdump/libpcap, display filters and a
configuration profile for Wireshark/tshark. Everything here is generated from a ``WatchList``
and validated input, so user text never reaches a filter unchecked.
"""
