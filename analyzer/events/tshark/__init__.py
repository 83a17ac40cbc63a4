"""The tshark engine: Wireshark's dissectors read into the same records as the built-in engine."""
