"""The built-in engine: the fast path's record loop, the decoder, reassembly and our parsers."""
