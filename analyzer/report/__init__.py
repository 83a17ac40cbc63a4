"""Rendering: tables, machine-readable formats and files written with private permissions."""
