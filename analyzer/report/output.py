"""One output path for every command: ``--format`` and ``--output`` mean the same everywhere."""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import click

from ..base.files import open_private

MACHINE_FORMATS = ("jsonl", "json", "csv")
_JSONL_ENCODER = json.JSONEncoder(default=str)
BASE_FORMATS = ("table", *MACHINE_FORMATS)


def output_options(formats: Sequence[str] = BASE_FORMATS) -> Callable[[Any], Any]:
    """Decorator adding ``--format`` and ``--output`` to a click command."""

    def decorate(fn: Any) -> Any:
        fn = click.option("--output", "-o", "output", type=click.Path(dir_okay=False),
                          default=None, help="Write to FILE (mode 0600) instead of stdout.")(fn)
        fn = click.option("--format", "-f", "fmt", type=click.Choice(list(formats)),
                          default="table", show_default=True, help="Output format.")(fn)
        return fn

    return decorate


def _flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        elif isinstance(value, list):
            flat[name] = json.dumps(value, default=str) if value and isinstance(value[0], dict) \
                else ";".join(str(v) for v in value)
        else:
            flat[name] = value
    return flat


def render_machine(records: Sequence[dict[str, Any]], fmt: str) -> str:
    """Render records as jsonl, json or csv text."""
    if fmt == "jsonl":
        encode = _JSONL_ENCODER.encode  # one encoder: json.dumps(default=...) builds one per call
        return "".join(encode(r) + "\n" for r in records)
    if fmt == "json":
        return json.dumps(list(records), default=str, indent=2) + "\n"
    if fmt == "csv":
        import csv  # here: most runs write JSON lines or a table

        rows = [_flatten(r) for r in records]
        columns: list[str] = []
        for row in rows:
            for key in row:
                if key not in columns:
                    columns.append(key)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    raise ValueError(f"not a text format: {fmt}")


def emit_text(text: str, output: str | None) -> None:
    """Write text to ``output`` (private file) or stdout."""
    if output:
        with open_private(output, "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


def contact_line(contact: Any) -> str:
    """A contact's JSON line without its newline, as ``emit_jsonl`` writes it (a module-level
    function: worker processes render their own captures' lines with it). The same bytes as
    ``_JSONL_ENCODER.encode(contact.to_dict())``, made without the dictionaries (jsonline.py)."""
    from .jsonline import contact_json

    return contact_json(contact)


def emit_jsonl(records: Iterable[dict[str, Any]], output: str | None) -> None:
    """JSON lines of ``records`` to ``output`` (private file) or stdout, written as they are
    encoded, a few hundred lines at a time: the same bytes as ``render_machine(..., "jsonl")``
    without the whole text (and every record) in memory at once."""
    encode = _JSONL_ENCODER.encode
    emit_lines((encode(record) for record in records), output)


def emit_lines(lines: Iterable[str], output: str | None) -> None:
    """Lines (each without its newline) to ``output`` (private file) or stdout."""
    fh = open_private(output, "w", encoding="utf-8") if output else sys.stdout
    try:
        batch: list[str] = []
        for line in lines:
            batch.append(line)
            if len(batch) >= 512:
                batch.append("")
                fh.write("\n".join(batch))
                batch.clear()
        if batch:
            batch.append("")
            fh.write("\n".join(batch))
        fh.flush()
    finally:
        if output:
            fh.close()


def emit_records(records: Sequence[dict[str, Any]], fmt: str, output: str | None,
                 table: Callable[[Sequence[dict[str, Any]]], str] | None = None) -> None:
    """Emit records in any base format; ``table`` renders the human form."""
    if fmt == "table":
        text = table(records) if table else render_machine(records, "json")
        emit_text(text, output)
    else:
        emit_text(render_machine(records, fmt), output)
