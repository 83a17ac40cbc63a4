"""Render a report's contacts in every format the commands offer."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from .output import emit_lines, emit_text, render_machine

if TYPE_CHECKING:
    from ..pipeline import Report

CONTACT_FORMATS = ("table", "jsonl", "json", "csv", "parquet", "html")


def contacts_csv(report: Report) -> str:
    """CSV through pandas: nested objects become dotted columns (``tls.sni``, ``process.pid``)."""
    import pandas as pd

    records = [c.to_dict() for c in report.contacts]
    if not records:
        return render_machine([], "csv")
    frame = pd.json_normalize(records, sep=".")
    for col in frame.columns:
        if frame[col].map(lambda v: isinstance(v, list)).any():
            frame[col] = frame[col].map(_list_cell)
    return str(frame.to_csv(index=False, lineterminator="\n"))


def _list_cell(value: object) -> object:
    if not isinstance(value, list):
        return value
    if value and isinstance(value[0], dict):
        import json

        return json.dumps(value)
    return ";".join(str(v) for v in value)


def render_report(report: Report, fmt: str, output: str | None) -> None:
    """Write the report to ``output`` (0600) or stdout."""
    if fmt == "parquet":
        if not output:
            raise click.UsageError("--format parquet needs --output FILE")
        from .parquet import write_parquet

        write_parquet(report.contacts, output)
        return
    if fmt == "html":
        from .html import render_html

        emit_text(render_html(report), output)
        return
    if fmt == "table":
        from .table import render_table

        color = output is None and sys.stdout.isatty()
        emit_text(render_table(report.contacts, report.stats, color=color), output)
        return
    if fmt == "csv":
        emit_text(contacts_csv(report), output)
        return
    if fmt == "jsonl":
        from .jsonline import contact_json  # the bytes of emit_jsonl over to_dict(), faster

        emit_lines((contact_json(c) for c in report.contacts), output)
        return
    emit_text(render_machine([c.to_dict() for c in report.contacts], fmt), output)
