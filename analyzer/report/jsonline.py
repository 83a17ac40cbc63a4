"""A contact's JSON line, byte for byte ``json.JSONEncoder(default=str).encode(contact.to_dict())``,
without building its dictionaries and with the parts contacts share encoded once.

On a big capture most of the jsonl is repeated parts: the same ``DnsInfo``, ``TlsInfo``,
finding tuple, note tuple and process object appear in thousands of contacts (the engine and the
contact builder share equal values, see events/builtin/intern.py). Each is encoded the first
time it is met and its text reused while the object lives (the table holds the object, so its
id cannot be reused by another). ``Contact.to_dict`` stays the definition of the shape;
tests/report/test_jsonline.py checks both give the same line on every repository capture.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring_ascii
from typing import Any

from ..base.model import Contact, _plain

ENCODER = json.JSONEncoder(default=str)
_encode = ENCODER.encode
_LIMIT = 4096  # parts remembered, then the table starts afresh
_parts: dict[int, tuple[Any, str]] = {}


def _text(value: str | None) -> str:
    if type(value) is str:
        return encode_basestring_ascii(value)
    return "null" if value is None else _encode(value)


def _number(value: Any) -> str:
    # the encoder writes an int or a finite float with its repr; anything else as it would
    if type(value) is int:
        return int.__repr__(value)
    if type(value) is float and value - value == 0.0:
        return float.__repr__(value)
    return _encode(value)


def _shared(obj: Any, shape: Callable[[Any], Any]) -> str:
    """The JSON of a part contacts share (``shape`` makes what the encoder is given)."""
    if obj is None:
        return "null"
    key = id(obj)
    hit = _parts.get(key)
    if hit is not None and hit[0] is obj:
        return hit[1]
    text = _encode(shape(obj))
    if len(_parts) >= _LIMIT:
        _parts.clear()
    _parts[key] = (obj, text)
    return text


def _dict(obj: Any) -> Any:
    return obj.to_dict()


def _dicts(items: Any) -> list[Any]:
    return [item.to_dict() for item in items]


def contact_json(c: Contact) -> str:
    """The line of ``Contact.to_dict`` (same keys, same order, same bytes)."""
    if type(c) is not Contact:
        return _encode(c.to_dict())
    frames = c.frames
    return "".join((
        '{"ts": ', _number(c.ts),
        ', "layer": ', _text(c.layer),
        ', "host": ', _text(c.host),
        ', "transport": ', _text(c.transport),
        ', "src": ', _text(c.src),
        ', "sport": ', _number(c.sport),
        ', "dst": ', _text(c.dst),
        ', "dport": ', _number(c.dport),
        ', "process": ', _shared(c.process, _dict) if c.process else "null",
        ', "client": ', _text(c.client),
        ', "client_evidence": ', _text(c.client_evidence),
        ', "dns": ', _shared(c.dns, _plain),
        ', "tls": ', _shared(c.tls, _plain),
        ', "http": ', _shared(c.http, _plain),
        ', "via_proxy": ', _shared(c.via_proxy, _plain),
        ', "operation": ', _text(c.operation),
        ', "operations": ', _shared(c.operations, list) if c.operations else "[]",
        ', "url": ', _text(c.url),
        ', "findings": ', _shared(c.findings, _dicts) if c.findings else "[]",
        ', "notes": ', _shared(c.notes, list) if c.notes else "[]",
        ', "cause": ', _text(c.cause),
        ', "flow_id": ', _text(c.flow_id),
        ', "frames": ', "[" + ", ".join(map(int.__repr__, frames)) + "]"
        if all(type(f) is int for f in frames) else _encode(list(frames)),
        ', "capture": ', _text(c.capture),
        "}",
    ))
