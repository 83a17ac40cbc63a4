"""VS Code's settings dialect: JSON with ``//`` and ``/* */`` comments and trailing commas.

Hand-written because it is small and exact: json5 libraries accept much more (single quotes,
unquoted keys) than VS Code does, and commentjson pulls in a parser generator for the same job.
The scanner only blanks comments and drops trailing commas outside strings, keeping line numbers
so json's error positions still point at the user's file.
"""

from __future__ import annotations

import json
from typing import Any

from ..base.errors import ParseError


def strip_jsonc(text: str) -> str:
    out: list[str] = []
    i, n = 0, len(text)
    pending_comma: int | None = None  # index in ``out`` of a comma that may be trailing
    while i < n:
        c = text[i]
        if c == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            out.append(text[i:j + 1])
            pending_comma = None
            i = j + 1
        elif text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            if j < 0:
                raise ParseError("unterminated /* comment")
            chunk = text[i:j + 2]
            out.append("".join(ch if ch == "\n" else " " for ch in chunk))
            i = j + 2
        elif c == ",":
            pending_comma = len(out)
            out.append(c)
            i += 1
        elif c in "}]":
            if pending_comma is not None:
                out[pending_comma] = " "
            pending_comma = None
            out.append(c)
            i += 1
        else:
            if not c.isspace():
                pending_comma = None
            out.append(c)
            i += 1
    return "".join(out)


def loads_jsonc(text: str) -> Any:
    """Parse settings.json text; raise ParseError with the line number on malformed input."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return {}
    try:
        return json.loads(strip_jsonc(text))
    except json.JSONDecodeError as exc:
        raise ParseError(f"line {exc.lineno} column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise ParseError("nested too deeply") from None
