"""Flows: the first bytes of each direction of a TCP connection, reassembled."""
