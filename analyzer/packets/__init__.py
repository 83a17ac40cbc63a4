"""Packets: link-layer and IP headers decoded into segments, IP fragments reassembled."""
